"""`python manage.py demo`: demo data and an admin login for a development deployment.

Re-runnable: it only adds what is missing and never deletes or replaces anything.
"""

import os
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from accounts.models import Application, User
from accounts.services import system_principal
from keys import selectors as key_selectors
from keys import services as key_services
from vaults import selectors as vault_selectors
from vaults import services as vault_services
from vaults.activity import request_context
from vaults.models import Face, Vault

GROUP, VAULT, APPLICATION = "demo-rg", "demo-vault", "demo-app"
APPLICATION_ROLE = "Key Vault Crypto User"
DEMO_KEYS: dict[str, dict[str, Any]] = {
    "demo-rsa": {"kty": "RSA", "size": 2048},
    "demo-ec": {"kty": "EC", "curve": "P-256"},
    "demo-oct": {"kty": "oct", "size": 256},
}


class Command(BaseCommand):
    help = (
        "Create demo data (a resource group, a vault, three keys, an application that may use "
        "them) and an admin login."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000/", help="Where the site runs.")

    def handle(self, *args: Any, **options: Any) -> None:
        actor = system_principal(name="system:demo")
        with request_context(face=Face.CLI):
            vault = self._demo_data(actor)
            application = self._demo_application(actor) if vault is not None else None
        username, password = self._admin_login()
        url = options["url"].rstrip("/")
        self.stdout.write(
            "\n"
            f"  Console      {url}/\n"
            f"  Admin        {url}/admin/\n"
            f"  Login        {username} / {password}\n"
        )
        if vault is None:
            self.stdout.write(
                f"  Demo vault   {VAULT} is soft-deleted; bring it back with\n"
                f"               .venv/bin/python manage.py kv vault recover --name {VAULT}\n"
            )
        else:
            listing = f".venv/bin/python manage.py kv key list --vault-name {VAULT} -o table"
            self.stdout.write(f"  Demo vault   {VAULT} ({vault.uri})\n  CLI          {listing}\n")
        if application is not None:
            reset = f"kv ad app credential reset --id {application.client_id}"
            self.stdout.write(
                f"  Demo app     {APPLICATION} ({application.client_id}), {APPLICATION_ROLE} on "
                f"{VAULT}\n"
                f"               a client secret: .venv/bin/python manage.py {reset}\n"
            )

    def _demo_data(self, actor: User) -> Vault | None:
        """The demo vault with its keys, adding what is missing; None if it is soft-deleted.

        Names held by soft-deleted objects are left alone: they belong to whoever deleted them.
        """
        if not vault_selectors.resource_group_list(actor=actor).filter(name=GROUP).exists():
            vault_services.resource_group_create(actor=actor, name=GROUP, location="westeurope")
        if vault_selectors.vault_list(actor=actor, deleted=True).filter(name=VAULT).exists():
            return None
        if not vault_selectors.vault_list(actor=actor).filter(name=VAULT).exists():
            vault_services.vault_create(
                actor=actor, name=VAULT, resource_group=GROUP, tags={"purpose": "demo"}
            )
        vault = vault_selectors.vault_list(actor=actor).get(name=VAULT)
        taken = {
            name.lower()
            for deleted in (False, True)
            for name in key_selectors.key_list(
                actor=actor, vault=vault, deleted=deleted
            ).values_list("name", flat=True)
        }
        for name, spec in DEMO_KEYS.items():
            if name not in taken:
                key_services.key_create(actor=actor, vault_name=VAULT, name=name, **spec)
        return vault

    def _demo_application(self, actor: User) -> Application:
        """An application holding a data role on the demo vault, to show RBAC at work."""
        application = (
            vault_services.application_list(actor=actor).filter(display_name=APPLICATION).first()
        )
        if application is None:
            application = vault_services.application_create(actor=actor, display_name=APPLICATION)
        scope = f"/resourceGroups/{GROUP}/providers/Microsoft.KeyVault/vaults/{VAULT}"
        held = vault_services.role_assignment_list(
            actor=actor, scope=scope, assignee=str(application.client_id), role=APPLICATION_ROLE
        )
        if not held.exists():
            vault_services.role_assignment_create(
                actor=actor, assignee=str(application.client_id), role=APPLICATION_ROLE, scope=scope
            )
        return application

    def _admin_login(self) -> tuple[str, str]:
        """The admin's name and password: from the environment, or generated once into var/."""
        username = os.environ.get("KVCONSOLE_ADMIN_USERNAME", "admin")
        password = os.environ.get("KVCONSOLE_ADMIN_PASSWORD")
        stored = Path(settings.VAR_DIR) / "admin-password"
        if password is None:
            if not stored.exists():
                descriptor = os.open(stored, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(descriptor, "w") as handle:
                    handle.write(secrets.token_urlsafe(12))
            password = stored.read_text().strip()
        user = User.objects.filter(username=username).first()
        if user is None:
            User.objects.create_superuser(username=username, password=password, email="")
        elif os.environ.get("KVCONSOLE_ADMIN_PASSWORD"):
            user.set_password(password)
            user.save(update_fields=["password"])
        elif not user.check_password(password):
            return username, "(unchanged: the password was changed after it was generated)"
        return username, password
