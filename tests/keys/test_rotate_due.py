"""Rotation by policy: `key_rotate_if_due`, the schedule selector and `kv rotate-due`, in
process and as real processes (two at once; one killed with SIGKILL half-way)."""

import io
import json
import signal
import subprocess
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from accounts.models import User
from keys import crypto, rotation, selectors, services
from keys.models import Key, KeyVersion
from keys.services import rotation as rotation_services
from kvconsole import clock
from kvconsole.errors import Conflict, Forbidden, NotFound
from tests.cli import kv, kv_fails
from tests.factories import VaultFactory
from tests.keys.due_keys import deployment_version_report
from tests.processes import (
    ROOT,
    integrity_problems,
    kv_at_once,
    make_deployment,
    manage_py,
    query,
    run_kv,
    shell,
)
from vaults.models import ActivityEntry, Event, EventType, Face, Operation, Vault

pytestmark = pytest.mark.django_db

NEW_VERSION = EventType.KEY_NEW_VERSION_CREATED


def rotate_after(duration: str) -> dict[str, object]:
    return {"trigger": {"timeAfterCreate": duration}, "action": {"type": "Rotate"}}


def rotate_before_expiry(duration: str) -> dict[str, object]:
    return {"trigger": {"timeBeforeExpiry": duration}, "action": {"type": "Rotate"}}


@pytest.fixture
def keyed(system: User, vault: Vault, make_key: Any) -> Any:
    """Make an EC key in `vault` with a rotation policy (Rotate 30 days after creation,
    versions it makes expire after 90 days, unless told otherwise)."""

    def make(
        name: str,
        *,
        actions: list[dict[str, object]] | None = None,
        expiry: str = "P90D",
        in_vault: Vault | None = None,
        **options: Any,
    ) -> KeyVersion:
        version = make_key(name, kty="EC", in_vault=in_vault, **options)
        services.key_rotation_policy_set(
            actor=system,
            vault_name=(in_vault or vault).name,
            name=name,
            lifetime_actions=[rotate_after("P30D")] if actions is None else actions,
            expiry_time=expiry,
        )
        return version

    return make


def current(vault: Vault, name: str) -> KeyVersion:
    key = Key.objects.select_related("current_version").get(vault=vault, name=name)
    assert key.current_version is not None
    return key.current_version


def rotate_if_due(system: User, vault: Vault, name: str) -> KeyVersion | None:
    return services.key_rotate_if_due(actor=system, vault_name=vault.name, name=name)


# --- the service -------------------------------------------------------------------------


def test_due_after_creation_rotates_with_the_policys_expiry(
    system: User, vault: Vault, keyed: Any, settings: Any
) -> None:
    first = keyed("k", tags={"team": "payments"}, key_ops=["sign"])
    settings.KVCONSOLE_CLOCK_OFFSET = "P29D"
    assert rotate_if_due(system, vault, "k") is None
    settings.KVCONSOLE_CLOCK_OFFSET = "P30DT1M"
    rotated = rotate_if_due(system, vault, "k")
    assert rotated is not None
    assert current(vault, "k").pk == rotated.pk != first.pk
    assert rotated.origin == KeyVersion.Origin.ROTATED
    assert (rotated.kty, rotated.curve) == ("EC", "P-256")
    assert rotated.public_jwk != first.public_jwk
    assert rotated.key_ops == ["sign"] and rotated.tags == {"team": "payments"}
    assert rotated.expires == rotation.after(rotated.created_at, "P90D")
    assert abs(rotated.created_at - clock.now()) < timedelta(minutes=1)


def test_due_before_expiry_counts_back_from_the_current_versions_exp(
    system: User, vault: Vault, keyed: Any, settings: Any
) -> None:
    keyed(
        "k",
        actions=[rotate_before_expiry("P30D")],
        expires=clock.now() + timedelta(days=40),
    )
    settings.KVCONSOLE_CLOCK_OFFSET = "P9D"
    assert rotate_if_due(system, vault, "k") is None
    settings.KVCONSOLE_CLOCK_OFFSET = "P11D"
    rotated = rotate_if_due(system, vault, "k")
    assert rotated is not None
    assert rotated.expires == rotation.after(rotated.created_at, "P90D")
    # The new version's own exp is 90 days out: not due again until 30 days before it.
    settings.KVCONSOLE_CLOCK_OFFSET = "P70D"
    assert rotate_if_due(system, vault, "k") is None
    settings.KVCONSOLE_CLOCK_OFFSET = "P72D"
    assert rotate_if_due(system, vault, "k") is not None


def test_before_expiry_without_an_exp_is_never_due(
    system: User, vault: Vault, keyed: Any, settings: Any
) -> None:
    keyed("k", actions=[rotate_before_expiry("P30D")])
    settings.KVCONSOLE_CLOCK_OFFSET = "P3650D"
    assert rotate_if_due(system, vault, "k") is None
    assert Key.objects.get(name="k").versions.count() == 1


