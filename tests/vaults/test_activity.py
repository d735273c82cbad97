"""The activity log: one entry per call, whatever its outcome, in an unbroken hash chain."""

import itertools
import re
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import IntegrityError, connection
from django.utils import timezone

from accounts.models import User
from keys.models import KeyVersion
from kvconsole.errors import BadParameter, Conflict, Forbidden, NotFound, ServiceError
from vaults import activity, selectors, services
from vaults.activity import GENESIS_HASH, entry_hash, request_context, verify_chain
from vaults.models import ActivityEntry, ResourceGroup, Vault
from vaults.services import resources

TABLE = ActivityEntry._meta.db_table
MakeKey = Callable[..., KeyVersion]


def log() -> list[ActivityEntry]:
    return list(ActivityEntry.objects.order_by("seq"))


def last() -> ActivityEntry:
    entry = ActivityEntry.objects.order_by("-seq").first()
    assert entry is not None
    return entry


def sql(statement: str, params: list[Any] | None = None) -> None:
    """Raw SQL on the table `log` names: the ORM refuses to change the log, an attacker with
    the database does not."""
    with connection.cursor() as cursor:
        cursor.execute(re.sub(r"\blog\b", TABLE, statement), params or [])


@pytest.fixture
def estate(db: None, system: User) -> None:
    """rg-main holding a live vault and a soft-deleted one, plus an empty rg-empty."""
    services.resource_group_create(actor=system, name="rg-main", location="westeurope")
    services.resource_group_create(actor=system, name="rg-empty", location="westeurope")
    services.vault_create(actor=system, name="live-vault", resource_group="rg-main")
    services.vault_create(actor=system, name="gone-vault", resource_group="rg-main")
    services.vault_delete(actor=system, name="gone-vault")


# --- one entry per call, with what it did -------------------------------------------------------

SUCCESSES: list[tuple[Callable[..., Any], dict[str, Any], str, str, str, str, int]] = [
    # service, arguments, operation, resource group, vault, target, status
    (
        services.resource_group_create,
        {"name": "rg-new", "location": "westeurope"},
        "ResourceGroupPut",
        "rg-new",
        "",
        "resourceGroups/rg-new",
        200,
    ),
    (
        services.resource_group_update,
        {"name": "RG-Main", "tags": {"a": "1"}},
        "ResourceGroupPatch",
        "rg-main",
        "",
        "resourceGroups/rg-main",
        200,
    ),
    (
        services.resource_group_get,
        {"name": "rg-main"},
        "ResourceGroupGet",
        "rg-main",
        "",
        "resourceGroups/rg-main",
        200,
    ),
    (services.resource_group_list, {}, "ResourceGroupList", "", "", "", 200),
    (
        services.resource_group_delete,
        {"name": "rg-empty"},
        "ResourceGroupDelete",
        "rg-empty",
        "",
        "resourceGroups/rg-empty",
        200,
    ),
    (
        services.vault_create,
        {"name": "New-Vault", "resource_group": "rg-main"},
        "VaultPut",
        "rg-main",
        "new-vault",
        "vaults/new-vault",
        200,
    ),
    (
        services.vault_update,
        {"name": "live-vault", "sku": "premium"},
        "VaultPatch",
        "rg-main",
        "live-vault",
        "vaults/live-vault",
        200,
    ),
    (
        services.vault_get,
        {"name": "LIVE-VAULT"},
        "VaultGet",
        "rg-main",
        "live-vault",
        "vaults/live-vault",
        200,
    ),
    (services.vault_list, {}, "VaultList", "", "", "", 200),
    (
        services.vault_list,
        {"resource_group": "rg-main"},
        "VaultList",
        "rg-main",
        "",
        "resourceGroups/rg-main",
        200,
    ),
    (
        services.vault_delete,
        {"name": "live-vault"},
        "VaultDelete",
        "rg-main",
        "live-vault",
        "vaults/live-vault",
        200,
    ),
    (services.vault_list_deleted, {}, "VaultListDeleted", "", "", "", 200),
    (
        services.vault_recover,
        {"name": "gone-vault"},
        "VaultRecover",
        "rg-main",
        "gone-vault",
        "vaults/gone-vault",
        200,
    ),
    (
        services.vault_purge,
        {"name": "gone-vault"},
        "VaultPurge",
        "rg-main",
        "gone-vault",
        "vaults/gone-vault",
        204,
    ),
]


