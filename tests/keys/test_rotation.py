"""Rotation policies: Azure's rules, the services, and `kv key rotation-policy`."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from accounts.models import User
from keys import rotation, services
from keys.models import KeyRotationPolicy, KeyVersion
from kvconsole.errors import BadParameter
from tests.cli import kv, kv_fails
from vaults.models import Vault

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 1, 31, tzinfo=UTC)


def rotate_after(duration: str) -> dict[str, object]:
    return {"trigger": {"timeAfterCreate": duration}, "action": {"type": "Rotate"}}


def notify_before(duration: str) -> dict[str, object]:
    return {"trigger": {"timeBeforeExpiry": duration}, "action": {"type": "notify"}}


def test_a_policy_without_notify_gets_azures_default() -> None:
    policy = rotation.clean_policy([rotate_after("P30D")], "P90D", now=NOW)
    assert [action.as_dict() for action in policy.actions] == [
        rotate_after("P30D"),
        {"trigger": {"timeBeforeExpiry": "P30D"}, "action": {"type": "Notify"}},
    ]


def test_action_types_are_read_in_any_case() -> None:
    policy = rotation.clean_policy([notify_before("P10D")], "P60D", now=NOW)
    assert policy.actions[0].action == "Notify"


@pytest.mark.parametrize(
    ("actions", "expiry", "message"),
    [
        ([], "P27D", "at least 28 days"),
        ([], "P4W", None),
        ([], "P1M", None),  # 28 days from 31 January: a calendar month
        ([rotate_after("P6D")], "P90D", "at least 7 days"),
        ([rotate_after("P84D")], "P90D", "at least 7 days"),
        ([rotate_after("P83D")], "P90D", None),
        (
            [{"trigger": {"timeBeforeExpiry": "P6D"}, "action": {"type": "Rotate"}}],
            "P90D",
            "7 days",
        ),
        (
            [{"trigger": {"timeBeforeExpiry": "P30D"}, "action": {"type": "Rotate"}}],
            "",
            "expiryTime",
        ),
        ([rotate_after("P30D"), rotate_after("P40D")], "P90D", "at most one Rotate"),
        ([notify_before("P10D"), notify_before("P20D")], "P90D", "at most one Notify"),
        (
            [{"trigger": {"timeAfterCreate": "P10D"}, "action": {"type": "Notify"}}],
            "P90D",
            "Notify",
        ),
        ([{"trigger": {}, "action": {"type": "Rotate"}}], "P90D", "exactly one"),
        (
            [
                {
                    "trigger": {"timeAfterCreate": "P1D", "timeBeforeExpiry": "P1D"},
                    "action": {"type": "Rotate"},
                }
            ],
            "P90D",
            "exactly one",
        ),
        (
            [{"trigger": {"timeAfterCreate": "P30D"}, "action": {"type": "Delete"}}],
            "P90D",
            "Rotate or Notify",
        ),
        ([rotate_after("thirty days")], "P90D", "ISO-8601"),
        ([rotate_after("P0D")], "P90D", "positive"),
        ([], "ninety days", "ISO-8601"),
        ([], "P99999Y", "hundred years"),
        ([], "P1000000000D", "hundred years"),
        ([], "P" + "0" * 40 + "30D", "hundred years"),
        ([rotate_after("P9999999D")], "P90D", "hundred years"),
        ([notify_before("P90D")], "P90D", "before the versions expire"),
        ("not a list", "P90D", "must be a list"),
        (["not an object"], "P90D", "trigger and an action"),
    ],
)
def test_azures_rules(actions: object, expiry: str, message: str | None) -> None:
    if message is None:
        rotation.clean_policy(actions, expiry, now=NOW)
        return
    with pytest.raises(BadParameter, match=message):
        rotation.clean_policy(actions, expiry, now=NOW)


def test_durations_count_calendar_months() -> None:
    assert rotation.length("P1M", NOW) == timedelta(days=28)
    assert rotation.after(NOW, "P1Y10D") == datetime(2027, 2, 10, tzinfo=UTC)


def test_set_replaces_and_get_shows_the_policy(system: User, vault: Vault, make_key) -> None:
    make_key("k", kty="EC")
    shown = services.key_rotation_policy_get(actor=system, vault_name=vault.name, name="k")
    assert shown.policy == rotation.DEFAULT_POLICY and shown.created_at is None
    services.key_rotation_policy_set(
        actor=system,
        vault_name=vault.name,
        name="k",
        lifetime_actions=[rotate_after("P30D")],
        expiry_time="P90D",
    )
    replaced = services.key_rotation_policy_set(
        actor=system, vault_name=vault.name, name="k", lifetime_actions=[], expiry_time="P60D"
    )
    stored = KeyRotationPolicy.objects.get()
    assert stored.expiry_time == "P60D" and stored.lifetime_actions == [
        {"trigger": {"timeBeforeExpiry": "P30D"}, "action": {"type": "Notify"}}
    ]
    assert replaced.created_at is not None and replaced.updated_at is not None
    assert replaced.updated_at >= replaced.created_at


def test_a_refused_policy_changes_nothing(system: User, vault: Vault, make_key) -> None:
    make_key("k", kty="EC")
    services.key_rotation_policy_set(
        actor=system, vault_name=vault.name, name="k", lifetime_actions=[], expiry_time="P60D"
    )
    with pytest.raises(BadParameter):
        services.key_rotation_policy_set(
            actor=system, vault_name=vault.name, name="k", lifetime_actions=[], expiry_time="P1D"
        )
    assert KeyRotationPolicy.objects.get().expiry_time == "P60D"


def test_rotation_dates_the_new_version_by_the_policy(system: User, vault: Vault, make_key) -> None:
    first = make_key("k", kty="EC")
    plain = services.key_rotate(actor=system, vault_name=vault.name, name="k")
    assert plain.expires is None
    services.key_rotation_policy_set(
        actor=system, vault_name=vault.name, name="k", lifetime_actions=[], expiry_time="P3M"
    )
    dated = services.key_rotate(actor=system, vault_name=vault.name, name="k")
    assert dated.expires == rotation.after(dated.created_at, "P3M")
    # The versions before it keep their own dates.
    assert KeyVersion.objects.get(pk=first.pk).expires is None


def test_the_cli_shows_and_updates_policies(vault: Vault, make_key, tmp_path: Path) -> None:
    make_key("k", kty="EC")
    shown = kv("key", "rotation-policy", "show", "--vault-name", vault.name, "--name", "k")
    assert shown["lifetimeActions"] == [
        {"trigger": {"timeBeforeExpiry": "P30D"}, "action": {"type": "Notify"}}
    ]
    assert shown["id"] == f"{vault.uri}keys/k/rotationpolicy"
    policy = tmp_path / "policy.json"
    policy.write_text(
        json.dumps(
            {"lifetimeActions": [rotate_after("P45D")], "attributes": {"expiryTime": "P90D"}}
        )
    )
    updated = kv(
        "key",
        "rotation-policy",
        "update",
        "--vault-name",
        vault.name,
        "--name",
        "k",
        "--value",
        f"@{policy}",
    )
    assert updated["attributes"]["expiryTime"] == "P90D"
    assert updated["lifetimeActions"][0] == rotate_after("P45D")
    error = kv_fails(
        "key",
        "rotation-policy",
        "update",
        "--vault-name",
        vault.name,
        "--name",
        "k",
        "--value",
        '{"lifetimeActions": [], "attributes": {"expiryTime": "P2D"}}',
    )
    assert "28 days" in str(error)
    assert "not valid JSON" in str(
        kv_fails(
            "key",
            "rotation-policy",
            "update",
            "--vault-name",
            vault.name,
            "--name",
            "k",
            "--value",
            "{",
        )
    )