def test_no_policy_or_notify_only_is_never_due(
    system: User, vault: Vault, make_key: Any, keyed: Any, settings: Any
) -> None:
    make_key("bare", kty="EC")
    keyed("notify-only", actions=[], expires=clock.now() + timedelta(days=40))
    settings.KVCONSOLE_CLOCK_OFFSET = "P3650D"
    assert rotate_if_due(system, vault, "bare") is None
    assert rotate_if_due(system, vault, "notify-only") is None
    assert KeyVersion.objects.count() == 2


def test_a_schedule_that_fell_behind_rotates_once(
    system: User, vault: Vault, keyed: Any, settings: Any
) -> None:
    keyed("k")
    # A year of 30-day periods missed (the scheduler was down).
    settings.KVCONSOLE_CLOCK_OFFSET = "P365D"
    assert rotate_if_due(system, vault, "k") is not None
    assert rotate_if_due(system, vault, "k") is None
    assert Key.objects.get(name="k").versions.count() == 2


def test_a_disabled_key_is_not_rotated(
    system: User, vault: Vault, keyed: Any, settings: Any
) -> None:
    keyed("k", enabled=False)
    settings.KVCONSOLE_CLOCK_OFFSET = "P31D"
    assert rotate_if_due(system, vault, "k") is None
    assert list(selectors.key_rotation_schedule(actor=system)) == []


def test_a_deleted_key_is_never_rotated(
    system: User, vault: Vault, keyed: Any, settings: Any
) -> None:
    keyed("k")
    services.key_delete(actor=system, vault_name=vault.name, name="k")
    settings.KVCONSOLE_CLOCK_OFFSET = "P31D"
    with pytest.raises(NotFound):
        rotate_if_due(system, vault, "k")
    assert list(selectors.key_rotation_schedule(actor=system)) == []
    assert KeyVersion.objects.count() == 1


