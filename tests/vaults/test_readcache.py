"""The vault endpoint's per-process read cache (vaults/readcache.py): a repeated key
operation reads only the change counter, and every committed change to what it caches —
through a service, the ORM, raw SQL — is seen by the very next request."""

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import tokens
from accounts.models import Application, User
from keys import services as key_services
from keys.models import Key, KeyVersion
from kvconsole.errors import KeyDisabled
from vaults import activity, readcache
from vaults import services as vault_services
from vaults.models import ChangeCounter, Face, Vault, VaultUserObjectPermission
from vaults.permissions import request_cache

pytestmark = pytest.mark.django_db(transaction=True)

DIGEST = "A" * 43


@pytest.fixture
def caller(system: User, vault: Vault) -> Application:
    application = vault_services.application_create(actor=system, display_name="cache-test")
    vault_services.role_assignment_create(
        actor=system,
        assignee=str(application.client_id),
        role="Key Vault Crypto Officer",
        scope=vault_scope(vault),
    )
    return application


def vault_scope(vault: Vault) -> str:
    return (
        f"/resourceGroups/{vault.resource_group.name}/providers/Microsoft.KeyVault/"
        f"vaults/{vault.name}"
    )


@pytest.fixture
def sign(client: Client, vault: Vault, caller: Application, make_key: Any) -> Callable[[], Any]:
    """Sign with the vault's key `signer` through the endpoint, as `caller`."""
    make_key("signer", kty="EC")
    token = tokens.issue_access_token(caller, audience=tokens.vault_resource()).access_token

    def send() -> Any:
        return client.post(
            "/keys/signer//sign?api-version=7.6",
            data=json.dumps({"alg": "ES256", "value": DIGEST}),
            content_type="application/json",
            headers={
                "host": f"{vault.name}.vault.localhost:8443",
                "authorization": f"Bearer {token}",
            },
        )

    return send


def counter() -> int:
    return ChangeCounter.objects.get().value


def test_a_repeated_operation_reads_the_counter_and_appends_its_entry(
    sign: Callable[[], Any],
) -> None:
    assert sign().status_code == 200
    with CaptureQueriesContext(connection) as captured:
        assert sign().status_code == 200
    statements = [query["sql"] for query in captured.captured_queries]
    assert len(statements) == 2, statements
    assert "vaults_changecounter" in statements[0]
    assert statements[1].startswith('INSERT INTO "vaults_activityentry"')


def _disable_version(vault: Vault, caller: Application) -> None:
    KeyVersion.objects.filter(key__name="signer").update(enabled=False)


def _narrow_key_ops(vault: Vault, caller: Application) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {KeyVersion._meta.db_table} SET key_ops = %s",
            [json.dumps(["verify"])],
        )


def _delete_key(vault: Vault, caller: Application) -> None:
    now = timezone.now()
    Key.objects.filter(name="signer").update(deleted_at=now, scheduled_purge_at=now)


def _drop_grant(vault: Vault, caller: Application) -> None:
    VaultUserObjectPermission.objects.filter(user=caller.user).delete()


def _disable_principal(vault: Vault, caller: Application) -> None:
    User.objects.filter(pk=caller.user.pk).update(is_active=False)


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        (_disable_version, 403, "KeyDisabled"),
        (_narrow_key_ops, 403, "KeyOperationForbidden"),
        (_delete_key, 404, "KeyNotFound"),
        (_drop_grant, 403, "ForbiddenByRbac"),
        (_disable_principal, 401, "Unauthorized"),
    ],
)
def test_a_change_behind_the_services_back_is_seen_by_the_next_request(
    sign: Callable[[], Any],
    vault: Vault,
    caller: Application,
    change: Callable[[Vault, Application], None],
    status: int,
    code: str,
) -> None:
    assert sign().status_code == 200
    assert sign().status_code == 200
    before = counter()
    change(vault, caller)
    assert counter() > before
    refused = sign()
    assert refused.status_code == status
    error = refused.json()["error"]
    assert code in (error["code"], error.get("innererror", {}).get("code"))