@pytest.mark.usefixtures("estate")
@pytest.mark.parametrize(
    ("service", "arguments", "operation", "group", "vault", "target", "status"),
    SUCCESSES,
    ids=[f"{row[0].__name__}-{n}" for n, row in enumerate(SUCCESSES)],
)
def test_a_successful_call_writes_one_entry(
    system: User,
    service: Callable[..., Any],
    arguments: dict[str, Any],
    operation: str,
    group: str,
    vault: str,
    target: str,
    status: int,
) -> None:
    before = ActivityEntry.objects.count()
    started = timezone.now()
    service(actor=system, **arguments)
    assert ActivityEntry.objects.count() == before + 1
    entry = last()
    assert (entry.operation, entry.result, entry.status_code, entry.message) == (
        operation,
        "Success",
        status,
        "",
    )
    assert (entry.resource_group, entry.vault_name, entry.target) == (group, vault, target)
    assert (entry.actor_name, entry.actor_display, entry.actor_kind, entry.actor_oid) == (
        system.username,
        system.display_name,
        "system",
        system.oid,
    )
    assert entry.duration_ms >= 0
    assert started <= entry.time <= timezone.now()
    assert (entry.face, entry.client_ip, entry.correlation_id) == ("system", None, "")


FAILURES: list[tuple[str, Callable[..., Any], dict[str, Any], type[ServiceError], str, str]] = [
    # persona, service, arguments, error, operation, target
    (
        "system",
        services.resource_group_create,
        {"name": "bad name", "location": "westeurope"},
        BadParameter,
        "ResourceGroupPut",
        "resourceGroups/bad name",
    ),
    (
        "system",
        services.resource_group_create,
        {"name": "RG-MAIN", "location": "westeurope"},
        Conflict,
        "ResourceGroupPut",
        "resourceGroups/RG-MAIN",
    ),
    (
        "outsider",
        services.resource_group_create,
        {"name": "rg-new", "location": "westeurope"},
        Forbidden,
        "ResourceGroupPut",
        "resourceGroups/rg-new",
    ),
    (
        "system",
        services.resource_group_update,
        {"name": "rg-main", "tags": {"": "x"}},
        BadParameter,
        "ResourceGroupPatch",
        "resourceGroups/rg-main",
    ),
    (
        "system",
        services.resource_group_update,
        {"name": "nowhere", "tags": {}},
        NotFound,
        "ResourceGroupPatch",
        "resourceGroups/nowhere",
    ),
    (
        "application",
        services.resource_group_update,
        {"name": "rg-main", "tags": {}},
        Forbidden,
        "ResourceGroupPatch",
        "resourceGroups/rg-main",
    ),
    (
        "system",
        services.resource_group_get,
        {"name": "nowhere"},
        NotFound,
        "ResourceGroupGet",
        "resourceGroups/nowhere",
    ),
    (
        "outsider",
        services.resource_group_get,
        {"name": "rg-main"},
        Forbidden,
        "ResourceGroupGet",
        "resourceGroups/rg-main",
    ),
    (
        "system",
        services.resource_group_delete,
        {"name": "rg-main"},
        Conflict,
        "ResourceGroupDelete",
        "resourceGroups/rg-main",
    ),
    (
        "system",
        services.resource_group_delete,
        {"name": "nowhere"},
        NotFound,
        "ResourceGroupDelete",
        "resourceGroups/nowhere",
    ),
    (
        "outsider",
        services.resource_group_delete,
        {"name": "rg-empty"},
        Forbidden,
        "ResourceGroupDelete",
        "resourceGroups/rg-empty",
    ),
    (
        "system",
        services.vault_create,
        {"name": "x--y", "resource_group": "rg-main"},
        BadParameter,
        "VaultPut",
        "vaults/x--y",
    ),
    (
        "system",
        services.vault_create,
        {"name": "new-vault", "resource_group": "rg-main", "retention_days": 91},
        BadParameter,
        "VaultPut",
        "vaults/new-vault",
    ),
    (
        "system",
        services.vault_create,
        {"name": "New-Vault", "resource_group": "nowhere"},
        NotFound,
        "VaultPut",
        "vaults/new-vault",
    ),
    (
        "system",
        services.vault_create,
        {"name": "Live-Vault", "resource_group": "rg-main"},
        Conflict,
        "VaultPut",
        "vaults/live-vault",
    ),
    (
        "system",
        services.vault_create,
        {"name": "gone-vault", "resource_group": "rg-main"},
        Conflict,
        "VaultPut",
        "vaults/gone-vault",
    ),
    (
        "outsider",
        services.vault_create,
        {"name": "new-vault", "resource_group": "rg-main"},
        Forbidden,
        "VaultPut",
        "vaults/new-vault",
    ),
    (
        "system",
        services.vault_update,
        {"name": "live-vault", "retention_days": 7},
        BadParameter,
        "VaultPatch",
        "vaults/live-vault",
    ),
    (
        "system",
        services.vault_update,
        {"name": "gone-vault", "tags": {}},
        NotFound,
        "VaultPatch",
        "vaults/gone-vault",
    ),
    (
        "application",
        services.vault_update,
        {"name": "live-vault", "tags": {}},
        Forbidden,
        "VaultPatch",
        "vaults/live-vault",
    ),
    (
        "system",
        services.vault_get,
        {"name": "nowhere"},
        NotFound,
        "VaultGet",
        "vaults/nowhere",
    ),
    (
        "outsider",
        services.vault_get,
        {"name": "live-vault"},
        Forbidden,
        "VaultGet",
        "vaults/live-vault",
    ),
    (
        "system",
        services.vault_list,
        {"resource_group": "nowhere"},
        NotFound,
        "VaultList",
        "resourceGroups/nowhere",
    ),
    (
        "outsider",
        services.vault_list,
        {"resource_group": "rg-main"},
        Forbidden,
        "VaultList",
        "resourceGroups/rg-main",
    ),
    (
        "system",
        services.vault_delete,
        {"name": "nowhere"},
        NotFound,
        "VaultDelete",
        "vaults/nowhere",
    ),
    (
        "outsider",
        services.vault_delete,
        {"name": "live-vault"},
        Forbidden,
        "VaultDelete",
        "vaults/live-vault",
    ),
    (
        "system",
        services.vault_recover,
        {"name": "live-vault"},
        NotFound,
        "VaultRecover",
        "vaults/live-vault",
    ),
    (
        "application",
        services.vault_recover,
        {"name": "gone-vault"},
        Forbidden,
        "VaultRecover",
        "vaults/gone-vault",
    ),
    (
        "system",
        services.vault_purge,
        {"name": "live-vault"},
        NotFound,
        "VaultPurge",
        "vaults/live-vault",
    ),
    (
        "outsider",
        services.vault_purge,
        {"name": "gone-vault"},
        Forbidden,
        "VaultPurge",
        "vaults/gone-vault",
    ),
]


