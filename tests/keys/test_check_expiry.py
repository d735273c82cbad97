"""`kv check-expiry`: KeyNearExpiry and KeyExpired for keys' current versions, each raised
once per version and threshold, whatever the number of runs, and by two runs at once."""

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from accounts.models import User
from keys import services
from keys.models import KeyVersion
from kvconsole import clock
from tests.cli import kv, kv_fails
from tests.factories import UserFactory, VaultFactory
from tests.processes import kv_at_once, make_deployment, shell
from vaults import services as vault_services
from vaults.models import ActivityEntry, AlertRule, Event, EventType, Notification, Result, Vault

pytestmark = pytest.mark.django_db

NEAR, EXPIRED = EventType.KEY_NEAR_EXPIRY, EventType.KEY_EXPIRED


def expiring_in(make_key: Any, name: str, days: float, **options: Any) -> KeyVersion:
    version: KeyVersion = make_key(
        name, kty="EC", expires=clock.now() + timedelta(days=days), **options
    )
    return version


def raised(event_type: str = NEAR) -> list[tuple[str, str]]:
    """(key name, once key) of each event of `event_type`, oldest first."""
    return [
        (event.subject, event.once or "")
        for event in Event.objects.filter(event_type=event_type).order_by("id")
    ]


def set_notify(system: User, vault: Vault, name: str, before: str) -> None:
    services.key_rotation_policy_set(
        actor=system,
        vault_name=vault.name,
        name=name,
        lifetime_actions=[{"trigger": {"timeBeforeExpiry": before}, "action": {"type": "Notify"}}],
    )


def test_a_key_within_30_days_of_expiry_raises_key_near_expiry_once(
    make_key: Any, vault: Vault
) -> None:
    version = expiring_in(make_key, "soon", 10)
    assert version.expires is not None
    expiring_in(make_key, "later", 40)

    first = kv("check-expiry")
    second = kv("check-expiry")

    assert raised() == [("soon", f"near-expiry:{version.pk}:P30D")]
    assert raised(EXPIRED) == []
    assert first["checked"] == 2 and [n["key"] for n in first["nearExpiry"]] == ["soon"]
    assert first["nearExpiry"][0] == {
        "vault": vault.name,
        "key": "soon",
        "version": version.version,
        "exp": version.expires.isoformat(),
        "timeBeforeExpiry": "P30D",
    }
    assert second["nearExpiry"] == [] and second["expired"] == []
    event = Event.objects.get(event_type=NEAR)
    assert event.data["Version"] == version.version and event.data["ObjectName"] == "soon"
    assert event.data["EXP"] == int(version.expires.timestamp())


def test_each_notice_and_each_run_is_in_the_activity_log(make_key: Any, vault: Vault) -> None:
    version = expiring_in(make_key, "soon", 10)
    kv("check-expiry")
    kv("check-expiry")

    entries = ActivityEntry.objects.filter(
        operation__in=["KeyCheckExpiry", "KeyNearExpiryEventGridNotification"]
    ).order_by("seq")
    assert [(entry.operation, entry.result) for entry in entries] == [
        ("KeyNearExpiryEventGridNotification", Result.SUCCESS),
        ("KeyCheckExpiry", Result.SUCCESS),
        ("KeyCheckExpiry", Result.SUCCESS),
    ]
    notice = entries[0]
    assert (notice.vault_name, notice.target) == (
        vault.name,
        f"vaults/{vault.name}/keys/soon/{version.version}",
    )
    assert notice.actor_name.startswith("cli:")


def test_a_moved_clock_brings_near_expiry_then_expiry_each_once(
    make_key: Any, settings: Any
) -> None:
    version = expiring_in(make_key, "k", 40)
    kv("check-expiry")
    assert raised() == [] and raised(EXPIRED) == []

    settings.KVCONSOLE_CLOCK_OFFSET = "P11D"
    kv("check-expiry")
    assert raised() == [("k", f"near-expiry:{version.pk}:P30D")] and raised(EXPIRED) == []

    settings.KVCONSOLE_CLOCK_OFFSET = "P41D"
    summary = kv("check-expiry")
    kv("check-expiry")
    assert raised(EXPIRED) == [("k", f"expired:{version.pk}")]
    assert len(raised()) == 1
    assert [notice["key"] for notice in summary["expired"]] == ["k"]


def test_a_key_found_already_expired_raises_both_notices(make_key: Any, settings: Any) -> None:
    expiring_in(make_key, "k", 5)
    settings.KVCONSOLE_CLOCK_OFFSET = "P6D"
    summary = kv("check-expiry")
    assert len(summary["nearExpiry"]) == 1 and len(summary["expired"]) == 1
    assert len(raised()) == 1 and len(raised(EXPIRED)) == 1


def test_the_notify_action_sets_the_threshold(make_key: Any, system: User, vault: Vault) -> None:
    version = expiring_in(make_key, "k", 40)
    set_notify(system, vault, "k", "P45D")
    kv("check-expiry")
    assert raised() == [("k", f"near-expiry:{version.pk}:P45D")]