def test_a_membership_change_is_seen_by_the_next_request(
    sign: Callable[[], Any], system: User, vault: Vault, caller: Application
) -> None:
    VaultUserObjectPermission.objects.filter(user=caller.user).delete()
    group = Group.objects.create(name="signers")
    caller.user.groups.add(group)
    vault_services.role_assignment_create(
        actor=system, assignee="signers", role="Key Vault Crypto User", scope=vault_scope(vault)
    )
    assert sign().status_code == 200
    assert sign().status_code == 200
    caller.user.groups.remove(group)
    assert sign().status_code == 403


def test_a_change_rolled_back_leaves_the_counter_and_the_cache_as_they_were(
    sign: Callable[[], Any],
) -> None:
    assert sign().status_code == 200
    before = counter()
    with transaction.atomic():
        KeyVersion.objects.update(enabled=False)
        transaction.set_rollback(True)
    assert counter() == before
    assert sign().status_code == 200


def test_a_request_reads_its_own_change(system: User, vault: Vault, make_key: Any) -> None:
    make_key("signer", kty="EC")
    digest = bytes(32)
    with activity.request_context(face=Face.API), request_cache(), readcache.scope():
        key_services.key_sign(
            actor=system, vault_name=vault.name, name="signer", algorithm="ES256", digest=digest
        )
        key_services.key_update(actor=system, vault_name=vault.name, name="signer", enabled=False)
        # The counter was read once, before the change; the request must not sign with
        # what it read then.
        with pytest.raises(KeyDisabled):
            key_services.key_sign(
                actor=system, vault_name=vault.name, name="signer", algorithm="ES256", digest=digest
            )


def counting_reader(reads: list[int]) -> Callable[[], str]:
    def read() -> str:
        reads.append(1)
        return "value"

    return read


def test_reads_inside_a_transaction_are_never_shared() -> None:
    reads: list[int] = []
    with readcache.scope(), transaction.atomic():
        for _ in range(2):
            readcache.cached(("probe",), counting_reader(reads))
    assert len(reads) == 2
    with readcache.scope():
        for _ in range(2):
            readcache.cached(("probe",), counting_reader(reads))
    assert len(reads) == 3


def test_outside_a_scope_every_read_goes_to_the_database() -> None:
    reads: list[int] = []
    for _ in range(2):
        readcache.cached(("probe",), counting_reader(reads))
    assert len(reads) == 2


def trigger_names() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        return {name for (name,) in cursor.fetchall()}


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's trigger catalogue")
def test_migrate_puts_back_triggers_a_table_rebuild_dropped(vault: Vault) -> None:
    table = Vault._meta.db_table
    dropped = f"kvconsole_changes_{table}_update"
    assert dropped in trigger_names()
    with connection.cursor() as cursor:
        cursor.execute(f'DROP TRIGGER "{dropped}"')
    call_command("migrate", verbosity=0)
    assert dropped in trigger_names()
    before = counter()
    Vault.objects.filter(pk=vault.pk).update(tags={"moved": "yes"})
    assert counter() == before + 1


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's trigger catalogue")
def test_a_change_made_while_a_trigger_was_missing_is_seen_once_migrate_has_run(
    sign: Callable[[], Any],
) -> None:
    assert sign().status_code == 200
    assert sign().status_code == 200
    # A migration that rebuilds a table drops its triggers until post_migrate puts them
    # back; a change committed in between moves nothing.
    with connection.cursor() as cursor:
        cursor.execute(f'DROP TRIGGER "kvconsole_changes_{KeyVersion._meta.db_table}_update"')
    KeyVersion.objects.update(enabled=False)
    call_command("migrate", verbosity=0)
    assert sign().status_code == 403


def test_without_a_counter_nothing_is_shared(sign: Callable[[], Any]) -> None:
    ChangeCounter.objects.all().delete()
    assert sign().status_code == 200
    assert sign().status_code == 200
    KeyVersion.objects.update(enabled=False)
    assert sign().status_code == 403
    readcache.install_triggers()
    assert ChangeCounter.objects.count() == 1


def test_every_install_moves_the_counter_to_a_new_value() -> None:
    before = counter()
    readcache.install_triggers()
    assert counter() != before


def test_what_is_not_found_is_not_kept() -> None:
    reads: list[int] = []

    def read_nothing() -> None:
        reads.append(1)

    with readcache.scope():
        for _ in range(2):
            readcache.cached(("missing",), read_nothing)
    assert len(reads) == 2
