"""`python manage.py demo`: demo data, an admin login and TLS files for a development
deployment, and `var/dev-connection.json` for scripts that connect to it.

Re-runnable: it only adds what is missing and never deletes or replaces anything but the demo
application's client secret, which it replaces only when the one on file no longer works.
"""

import ipaddress
import json
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
from kvconsole import devtls, secretfiles
from kvconsole.errors import Unauthorized
from vaults import selectors as vault_selectors
from vaults import services as vault_services
from vaults.activity import request_context
from vaults.models import Face, Vault

GROUP, VAULT, APPLICATION = "demo-rg", "demo-vault", "demo-app"
# Enough for the README snippet, which creates a key before it uses one.
APPLICATION_ROLE = "Key Vault Crypto Officer"
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
        parser.add_argument(
            "--alias",
            default=f"127.0.0.1:{settings.KVCONSOLE_VAULT_PORT}",
            help="A host alias for the demo vault, for machines where *.localhost does not "
            "resolve (default: 127.0.0.1 on the vault port).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        actor = system_principal(name="system:demo")
        tls = self._tls_files(options["alias"])
        with request_context(face=Face.CLI):
            vault = self._demo_data(actor, options["alias"])
            application = self._demo_application(actor) if vault is not None else None
            secret = self._demo_secret(actor, application) if application else None
        username, password = self._admin_login()
        console = f"https://{settings.KVCONSOLE_CONSOLE_HOST}"
        self.stdout.write(
            "\n"
            f"  CA           {tls.ca_certificate}  (trust it: REQUESTS_CA_BUNDLE or "
            "connection_verify)\n"
            f"  Console      {console}/\n"
            f"  Admin        {console}/admin/\n"
            f"  Login        {username} / {password}\n"
        )
        if vault is None:
            self.stdout.write(
                f"  Demo vault   {VAULT} is soft-deleted; bring it back with\n"
                f"               .venv/bin/python manage.py kv vault recover --name {VAULT}\n"
            )
            return
        vault_url = f"https://{options['alias']}"
        listing = f".venv/bin/python manage.py kv key list --vault-name {VAULT} -o table"
        self.stdout.write(
            f"  Demo vault   {vault_url}  (also {vault.uri.rstrip('/')} where *.localhost "
            "resolves)\n"
            f"  CLI          {listing}\n"
        )
        if application is None or secret is None:
            return
        connection = {
            "console_url": f"{console}/",
            "vault_url": vault_url,
            "authority": console,
            "tenant": settings.KVCONSOLE_TENANT_ID,
            "client_id": str(application.client_id),
            "client_secret": secret,
            "ca_file": str(tls.ca_certificate),
        }
        path = Path(settings.VAR_DIR) / "dev-connection.json"
        secretfiles.write_secret_file(path, json.dumps(connection, indent=2) + "\n")
        self.stdout.write(
            f"  Demo app     {APPLICATION}, {APPLICATION_ROLE} on {VAULT}\n"
            f"  Authority    {console}\n"
            f"  Tenant       {settings.KVCONSOLE_TENANT_ID}\n"
            f"  Client id    {application.client_id}\n"
            f"  Secret       {secret}\n"
            f"  All of it    {path}\n"
        )

    def _tls_files(self, alias: str) -> devtls.TlsFiles:
        """The development CA and a server certificate for the console, every vault host and
        the demo vault's alias."""
        console = settings.KVCONSOLE_CONSOLE_HOST.rsplit(":", 1)[0]
        suffix = settings.KVCONSOLE_VAULT_HOST_SUFFIX
        dns, addresses = ["localhost", console, f"*.{suffix}", suffix], ["127.0.0.1", "::1"]
        alias_host = alias.rsplit(":", 1)[0].strip("[]")
        (addresses if _is_address(alias_host) else dns).append(alias_host)
        return devtls.ensure(Path(settings.VAR_DIR) / "tls", dns, addresses)

    def _demo_secret(self, actor: User, application: Application) -> str:
        """The demo application's client secret: the one on file while it still signs in,
        otherwise a new one that replaces every other."""
        path = Path(settings.VAR_DIR) / "dev-connection.json"
        if path.exists():
            on_file = json.loads(path.read_text()).get("client_secret", "")
            try:
                vault_services.application_sign_in(
                    client_id=str(application.client_id), secret=on_file
                )
                return str(on_file)
            except Unauthorized:
                pass
        issued = vault_services.application_secret_add(
            actor=actor,
            client_id=str(application.client_id),
            description="make run",
            replace=True,
        )
        return issued.value

    def _demo_data(self, actor: User, alias: str) -> Vault | None:
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
        aliases = [host.host for host in vault.host_aliases.all()]
        if alias.lower() not in aliases:
            vault = vault_services.vault_update(
                actor=actor, name=VAULT, host_aliases=[*aliases, alias]
            )
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


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