@pytest.mark.usefixtures("estate")
@pytest.mark.parametrize(
    ("persona", "service", "arguments", "error", "operation", "target"),
    FAILURES,
    ids=[f"{row[1].__name__}-{row[3].__name__}-{n}" for n, row in enumerate(FAILURES)],
)
def test_a_failed_call_writes_one_entry(
    request: pytest.FixtureRequest,
    persona: str,
    service: Callable[..., Any],
    arguments: dict[str, Any],
    error: type[ServiceError],
    operation: str,
    target: str,
) -> None:
    actor = request.getfixturevalue(persona)
    before = ActivityEntry.objects.count()
    with pytest.raises(error) as caught:
        service(actor=actor, **arguments)
    assert ActivityEntry.objects.count() == before + 1
    entry = last()
    assert entry.operation == operation
    assert (entry.result, entry.status_code) == (error.result, error.status)
    assert entry.result in {"BadParameter", "NotFound", "Forbidden", "Conflict"}
    assert entry.message == caught.value.message
    assert entry.target == target
    # The vault column names the vault the target is about (for filtering), or none.
    assert entry.vault_name == (target.split("/")[1] if target.startswith("vaults/") else "")
    assert (entry.actor_name, entry.actor_kind, entry.actor_oid) == (
        actor.username,
        actor.kind,
        actor.oid,
    )
    assert entry.duration_ms >= 0


