"""`kv alert ...` and `kv deliver`: in process, and the worker's loop as a real process."""

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from accounts.models import User
from kvconsole import devtls
from tests.cli import kv, kv_fails
from tests.conftest import Personas
from tests.processes import ROOT, make_deployment, manage_py, run_kv
from tests.receivers import WebhookReceiver, tls_files, webhook_receiver
from vaults import webhooks
from vaults.models import ActivityEntry, AlertRule, EventType, Notification, Operation, Vault

pytestmark = pytest.mark.django_db

HOOK = "https://alerts.example.com/kvconsole"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> devtls.TlsFiles:
    return tls_files(tmp_path_factory.mktemp("webhook-tls"))


@pytest.fixture
def receiver(tls: devtls.TlsFiles, settings: Any) -> Iterator[WebhookReceiver]:
    settings.KVCONSOLE_WEBHOOK_CA_FILE = str(tls.ca_certificate)
    with webhook_receiver(tls) as started:
        yield started


def create(*args: str) -> Any:
    return kv("alert", "rule", "create", *args)


def test_create_a_webhook_rule_prints_its_secret_once_and_list_shows_it(vault: Vault) -> None:
    created = create(
        *("--name", "expiry-hook", "--events", "KeyNearExpiry,Microsoft.KeyVault.KeyExpired"),
        *("--vault", vault.name, "--webhook", HOOK, "--schema", "cloudevents"),
    )
    rule = AlertRule.objects.get()
    assert created == {
        "name": "expiry-hook",
        "id": str(rule.uid),
        "enabled": True,
        "scope": f"/resourceGroups/{vault.resource_group.name}"
        f"/providers/Microsoft.KeyVault/vaults/{vault.name}",
        "eventTypes": ["Microsoft.KeyVault.KeyNearExpiry", "Microsoft.KeyVault.KeyExpired"],
        "channel": "webhook",
        "destination": HOOK,
        "schema": "cloudevents",
        "unauthorizedAccessAttempts": {"attempts": 10, "windowSeconds": 300},
        "createdAt": created["createdAt"],
        "createdBy": rule.created_by,
        "signingSecret": webhooks.rule_secret(rule),
    }
    assert len(created["signingSecret"]) == 64
    # Nothing secret is stored: the row holds the uid and salt it is derived from.
    assert created["signingSecret"] not in json.dumps(list(AlertRule.objects.values()), default=str)
    listed = kv("alert", "rule", "list")
    assert [item["name"] for item in listed] == ["expiry-hook"]
    assert "signingSecret" not in listed[0]
    table = kv("alert", "rule", "list", "--output", "table")
    assert "KeyNearExpiry, KeyExpired" in table
    entry = ActivityEntry.objects.get(operation=Operation.ALERT_RULE_CREATE)
    assert (entry.face, entry.vault_name, entry.target) == (
        "cli",
        vault.name,
        "alertRules/expiry-hook",
    )


def test_scopes_of_a_group_a_key_and_the_deployment(vault: Vault, make_key: Any) -> None:
    make_key("payments", kty="EC")
    group = vault.resource_group.name
    by_group = create(
        "--name", "by-group", "--events", "KeyExpired", "-g", group, "--email", "a@b.example"
    )
    by_key = create(
        *("--name", "by-key", "--events", "keynearexpiry", "--key", f"{vault.name}/payments"),
        *("--email", "a@b.example,c@d.example, a@b.example"),
    )
    everywhere = create(
        "--name", "everywhere", "--events", "SignInLockout", "--email", "a@b.example"
    )
    assert by_group["scope"] == f"/resourceGroups/{group}"
    assert by_key["scope"].endswith(f"/vaults/{vault.name}/keys/payments")
    assert by_key["destination"] == "a@b.example,c@d.example"
    assert "signingSecret" not in by_key
    assert everywhere["scope"] == "/"
    rule = AlertRule.objects.get(name="by-key")
    assert (rule.resource_group, rule.vault_name, rule.key_name) == (group, vault.name, "payments")


def test_threshold_of_unauthorized_access_attempts(db: None) -> None:
    created = create(
        *("--name", "hammering", "--events", "UnauthorizedAccessAttempts"),
        *("--attempts", "5", "--window", "2m", "--email", "sec@example.com"),
    )
    assert created["unauthorizedAccessAttempts"] == {"attempts": 5, "windowSeconds": 120}


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("--events", "KeyExploded", "--webhook", HOOK), 2, "Unknown event type 'KeyExploded'"),
        (("--events", "KeyExpired", "--webhook", "http://x.example/h"), 2, "is not HTTPS"),
        (
            ("--events", "KeyExpired", "--webhook", "https://u:p@x.example/h"),
            2,
            "may not hold a user name or password",
        ),
        (("--events", "KeyExpired", "--webhook", "https://"), 2, "is not a valid URL"),
        (("--events", "KeyExpired", "--email", "not-an-address"), 2, "not an email address"),
        (("--events", "KeyExpired", "--key", "novault", "--email", "a@b.example"), 2, "VAULT/KEY"),
        (("--events", "KeyExpired", "--vault", "missing", "--webhook", HOOK), 3, "VaultNotFound"),
        (
            ("--events", "KeyExpired", "-g", "missing", "--webhook", HOOK),
            3,
            "ResourceGroupNotFound",
        ),
        (("--events", "KeyExpired", "--window", "soon", "--webhook", HOOK), 2, "--window"),
    ],
)
def test_bad_input_is_a_clear_error_and_creates_nothing(
    vault: Vault, args: tuple[str, ...], code: int, message: str
) -> None:
    error = kv_fails("alert", "rule", "create", "--name", "bad-rule", *args)
    assert error.returncode == code and message in str(error)
    assert not AlertRule.objects.exists()