def test_due_ness_is_decided_again_under_the_lock(
    system: User, vault: Vault, keyed: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process rotates the key while this call generates its material: this call
    then adds nothing."""
    keyed("k")
    settings.KVCONSOLE_CLOCK_OFFSET = "P31D"
    generate = rotation_services.material_like

    def racing(version: KeyVersion) -> crypto.Material:
        services.key_rotate(actor=system, vault_name=vault.name, name="k")
        return generate(version)

    monkeypatch.setattr(rotation_services, "material_like", racing)
    assert rotate_if_due(system, vault, "k") is None
    assert Key.objects.get(name="k").versions.count() == 2


def test_each_call_is_recorded_and_a_rotation_names_its_new_version(
    system: User, vault: Vault, keyed: Any, settings: Any
) -> None:
    keyed("k")
    settings.KVCONSOLE_CLOCK_OFFSET = "P31D"
    rotated = rotate_if_due(system, vault, "k")
    assert rotated is not None
    assert rotate_if_due(system, vault, "k") is None
    entries = ActivityEntry.objects.filter(operation=Operation.KEY_ROTATE_IF_DUE).order_by("seq")
    assert [(entry.target, entry.result) for entry in entries] == [
        (f"vaults/{vault.name}/keys/k/{rotated.version}", "Success"),
        (f"vaults/{vault.name}/keys/k", "Success"),
    ]


def test_someone_without_rotate_is_refused(
    vault: Vault, keyed: Any, outsider: User, settings: Any
) -> None:
    keyed("k")
    settings.KVCONSOLE_CLOCK_OFFSET = "P31D"
    with pytest.raises(Forbidden):
        services.key_rotate_if_due(actor=outsider, vault_name=vault.name, name="k")
    assert KeyVersion.objects.count() == 1
    assert list(selectors.key_rotation_schedule(actor=outsider)) == []


# --- the selector ------------------------------------------------------------------------


def test_the_schedule_lists_keys_with_a_rotate_action_in_chunks(
    system: User, vault: Vault, keyed: Any, make_key: Any, settings: Any, django_assert_num_queries
) -> None:
    for number in range(5):
        keyed(f"due-{number}")
    keyed("later", actions=[rotate_after("P60D")])
    keyed("notify-only", actions=[], expires=clock.now() + timedelta(days=10))
    make_key("bare", kty="EC")
    settings.KVCONSOLE_CLOCK_OFFSET = "P31D"
    # Two keys per chunk: three chunks of candidates and a last, empty read.
    with django_assert_num_queries(4):
        schedule = list(selectors.key_rotation_schedule(actor=system, chunk_size=2))
    assert [(entry.key.name, entry.due) for entry in schedule] == [
        *((f"due-{number}", True) for number in range(5)),
        ("later", False),
    ]
    created = schedule[0].key.current_version.created_at  # type: ignore[union-attr]
    assert schedule[0].due_at == rotation.after(created, "P30D")


def test_keys_made_within_a_week_are_left_out_in_sql(
    system: User, keyed: Any, settings: Any
) -> None:
    """No Rotate action counts fewer than 7 days from creation (Azure's rule)."""
    keyed("fresh")
    assert not selectors.key_rotation_candidates(actor=system).exists()
    settings.KVCONSOLE_CLOCK_OFFSET = "P7D"
    assert selectors.key_rotation_candidates(actor=system).count() == 1


# --- kv rotate-due -------------------------------------------------------------------------


def test_rotate_due_rotates_each_due_key_once_as_the_system_principal(
    vault: Vault, keyed: Any, settings: Any
) -> None:
    for name in ("a", "b", "c"):
        keyed(name)
    keyed("later", actions=[rotate_after("P60D")])
    settings.KVCONSOLE_CLOCK_OFFSET = "P31D"
    before = {name: current(vault, name).version for name in ("a", "b", "c")}
    events_before = Event.objects.filter(event_type=NEW_VERSION).count()

    summary = kv("rotate-due")

    assert {name: summary[name] for name in ("checked", "due", "rotated", "failed")} == {
        "checked": 4,
        "due": 3,
        "rotated": 3,
        "failed": 0,
    }
    assert summary["dryRun"] is False and summary["skipped"] == 0
    assert [(entry["key"], entry["result"]) for entry in summary["keys"]] == [
        ("a", "rotated"),
        ("b", "rotated"),
        ("c", "rotated"),
    ]
    for entry in summary["keys"]:
        assert entry["vault"] == vault.name
        assert entry["version"] == before[entry["key"]]
        assert entry["newVersion"] == current(vault, entry["key"]).version
    entries = ActivityEntry.objects.filter(operation=Operation.KEY_ROTATE_IF_DUE)
    assert sorted(entry.target for entry in entries) == sorted(
        f"vaults/{vault.name}/keys/{entry['key']}/{entry['newVersion']}"
        for entry in summary["keys"]
    )
    assert {(entry.actor_kind, entry.face) for entry in entries} == {(User.Kind.SYSTEM, Face.CLI)}
    new_events = Event.objects.filter(event_type=NEW_VERSION).order_by("id")[events_before:]
    assert sorted(event.data["Version"] for event in new_events) == sorted(
        entry["newVersion"] for entry in summary["keys"]
    )

    again = kv("rotate-due")
    assert (again["checked"], again["due"], again["rotated"], again["keys"]) == (4, 0, 0, [])
    assert KeyVersion.objects.filter(origin=KeyVersion.Origin.ROTATED).count() == 3


def test_dry_run_lists_and_rotates_nothing(vault: Vault, keyed: Any, settings: Any) -> None:
    keyed("a")
    keyed("later", actions=[rotate_after("P60D")])
    settings.KVCONSOLE_CLOCK_OFFSET = "P31D"
    entries_before = ActivityEntry.objects.count()
    listed = kv("rotate-due", "--dry-run")
    assert listed["dryRun"] is True
    assert (listed["checked"], listed["due"], listed["rotated"]) == (2, 1, 0)
    (entry,) = listed["keys"]
    assert (entry["key"], entry["result"], entry["version"]) == (
        "a",
        "due",
        current(vault, "a").version,
    )
    assert "newVersion" not in entry
    assert KeyVersion.objects.count() == 2
    assert ActivityEntry.objects.count() == entries_before


def test_vault_option_limits_the_run(vault: Vault, keyed: Any, settings: Any) -> None:
    other = VaultFactory.create(name="other-vault")
    keyed("here")
    keyed("there", in_vault=other)
    settings.KVCONSOLE_CLOCK_OFFSET = "P31D"
    summary = kv("rotate-due", "--vault", other.name.upper())
    assert [(entry["vault"], entry["key"]) for entry in summary["keys"]] == [(other.name, "there")]
    assert current(vault, "here").origin == KeyVersion.Origin.GENERATED
    error = kv_fails("rotate-due", "--vault", "no-such-vault")
    assert error.returncode == 3 and "VaultNotFound" in str(error)


def test_a_failure_is_reported_and_exits_non_zero_after_the_rest(
    vault: Vault, keyed: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    keyed("a")
    keyed("b")
    settings.KVCONSOLE_CLOCK_OFFSET = "P31D"
    rotate = services.key_rotate_if_due

    def failing_for_a(**kwargs: Any) -> KeyVersion | None:
        if kwargs["name"] == "a":
            raise Conflict("Key a is busy.")
        return rotate(**kwargs)

    monkeypatch.setattr(services, "key_rotate_if_due", failing_for_a)
    out = io.StringIO()
    with pytest.raises(CommandError, match="1 of 2 due keys failed to rotate") as raised:
        call_command("kv", "rotate-due", stdout=out)
    assert raised.value.returncode == 1
    summary = json.loads(out.getvalue())
    assert (summary["rotated"], summary["failed"]) == (1, 1)
    failed = next(entry for entry in summary["keys"] if entry["result"] == "failed")
    assert (failed["key"], failed["code"], failed["message"]) == ("a", "Conflict", "Key a is busy.")
    assert current(vault, "b").origin == KeyVersion.Origin.ROTATED


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_a_progress_bar_then_the_summary(
    vault: Vault, keyed: Any, settings: Any
) -> None:
    keyed("a")
    settings.KVCONSOLE_CLOCK_OFFSET = "P31D"
    out = Terminal()
    call_command("kv", "rotate-due", stdout=out)
    summary = json.loads(out.getvalue())
    assert (summary["checked"], summary["rotated"]) == (1, 1)
    table = Terminal()
    call_command("kv", "rotate-due", "--dry-run", "--output", "table", stdout=table)
    assert "checked" in table.getvalue() and "result" in table.getvalue()


# --- real processes ------------------------------------------------------------------------

VAULT = "rotation"
SETUP = """
from tests.keys.due_keys import add_due_keys, vault_named
add_due_keys(vault_named("rotation"), {count}, kty="RSA", size=2048)
"""


def due_deployment(directory: Path, count: int) -> dict[str, str]:
    """A deployment on disk whose vault holds `count` RSA-2048 keys due for rotation."""
    deployment = make_deployment(directory)
    shell(deployment, SETUP.format(count=count))
    return deployment


def version_report(deployment: dict[str, str]) -> dict[str, Any]:
    """Each key's version count and any broken version, read by the deployment itself."""
    return deployment_version_report(deployment, VAULT)


def rotated_versions(deployment: dict[str, str]) -> int:
    [(count,)] = query(deployment, "SELECT COUNT(*) FROM keys_keyversion WHERE origin = 'rotated'")
    return int(count)


def rotate_due_entries(deployment: dict[str, str]) -> list[str]:
    """The targets of the successful KeyRotateIfDue entries that name a new version."""
    rows = query(
        deployment,
        "SELECT target FROM vaults_activityentry WHERE operation = 'KeyRotateIfDue' "
        "AND result = 'Success'",
    )
    return [target for (target,) in rows if target.count("/") == 4]


@pytest.mark.slow
@pytest.mark.alone
def test_two_runs_at_once_rotate_each_due_key_exactly_once(tmp_path: Path) -> None:
    keys = 60
    deployment = due_deployment(tmp_path, keys)
    summaries = [json.loads(stdout) for stdout in kv_at_once(deployment, "rotate-due")]

    report = version_report(deployment)
    assert report["problems"] == []
    assert report["versions"] == {f"key-{number:05d}": 2 for number in range(keys)}
    assert sum(summary["rotated"] for summary in summaries) == keys
    assert all(summary["failed"] == 0 for summary in summaries)
    # They overlapped: both rotated some keys, and both found keys due that the other rotated
    # first (the decision taken again under the lock).
    assert all(summary["rotated"] > 0 for summary in summaries), summaries
    assert sum(summary["skipped"] for summary in summaries) > 0, summaries
    new_versions = [
        entry["newVersion"] for summary in summaries for entry in summary["keys"]
        if entry["result"] == "rotated"
    ]  # fmt: skip
    assert len(set(new_versions)) == keys
    assert len(rotate_due_entries(deployment)) == keys


@pytest.mark.slow
@pytest.mark.alone
def test_killed_midway_leaves_no_half_made_version_and_the_next_run_finishes(
    tmp_path: Path,
) -> None:
    keys = 80
    deployment = due_deployment(tmp_path, keys)
    run = subprocess.Popen(
        manage_py("kv", "rotate-due"),
        cwd=ROOT,
        env=deployment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and run.poll() is None:
        if rotated_versions(deployment) >= 10:
            run.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    run.wait(timeout=30)
    assert run.returncode == -signal.SIGKILL, "the run finished before it was killed"

    assert integrity_problems(deployment) == []
    killed = version_report(deployment)
    assert killed["problems"] == []
    done = sum(count - 1 for count in killed["versions"].values())
    assert 10 <= done < keys
    assert set(killed["versions"].values()) == {1, 2}
    # Every committed rotation was recorded with it, and nothing else was.
    assert len(rotate_due_entries(deployment)) == done

    resumed = run_kv(deployment, "rotate-due")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert (summary["due"], summary["rotated"], summary["failed"]) == (keys - done, keys - done, 0)
    finished = version_report(deployment)
    assert finished["problems"] == []
    assert finished["versions"] == {f"key-{number:05d}": 2 for number in range(keys)}
    assert len(rotate_due_entries(deployment)) == keys