@pytest.mark.usefixtures("estate")
def test_purge_protection_refusal_is_recorded_as_forbidden(system: User) -> None:
    services.vault_create(
        actor=system, name="kept-vault", resource_group="rg-main", purge_protection=True
    )
    services.vault_delete(actor=system, name="kept-vault")
    with pytest.raises(Forbidden):
        services.vault_purge(actor=system, name="kept-vault")
    entry = last()
    assert (entry.operation, entry.result, entry.status_code) == ("VaultPurge", "Forbidden", 403)
    assert entry.vault_name == "kept-vault"


@pytest.mark.usefixtures("estate")
def test_entries_name_the_caller_and_its_request(system: User) -> None:
    with request_context(face="cli", client_ip="192.0.2.7", correlation_id="req-1"):
        services.vault_get(actor=system, name="live-vault")
    with (
        request_context(face="api", client_ip="2001:db8::1", correlation_id="c" * 80),
        pytest.raises(NotFound),
    ):
        services.vault_get(actor=system, name="nowhere")
    services.vault_get(actor=system, name="live-vault")
    cli, api, default = log()[-3:]
    assert (cli.face, cli.client_ip, cli.correlation_id) == ("cli", "192.0.2.7", "req-1")
    assert (api.face, api.client_ip, api.correlation_id) == ("api", "2001:db8::1", "c" * 64)
    assert (default.face, default.client_ip, default.correlation_id) == ("system", None, "")


@pytest.mark.usefixtures("estate")
def test_an_unnormalized_ipv6_address_keeps_the_chain_valid(system: User) -> None:
    with request_context(face="api", client_ip="2001:0DB8:0000:0000:0000:0000:0000:0001"):
        services.vault_get(actor=system, name="live-vault")
    assert last().client_ip == "2001:db8::1"
    assert verify_chain().ok


@pytest.mark.usefixtures("estate")
def test_an_overlong_name_is_recorded_within_the_columns(system: User) -> None:
    """Names are described before they are validated; the entry must still fit its columns."""
    with pytest.raises(NotFound):
        services.vault_create(actor=system, name="v" * 40, resource_group="r" * 120)
    with pytest.raises(BadParameter):
        services.vault_create(actor=system, name="v" * 40, resource_group="rg-main")
    with pytest.raises(NotFound):
        services.vault_get(actor=system, name="v" * 40)
    for entry in log()[-3:]:
        for name in ("resource_group", "vault_name", "target"):
            limit = getattr(ActivityEntry._meta.get_field(name), "max_length", None)
            assert limit is not None and len(getattr(entry, name)) <= limit, name
    assert log()[-1].target == "vaults/" + "v" * 40
    assert verify_chain().ok


def test_actor_display_and_kind_come_from_the_principal(estate: None, owner: User) -> None:
    services.vault_get(actor=owner, name="live-vault")
    entry = last()
    assert (entry.actor_name, entry.actor_display, entry.actor_kind) == (
        owner.username,
        owner.display_name,
        "user",
    )


# --- failures survive the rollback ---------------------------------------------------------------