def test_a_bad_name_a_missing_key_and_a_duplicate_are_refused(vault: Vault) -> None:
    bad = kv_fails(
        "alert",
        "rule",
        "create",
        "--name",
        "no spaces",
        "--events",
        "KeyExpired",
        "--webhook",
        HOOK,
    )
    assert bad.returncode == 2 and "InvalidAlertRuleName" in str(bad)
    missing = kv_fails(
        "alert",
        "rule",
        "create",
        "--name",
        "rule-1",
        "--events",
        "KeyExpired",
        "--key",
        f"{vault.name}/nope",
        "--webhook",
        HOOK,
    )
    assert missing.returncode == 3 and "KeyNotFound" in str(missing)
    create("--name", "rule-1", "--events", "KeyExpired", "--webhook", HOOK)
    again = kv_fails(
        "alert", "rule", "create", "--name", "RULE-1", "--events", "KeyExpired", "--webhook", HOOK
    )
    assert again.returncode == 5 and "AlertRuleExists" in str(again)
    assert AlertRule.objects.count() == 1


def test_an_owner_of_the_vault_manages_its_rules_but_reads_no_secret_later(
    personas: Personas,
) -> None:
    vault = personas.vault
    owner = personas.owner.username
    created = create(
        *("--name", "mine", "--events", "KeyExpired", "--vault", vault.name),
        *("--webhook", HOOK, "--as", owner),
    )
    assert created["signingSecret"]
    assert kv("alert", "rule", "show", "--name", "mine", "--as", owner)["name"] == "mine"
    refused = kv_fails("alert", "rule", "secret", "--name", "mine", "--as", owner)
    assert refused.returncode == 4
    assert kv("alert", "rule", "secret", "--name", "mine") == {
        "name": "mine",
        "signingSecret": created["signingSecret"],
    }
    rekeyed = kv("alert", "rule", "rekey", "--name", "mine", "--as", owner)
    assert rekeyed["signingSecret"] not in ("", created["signingSecret"])
    assert (
        kv("alert", "rule", "secret", "--name", "mine")["signingSecret"]
        == (rekeyed["signingSecret"])
    )
    # Deployment-wide rules are the deployment principals'.
    wide = kv_fails(
        "alert",
        "rule",
        "create",
        "--name",
        "wide",
        "--events",
        "KeyExpired",
        "--webhook",
        HOOK,
        "--as",
        owner,
    )
    assert wide.returncode == 4 and not AlertRule.objects.filter(name="wide").exists()
    entry = ActivityEntry.objects.filter(operation=Operation.ALERT_RULE_SECRET_GET).first()
    assert entry is not None and entry.result == "Success"


def test_others_neither_see_nor_change_a_rule(personas: Personas) -> None:
    vault = personas.vault
    create("--name", "ops", "--events", "KeyExpired", "--vault", vault.name, "--webhook", HOOK)
    for person in (personas.outsider, personas.reader, personas.crypto_user):
        name = person.username
        assert kv("alert", "rule", "list", "--as", name) == []
        hidden = kv_fails("alert", "rule", "delete", "--name", "ops", "--as", name)
        assert hidden.returncode == 3 and "AlertRuleNotFound" in str(hidden)
        made = kv_fails(
            "alert",
            "rule",
            "create",
            "--name",
            f"x-{name}",
            "--events",
            "KeyExpired",
            "--vault",
            vault.name,
            "--webhook",
            HOOK,
            "--as",
            name,
        )
        assert made.returncode == 4
    assert list(AlertRule.objects.values_list("name", flat=True)) == ["ops"]