def test_a_changed_notify_threshold_raises_a_notice_of_its_own(
    make_key: Any, system: User, vault: Vault
) -> None:
    version = expiring_in(make_key, "k", 10)
    kv("check-expiry")
    set_notify(system, vault, "k", "P20D")
    kv("check-expiry")
    kv("check-expiry")
    set_notify(system, vault, "k", "P5D")
    kv("check-expiry")
    assert raised() == [
        ("k", f"near-expiry:{version.pk}:P30D"),
        ("k", f"near-expiry:{version.pk}:P20D"),
    ]


def test_a_rotated_keys_old_version_raises_nothing_new(
    make_key: Any, system: User, vault: Vault, settings: Any
) -> None:
    old = expiring_in(make_key, "k", 10)
    kv("check-expiry")
    services.key_rotate(actor=system, vault_name=vault.name, name="k")

    settings.KVCONSOLE_CLOCK_OFFSET = "P11D"
    summary = kv("check-expiry")

    assert summary == {"dryRun": False, "checked": 0, "nearExpiry": [], "expired": []}
    assert raised() == [("k", f"near-expiry:{old.pk}:P30D")] and raised(EXPIRED) == []


def test_deleted_keys_and_keys_of_deleted_vaults_raise_nothing(
    make_key: Any, system: User, vault: Vault
) -> None:
    expiring_in(make_key, "gone", 10)
    services.key_delete(actor=system, vault_name=vault.name, name="gone")
    elsewhere = VaultFactory.create(name="closing")
    expiring_in(make_key, "k", 10, in_vault=elsewhere)
    vault_services.vault_delete(actor=system, name=elsewhere.name, force=True)
    assert kv("check-expiry")["checked"] == 0
    assert raised() == []


def test_a_dry_run_lists_the_notices_and_raises_none(make_key: Any) -> None:
    expiring_in(make_key, "k", 10)
    summary = kv("check-expiry", "--dry-run")
    assert summary["dryRun"] is True and [n["key"] for n in summary["nearExpiry"]] == ["k"]
    assert raised() == []
    assert not ActivityEntry.objects.filter(operation="KeyNearExpiryEventGridNotification")


def test_vault_narrows_the_run_to_one_vault(make_key: Any, vault: Vault) -> None:
    other = VaultFactory.create(name="other-vault")
    expiring_in(make_key, "here", 10)
    expiring_in(make_key, "there", 10, in_vault=other)
    kv("check-expiry", "--vault", other.name)
    assert [name for name, _ in raised()] == ["there"]
    assert kv_fails("check-expiry", "--vault", "no-such-vault").returncode == 3


def test_only_deployment_principals_may_run_it(make_key: Any) -> None:
    expiring_in(make_key, "k", 10)
    person = UserFactory.create(username="person")
    error = kv_fails("check-expiry", "--as", person.username)
    assert "Forbidden" in str(error)
    assert raised() == []


def test_every_batch_is_reached(make_key: Any, system: User) -> None:
    for number in range(5):
        expiring_in(make_key, f"k{number}", 10)
    check = services.key_check_expiry(actor=system, batch_size=2)
    assert check.checked == 5 and len(check.near_expiry) == 5
    assert len(raised()) == 5


def test_a_notice_is_queued_for_the_rules_that_cover_it(make_key: Any, vault: Vault) -> None:
    rule = AlertRule.objects.create(
        name="expiry",
        vault_name=vault.name,
        event_types=[NEAR, EXPIRED],
        channel=AlertRule.Channel.EMAIL,
        target="keys@example.com",
    )
    expiring_in(make_key, "k", 10)
    kv("check-expiry")
    kv("check-expiry")
    [notification] = Notification.objects.all()
    assert notification.rule == rule and notification.event.event_type == NEAR


COUNT_NOTICES = """
import json
from django.db.models import Count
from vaults.models import Event, EventType
print(json.dumps({
    "events": Event.objects.filter(event_type=EventType.KEY_NEAR_EXPIRY).count(),
    "repeated": Event.objects.filter(event_type=EventType.KEY_NEAR_EXPIRY)
    .values("once").annotate(n=Count("id")).filter(n__gt=1).count(),
}))
"""


@pytest.mark.slow
@pytest.mark.alone
def test_two_runs_at_once_raise_each_notice_once(tmp_path: Path) -> None:
    keys = 1000
    deployment = make_deployment(tmp_path)
    shell(
        deployment,
        "from datetime import timedelta\n"
        "from tests.keys.due_keys import add_due_keys, vault_named\n"
        f"add_due_keys(vault_named('expiring'), {keys}, expires_in=timedelta(days=10))\n",
    )
    raised_by = [
        len(json.loads(stdout)["nearExpiry"]) for stdout in kv_at_once(deployment, "check-expiry")
    ]
    assert json.loads(shell(deployment, COUNT_NOTICES)) == {"events": keys, "repeated": 0}
    # Between them the runs raised each notice once, whichever got to it first. (On SQLite
    # the run holding the write lock between its short transactions tends to keep it, so the
    # other mostly finds the notices raised; on PostgreSQL they interleave.)
    assert sum(raised_by) == keys, raised_by