def test_a_failed_write_leaves_its_entry_and_nothing_else(
    transactional_db: None, system: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fails inside the service's transaction, after the vault row was written."""
    services.resource_group_create(actor=system, name="rg-main", location="westeurope")
    save = Vault.save

    def save_then_fail(vault: Vault, *args: Any, **kwargs: Any) -> None:
        save(vault, *args, **kwargs)
        assert Vault.objects.filter(name="doomed").exists()
        raise Conflict("Simulated conflict after the write.")

    monkeypatch.setattr(Vault, "save", save_then_fail)
    with pytest.raises(Conflict):
        services.vault_create(actor=system, name="doomed", resource_group="rg-main")
    assert not Vault.objects.exists()
    entry = last()
    assert (entry.seq, entry.operation, entry.result, entry.status_code) == (
        2,
        "VaultPut",
        "Conflict",
        409,
    )
    assert entry.message == "Simulated conflict after the write."
    assert verify_chain().ok


def test_a_failed_commit_is_recorded_as_a_failure(
    transactional_db: None, system: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The resource group vanishes between the lookup and the commit: the deferred foreign
    key check fails at COMMIT, after the success entry was written in the same transaction."""
    group = services.resource_group_create(actor=system, name="rg-main", location="westeurope")
    clean_tags = resources.clean_tags

    def delete_group_meanwhile(tags: Any) -> dict[str, str]:
        ResourceGroup.objects.filter(pk=group.pk).delete()  # another request, committed
        return clean_tags(tags)

    monkeypatch.setattr(resources, "clean_tags", delete_group_meanwhile)
    with pytest.raises(IntegrityError):
        services.vault_create(actor=system, name="orphan", resource_group="rg-main")
    assert not Vault.objects.exists()
    entries = log()
    assert len(entries) == 2
    assert (entries[-1].operation, entries[-1].result, entries[-1].status_code) == (
        "VaultPut",
        "Failure",
        500,
    )
    assert verify_chain().ok


@pytest.mark.usefixtures("estate")
def test_an_unexpected_error_is_recorded_as_failure_500_and_reraised(
    system: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(location: str) -> str:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(resources, "clean_location", explode)
    before = ActivityEntry.objects.count()
    with pytest.raises(RuntimeError, match="disk on fire"):
        services.vault_create(actor=system, name="new-vault", resource_group="rg-main")
    assert ActivityEntry.objects.count() == before + 1
    entry = last()
    assert (entry.operation, entry.result, entry.status_code) == ("VaultPut", "Failure", 500)
    # The exception's text may hold anything; the log keeps a fixed message.
    assert entry.message == "Internal error"
    assert entry.vault_name == "new-vault"
    assert not Vault.objects.filter(name="new-vault").exists()


@pytest.mark.usefixtures("estate")
def test_an_unexpected_error_inside_the_transaction_is_recorded_once(
    system: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(self: Vault, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("lost connection")

    monkeypatch.setattr(Vault, "save", explode)
    before = ActivityEntry.objects.count()
    with pytest.raises(RuntimeError):
        services.vault_delete(actor=system, name="live-vault")
    assert ActivityEntry.objects.count() == before + 1
    assert (last().result, last().status_code) == ("Failure", 500)
    assert Vault.objects.get(name="live-vault").deleted_at is None


def test_helpers_refuse_to_run_outside_an_operation() -> None:
    with pytest.raises(RuntimeError):
        activity.describe(target="x")
    with pytest.raises(RuntimeError), activity.atomic():
        pass


# --- the chain ---------------------------------------------------------------------------------


@pytest.fixture
def chain(estate: None, system: User, outsider: User) -> list[ActivityEntry]:
    """Ten entries (five from the estate), successes and failures mixed."""
    services.vault_get(actor=system, name="live-vault")
    with pytest.raises(Forbidden):
        services.vault_get(actor=outsider, name="live-vault")
    services.vault_update(actor=system, name="live-vault", tags={"a": "1"})
    with pytest.raises(NotFound):
        services.vault_get(actor=system, name="nowhere")
    services.resource_group_list(actor=system)
    entries = log()
    assert len(entries) == 10
    return entries


def test_the_chain_is_dense_and_linked(chain: list[ActivityEntry]) -> None:
    assert [entry.seq for entry in chain] == list(range(1, 11))
    assert chain[0].prev_hash == GENESIS_HASH
    for previous, entry in itertools.pairwise(chain):
        assert entry.prev_hash == previous.hash
    for entry in chain:
        assert entry_hash(entry) == entry.hash
    assert len({entry.hash for entry in chain}) == 10


def test_verify_reports_an_intact_log(chain: list[ActivityEntry]) -> None:
    report = verify_chain()
    assert report.ok
    assert (report.checked, report.head_seq, report.head_hash) == (10, 10, chain[-1].hash)
    assert report.first_bad_seq is None and report.problem == ""
    assert verify_chain(chunk_size=3) == report
    assert verify_chain(anchor=(10, chain[-1].hash)).ok
    assert verify_chain(anchor=(4, chain[3].hash)).ok


def test_verify_of_an_empty_log(db: None) -> None:
    report = verify_chain()
    assert (report.ok, report.checked, report.head_seq, report.head_hash) == (
        True,
        0,
        0,
        GENESIS_HASH,
    )
    # The head of an empty log is an anchor too: a log that then grows still matches it.
    assert verify_chain(anchor=(0, GENESIS_HASH)).ok


def test_an_empty_log_anchor_still_matches_once_the_log_grows(
    chain: list[ActivityEntry],
) -> None:
    assert verify_chain(anchor=(0, GENESIS_HASH)).ok
    assert not verify_chain(anchor=(0, "f" * 64)).ok


def test_verify_detects_a_modified_field(chain: list[ActivityEntry]) -> None:
    forbidden = next(entry for entry in chain if entry.result == "Forbidden")
    sql("UPDATE log SET result = %s WHERE seq = %s", ["Success", forbidden.seq])
    report = verify_chain()
    assert not report.ok
    assert report.first_bad_seq == forbidden.seq
    assert report.problem == f"entry {forbidden.seq} was modified"
    assert report.checked == forbidden.seq - 1


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("actor_name", "someone-else"),
        ("time", "2020-01-01 00:00:00"),
        # A duration no call takes: a real one could happen to equal the value set here.
        ("duration_ms", 987654.321),
        ("client_ip", "198.51.100.1"),
        ("prev_hash", "a" * 64),
        ("hash", "b" * 64),
    ],
)
def test_verify_detects_any_modified_column(
    chain: list[ActivityEntry], column: str, value: Any
) -> None:
    sql(f"UPDATE log SET {column} = %s WHERE seq = 6", [value])
    report = verify_chain()
    assert (report.ok, report.first_bad_seq) == (False, 6)
    assert report.problem == "entry 6 was modified"


def rehash(seq: int, **changes: Any) -> ActivityEntry:
    """Change entry `seq` and store a hash recomputed to match, as a careful forger would."""
    entry = ActivityEntry.objects.get(seq=seq)
    for name, value in changes.items():
        setattr(entry, name, value)
    entry.hash = entry_hash(entry)
    assignments = ", ".join(f"{name} = %s" for name in [*changes, "hash"])
    sql(
        f"UPDATE log SET {assignments} WHERE seq = %s",
        [*changes.values(), entry.hash, seq],
    )
    return entry


def test_verify_detects_a_modified_and_rehashed_entry(chain: list[ActivityEntry]) -> None:
    rehash(7, result="Success", status_code=200, message="")
    assert entry_hash(ActivityEntry.objects.get(seq=7)) == ActivityEntry.objects.get(seq=7).hash
    report = verify_chain()
    assert (report.ok, report.first_bad_seq) == (False, 7)
    assert report.problem == "entry 7 was modified"


def test_a_rehashed_last_entry_is_caught_only_by_an_anchor(chain: list[ActivityEntry]) -> None:
    rehash(10, actor_name="someone-else")
    assert verify_chain().ok
    report = verify_chain(anchor=(10, chain[-1].hash))
    assert (report.ok, report.first_bad_seq) == (False, 10)
    assert report.problem == "entry 10 does not match the anchor"


def test_verify_detects_a_deleted_middle_entry(chain: list[ActivityEntry]) -> None:
    sql("DELETE FROM log WHERE seq = %s", [5])
    report = verify_chain()
    assert (report.ok, report.first_bad_seq, report.problem) == (False, 5, "entry 5 was deleted")
    assert (report.checked, report.head_seq, report.head_hash) == (4, 4, chain[3].hash)


def test_verify_detects_a_deleted_first_entry(chain: list[ActivityEntry]) -> None:
    sql("DELETE FROM log WHERE seq = %s", [1])
    report = verify_chain()
    assert (report.ok, report.first_bad_seq, report.problem) == (False, 1, "entry 1 was deleted")


def forge_insert(at: int) -> ActivityEntry:
    """Renumber entries from `at` on by one and insert a well-formed entry at `at`."""
    # Through negative numbers, since a primary key update may collide row by row.
    sql("UPDATE log SET seq = -(seq + 1) WHERE seq >= %s", [at])
    sql("UPDATE log SET seq = -seq WHERE seq < 0")
    previous = ActivityEntry.objects.filter(seq=at - 1).first()
    template = ActivityEntry.objects.get(seq=at + 1)
    forged = ActivityEntry(
        seq=at,
        time=template.time,
        actor_name="intruder",
        actor_kind="user",
        operation="VaultGet",
        target="vaults/live-vault",
        result="Success",
        status_code=200,
        duration_ms=1.0,
        face="console",
        prev_hash=previous.hash if previous else GENESIS_HASH,
    )
    forged.hash = entry_hash(forged)
    forged.save(force_insert=True)
    return forged


@pytest.mark.parametrize("at", [1, 4, 10])
def test_verify_detects_an_inserted_entry(chain: list[ActivityEntry], at: int) -> None:
    forge_insert(at)
    report = verify_chain()
    assert (report.ok, report.first_bad_seq) == (False, at)
    assert report.problem == f"entry {at} was inserted"


def test_entries_cut_off_the_end_are_caught_only_by_an_anchor(
    chain: list[ActivityEntry],
) -> None:
    head = verify_chain()
    sql("DELETE FROM log WHERE seq > %s", [7])
    assert verify_chain().ok  # the chain that is left is intact
    report = verify_chain(anchor=(head.head_seq, head.head_hash))
    assert not report.ok
    assert report.first_bad_seq == 8  # the first entry that is missing
    assert report.problem == "entries 8 to 10 were deleted"
    assert (report.head_seq, report.head_hash) == (7, chain[6].hash)


def test_a_wrong_anchor_hash_is_reported(chain: list[ActivityEntry]) -> None:
    report = verify_chain(anchor=(3, "0" * 64))
    assert (report.ok, report.first_bad_seq) == (False, 3)
    assert report.problem == "entry 3 does not match the anchor"


def test_the_log_grows_on_after_a_verified_head(chain: list[ActivityEntry], system: User) -> None:
    head = verify_chain()
    services.vault_get(actor=system, name="live-vault")
    assert verify_chain(anchor=(head.head_seq, head.head_hash)).ok
    assert last().prev_hash == head.head_hash


def test_activity_verify_refuses_outsiders(chain: list[ActivityEntry], outsider: User) -> None:
    with pytest.raises(Forbidden):
        selectors.activity_verify(actor=outsider)


def test_activity_verify_for_deployment_principals(
    chain: list[ActivityEntry], system: User, owner: User
) -> None:
    assert selectors.activity_verify(actor=system).ok
    report = selectors.activity_verify(actor=owner, anchor=(10, "1" * 64))
    assert report.as_dict() == {
        "ok": False,
        "checked": 9,
        "head": {"seq": 9, "hash": chain[8].hash},
        "firstBadSeq": 10,
        "problem": "entry 10 does not match the anchor",
    }


# --- the activity list selector -----------------------------------------------------------------


def test_activity_list_filters(chain: list[ActivityEntry], system: User) -> None:
    with request_context(face="cli"):
        services.vault_get(actor=system, name="live-vault")
    entries = selectors.activity_list
    assert [e.seq for e in entries(actor=system)] == list(range(11, 0, -1))
    assert {e.vault_name for e in entries(actor=system, vault="LIVE-VAULT")} == {"live-vault"}
    assert {e.operation for e in entries(actor=system, operation="VaultGet")} == {"VaultGet"}
    assert [e.result for e in entries(actor=system, result="Forbidden")] == ["Forbidden"]
    assert [e.seq for e in entries(actor=system, face="cli")] == [11]
    assert not entries(actor=system, actor_name="nobody").exists()
    now = timezone.now()
    assert entries(actor=system, since=now - timedelta(minutes=1)).count() == 11
    assert not entries(actor=system, until=now - timedelta(minutes=1)).exists()


def test_activity_list_shows_outsiders_only_their_own_calls(
    chain: list[ActivityEntry], outsider: User
) -> None:
    assert ActivityEntry.objects.exclude(actor_oid=outsider.oid).exists()
    seen = selectors.activity_list(actor=outsider)
    assert set(seen.values_list("actor_oid", flat=True)) <= {outsider.oid}


# --- concurrency ---------------------------------------------------------------------------------


@pytest.fixture
def threaded_estate(transactional_db: None, system: User) -> User:
    services.resource_group_create(actor=system, name="rg-main", location="westeurope")
    services.vault_create(actor=system, name="live-vault", resource_group="rg-main")
    return system


def test_concurrent_calls_keep_the_chain_dense_and_valid(threaded_estate: User) -> None:
    system = threaded_estate
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def work(number: int) -> None:
        try:
            start.wait()
            with request_context(face="api", correlation_id=f"thread-{number}"):
                for _ in range(10):
                    services.vault_get(actor=system, name="live-vault")
        except BaseException as error:  # reported by the main thread
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(number,)) for number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    entries = log()
    assert [entry.seq for entry in entries] == list(range(1, 43))
    for number in range(4):
        assert sum(entry.correlation_id == f"thread-{number}" for entry in entries) == 10
    report = verify_chain()
    assert (report.ok, report.checked) == (True, 42)