def test_update_and_delete(vault: Vault, make_key: Any) -> None:
    create("--name", "ops", "--events", "KeyNewVersionCreated", "--email", "a@b.example")
    updated = kv(
        "alert",
        "rule",
        "update",
        "--name",
        "ops",
        "--events",
        "KeyExpired,KeyNearExpiry",
        "--email",
        "c@d.example",
        "--enabled",
        "false",
    )
    assert updated["eventTypes"] == [EventType.KEY_EXPIRED, EventType.KEY_NEAR_EXPIRY]
    assert (updated["destination"], updated["enabled"]) == ("c@d.example", False)
    switched = kv_fails("alert", "rule", "update", "--name", "ops", "--webhook", HOOK)
    assert switched.returncode == 2 and "cannot change" in str(switched)

    kv(
        "alert",
        "rule",
        "update",
        "--name",
        "ops",
        "--events",
        "KeyNewVersionCreated",
        "--enabled",
        "true",
    )
    make_key("k", kty="EC")
    assert Notification.objects.filter(status="pending").count() == 1
    assert kv("alert", "rule", "delete", "--name", "ops") == ""
    assert not AlertRule.objects.exists()
    # Nothing is sent in the name of a deleted rule; its queue is dead-lettered, not lost.
    row = Notification.objects.get()
    assert (row.status, row.rule) == ("dead", None)
    refused = kv_fails("alert", "requeue", "--id", str(row.uid))
    assert refused.returncode == 5 and "AlertRuleDeleted" in str(refused)


def test_alert_test_notifies_that_rule_only_and_deliver_sends_it(
    system: User, vault: Vault, receiver: WebhookReceiver
) -> None:
    created = create(
        "--name",
        "ops-hook",
        "--events",
        "KeyExpired",
        "--vault",
        vault.name,
        "--webhook",
        receiver.url(),
    )
    receiver.secrets["/hook"] = created["signingSecret"]
    create("--name", "other", "--events", "KeyExpired", "--webhook", HOOK)
    tested = kv("alert", "test", "--rule", "ops-hook")
    assert (tested["eventType"], tested["rule"]) == ("kvconsole.AlertTest", "ops-hook")
    assert list(Notification.objects.values_list("rule__name", flat=True)) == ["ops-hook"]

    summary = kv("deliver")
    assert summary == {"delivered": 1, "retried": 0, "deadLettered": 0, "deferred": 0}
    (delivery,) = receiver.accepted()
    (body,) = delivery.json()
    assert body["eventType"] == "kvconsole.AlertTest" and body["topic"] == vault.resource_id
    assert body["data"]["RuleName"] == "ops-hook"
    assert kv("deliver")["delivered"] == 0
    listed = kv("alert", "notification", "list", "--status", "delivered")
    assert [item["id"] for item in listed] == [delivery.delivery_id]
    entry = ActivityEntry.objects.filter(operation=Operation.NOTIFICATION_DELIVER).first()
    assert entry is not None and (entry.face, entry.result) == ("cli", "Success")


def test_requeue_refusals(personas: Personas, system: User) -> None:
    vault = personas.vault
    create("--name", "ops", "--events", "KeyExpired", "--vault", vault.name, "--webhook", HOOK)
    kv("alert", "test", "--rule", "ops")
    row = Notification.objects.get()
    pending = kv_fails("alert", "requeue", "--id", str(row.uid))
    assert pending.returncode == 5 and "NotificationNotDead" in str(pending)
    assert kv_fails("alert", "requeue", "--id", "nope").returncode == 2
    Notification.objects.update(status="dead")
    hidden = kv_fails("alert", "requeue", "--id", str(row.uid), "--as", "outsider")
    assert hidden.returncode == 3
    everything = kv_fails("alert", "requeue", "--all-dead", "--as", personas.owner.username)
    assert everything.returncode == 4
    assert kv("alert", "requeue", "--id", str(row.uid), "--as", personas.owner.username) == {
        "requeued": 1
    }
    Notification.objects.update(status="dead")
    assert kv("alert", "requeue", "--all-dead") == {"requeued": 1}
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("pending", 0)


@pytest.mark.slow
@pytest.mark.alone
def test_the_loop_delivers_as_events_happen_and_stops_cleanly_on_sigterm(
    tmp_path: Path, tls: devtls.TlsFiles
) -> None:
    env = make_deployment(tmp_path) | {
        "KVCONSOLE_WEBHOOK_CA_FILE": str(tls.ca_certificate),
        "KVCONSOLE_ALERT_POLL_SECONDS": "0.2",
    }
    with webhook_receiver(tls) as receiver:
        created = run_kv(
            env,
            "alert",
            "rule",
            "create",
            "--name",
            "ops-hook",
            "--events",
            "KeyExpired",
            "--webhook",
            receiver.url(),
        )
        assert created.returncode == 0, created.stderr
        receiver.secrets["/hook"] = json.loads(created.stdout)["signingSecret"]
        worker = subprocess.Popen(
            manage_py("kv", "deliver", "--loop"),
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            for _ in range(2):
                assert run_kv(env, "alert", "test", "--rule", "ops-hook").returncode == 0
            deadline = time.monotonic() + 30
            while len(receiver.accepted()) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert len(receiver.accepted()) == 2
            worker.send_signal(signal.SIGTERM)
            out, err = worker.communicate(timeout=30)
        finally:
            worker.kill()
    assert worker.returncode == 0, err
    assert json.loads(out) == {"delivered": 2, "retried": 0, "deadLettered": 0, "deferred": 0}
