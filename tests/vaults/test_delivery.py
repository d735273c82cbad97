"""The delivery worker against real receivers on loopback: an HTTPS webhook receiver that
checks signatures, and an SMTP server (aiosmtpd)."""

import hashlib
import hmac
import json
import ssl
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from accounts.models import User
from kvconsole import clock, devtls
from kvconsole.errors import Forbidden
from tests.processes import ROOT, make_deployment, manage_py, query, run_kv
from tests.receivers import SmtpServer, WebhookReceiver, tls_files, verify, webhook_receiver
from vaults import delivery, services
from vaults.delivery import Attempt, Outcome, Policy, Summary, Worker
from vaults.models import ActivityEntry, AlertRule, Event, Notification, Operation, Vault

pytestmark = pytest.mark.django_db

Status = Notification.Status


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> devtls.TlsFiles:
    return tls_files(tmp_path_factory.mktemp("webhook-tls"))


@pytest.fixture(autouse=True)
def quick(settings: Any, tls: devtls.TlsFiles) -> None:
    """The worker trusts the receivers' CA; retries come after milliseconds, not minutes."""
    settings.KVCONSOLE_WEBHOOK_CA_FILE = str(tls.ca_certificate)
    settings.KVCONSOLE_ALERT_BACKOFF_BASE_SECONDS = 0.01
    settings.KVCONSOLE_ALERT_BACKOFF_CAP_SECONDS = 0.05
    settings.KVCONSOLE_ALERT_TIMEOUT_SECONDS = 3


@pytest.fixture
def receiver(tls: devtls.TlsFiles) -> Iterator[WebhookReceiver]:
    with webhook_receiver(tls) as started:
        yield started


def webhook_rule(
    actor: User,
    receiver: WebhookReceiver,
    name: str,
    *,
    path: str = "/hook",
    schema: str = AlertRule.Schema.EVENT_GRID,
) -> AlertRule:
    issued = services.alert_rule_create(
        actor=actor,
        name=name,
        event_types=["KeyNewVersionCreated"],
        channel=AlertRule.Channel.WEBHOOK,
        target=receiver.url(path),
        schema=schema,
    )
    assert issued.secret is not None
    receiver.secrets[path] = issued.secret
    return issued.rule


def deliver(actor: User) -> Summary:
    return delivery.notifications_deliver(actor=actor)


def deliver_until(actor: User, done: Callable[[], bool], *, passes: int = 200) -> int:
    """Run passes until `done`; how many it took."""
    for count in range(1, passes + 1):
        deliver(actor)
        if done():
            return count
        time.sleep(0.01)
    raise AssertionError(f"still not done after {passes} passes")


def all_delivered() -> bool:
    return not Notification.objects.exclude(status=Status.DELIVERED).exists()


def test_every_notification_arrives_exactly_once_though_the_receiver_was_down(
    system: User, make_key: Any, receiver: WebhookReceiver
) -> None:
    webhook_rule(system, receiver, "ops-hook")
    for index in range(6):
        make_key(f"key{index}", kty="EC")
    uids = {str(uid) for uid in Notification.objects.values_list("uid", flat=True)}
    assert len(uids) == 6

    receiver.stop()
    for _ in range(3):
        deliver(system)
    assert not Notification.objects.exclude(status=Status.PENDING).exists()
    assert all("ConnectError" in row.last_error for row in Notification.objects.exclude(attempts=0))

    receiver.start()
    receiver.answer = 503
    deliver(system)
    assert receiver.deliveries and not receiver.accepted()
    assert not Notification.objects.filter(status=Status.DELIVERED).exists()

    receiver.answer = 200
    deliver_until(system, all_delivered)
    arrived = Counter(item.delivery_id for item in receiver.accepted())
    assert set(arrived) == uids and set(arrived.values()) == {1}
    assert all(row.delivered_at is not None for row in Notification.objects.all())

    assert deliver(system).delivered == 0
    assert len(receiver.accepted()) == 6


def test_a_hanging_endpoint_does_not_delay_another(
    system: User, make_key: Any, tls: devtls.TlsFiles, settings: Any
) -> None:
    settings.KVCONSOLE_ALERT_CONCURRENCY = 8
    settings.KVCONSOLE_ALERT_LANES_PER_ENDPOINT = 4
    with (
        webhook_receiver(tls, hang=threading.Event()) as hanging,
        webhook_receiver(tls) as healthy,
    ):
        webhook_rule(system, hanging, "hangs")
        webhook_rule(system, healthy, "answers")
        for index in range(8):
            make_key(f"key{index}", kty="EC")
        started = time.monotonic()
        deliver(system)
        elapsed = time.monotonic() - started
        answered = [item.at - started for item in healthy.accepted()]
    assert len(answered) == 8
    # The healthy receiver had everything long before the hanging one's 3 s timeout...
    assert max(answered) < 2.0
    # ...and the pass cost one timeout per hanging lane, side by side, not one per row.
    assert elapsed < 9
    hanging_rows = Notification.objects.filter(rule__name="hangs")
    assert all(row.status == Status.PENDING for row in hanging_rows)
    timed_out = [row for row in hanging_rows if row.attempts == 1]
    assert len(timed_out) == 4 and all("No answer within 3 s" in r.last_error for r in timed_out)
    # The rest of each hanging lane was put back untried.
    assert sorted(row.attempts for row in hanging_rows) == [0, 0, 0, 0, 1, 1, 1, 1]
    assert Notification.objects.filter(rule__name="answers", status=Status.DELIVERED).count() == 8


def test_dead_lettered_after_the_last_attempt_and_delivered_once_requeued(
    system: User, make_key: Any, receiver: WebhookReceiver, settings: Any
) -> None:
    settings.KVCONSOLE_ALERT_MAX_ATTEMPTS = 3
    rule = webhook_rule(system, receiver, "ops-hook")
    make_key("k", kty="EC")
    # A 4xx other than 408 and 429 is retried too: a receiver being deployed answers 404.
    receiver.answer = 404
    deliver_until(system, lambda: Notification.objects.filter(status=Status.DEAD).exists())
    row = Notification.objects.get()
    assert (row.attempts, row.last_error) == (3, "HTTP 404 Not Found")
    assert len(receiver.deliveries) == 3
    assert receiver.secrets["/hook"] not in row.last_error
    entry = ActivityEntry.objects.get(operation=Operation.NOTIFICATION_DEAD_LETTER)
    assert (entry.result, entry.target) == ("Success", f"notifications/{row.uid}")
    assert entry.vault_name == Event.objects.get().vault_name != rule.vault_name

    assert deliver(system).as_dict() == Summary().as_dict()
    assert len(receiver.deliveries) == 3

    assert services.notification_requeue(actor=system, uids=[str(row.uid)]) == 1
    row.refresh_from_db()
    assert (row.status, row.attempts) == (Status.PENDING, 0)
    receiver.answer = 200
    assert deliver(system).delivered == 1
    assert [item.delivery_id for item in receiver.accepted()] == [str(row.uid)]
    assert ActivityEntry.objects.filter(
        operation=Operation.NOTIFICATION_REQUEUE, result="Success"
    ).exists()


def test_a_body_altered_on_the_way_or_a_forged_signature_is_rejected(
    system: User, make_key: Any, receiver: WebhookReceiver, tls: devtls.TlsFiles
) -> None:
    webhook_rule(system, receiver, "ops-hook")
    make_key("payments", kty="EC")
    deliver(system)
    (genuine,) = receiver.accepted()
    secret, signature = receiver.secrets["/hook"], genuine.headers["x-kvconsole-signature"]
    assert verify(secret, genuine.body, signature)

    altered = genuine.body.replace(b'"payments"', b'"payroll"')
    assert altered != genuine.body and not verify(secret, altered, signature)
    forged = services.alert_rule_create(
        actor=system,
        name="forger",
        event_types=["KeyExpired"],
        channel=AlertRule.Channel.WEBHOOK,
        target="https://elsewhere.example/hook",
    ).secret
    assert forged is not None
    with httpx.Client(verify=ssl.create_default_context(cafile=tls.ca_certificate)) as client:
        for body, header in (
            (altered, signature),
            (altered, receiver_signature(forged, altered)),
        ):
            answer = client.post(
                receiver.url(),
                content=body,
                headers={
                    "X-Kvconsole-Signature": header,
                    "X-Kvconsole-Delivery": genuine.delivery_id,
                },
            )
            assert answer.status_code == 401
    assert len(receiver.accepted()) == 1


def receiver_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_event_grid_posts_an_array_and_cloudevents_one_structured_event(
    system: User, make_key: Any, receiver: WebhookReceiver, vault: Vault
) -> None:
    webhook_rule(system, receiver, "grid", path="/grid")
    webhook_rule(system, receiver, "cloud", path="/cloud", schema=AlertRule.Schema.CLOUD_EVENTS)
    version = make_key("payments", kty="EC")
    deliver(system)
    event = Event.objects.get()
    (grid,) = receiver.accepted("/grid")
    (cloud,) = receiver.accepted("/cloud")

    assert grid.headers["content-type"] == "application/json; charset=utf-8"
    assert grid.headers["aeg-event-type"] == "Notification"
    assert grid.delivery_id == str(Notification.objects.get(rule__name="grid").uid)
    body = grid.json()
    assert isinstance(body, list) and len(body) == 1
    assert body[0]["id"] == str(event.uid)
    assert body[0]["eventType"] == "Microsoft.KeyVault.KeyNewVersionCreated"
    assert body[0]["topic"] == vault.resource_id and body[0]["subject"] == "payments"
    assert body[0]["data"]["Version"] == version.version
    assert (body[0]["dataVersion"], body[0]["metadataVersion"]) == ("1", "1")

    assert cloud.headers["content-type"] == "application/cloudevents+json; charset=utf-8"
    assert "aeg-event-type" not in cloud.headers
    assert cloud.delivery_id == str(Notification.objects.get(rule__name="cloud").uid)
    body = cloud.json()
    assert isinstance(body, dict)
    assert (body["specversion"], body["id"], body["source"]) == (
        "1.0",
        str(event.uid),
        vault.resource_id,
    )
    assert body["type"] == "Microsoft.KeyVault.KeyNewVersionCreated"
    assert body["datacontenttype"] == "application/json"
    assert body["data"]["ObjectName"] == "payments"


def test_an_email_names_the_event_object_vault_and_time_and_carries_the_event(
    system: User, make_key: Any, vault: Vault, settings: Any
) -> None:
    smtp = SmtpServer()
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": smtp.port, "timeout": 3},
        }
    }
    settings.DEFAULT_FROM_EMAIL = "kvconsole@example.com"
    services.alert_rule_create(
        actor=system,
        name="ops-mail",
        event_types=["KeyNewVersionCreated"],
        channel=AlertRule.Channel.EMAIL,
        target="ops@example.com, security@example.com",
    )
    expires = datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)
    version = make_key("payments", kty="EC", expires=expires)
    notification = Notification.objects.get()

    # The SMTP server is not there yet: the message waits, then goes once.
    deliver(system)
    notification.refresh_from_db()
    assert notification.status == Status.PENDING and "SMTP" in notification.last_error
    smtp.start()
    try:
        deliver_until(system, all_delivered)
    finally:
        smtp.stop()

    ((recipients, message),) = smtp.messages
    assert recipients == ["ops@example.com", "security@example.com"]
    assert message["From"] == "kvconsole@example.com"
    assert message["Message-ID"] == f"<{notification.uid}@kvconsole>"
    assert message["Subject"] == (
        f"[kvconsole] Key new version created: payments in vault {vault.name}"
    )
    text = message.get_body(("plain",))
    assert text is not None
    content = text.get_content()
    event = Event.objects.get()
    assert "Key new version created (Microsoft.KeyVault.KeyNewVersionCreated)" in content
    assert f"Object:   Key payments, version {version.version}" in content
    assert f"Vault:    {vault.name} in resource group {vault.resource_group.name}" in content
    assert f"Time:     {event.time.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" in content
    assert "Expires:  2031-01-02 03:04:05 UTC" in content
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_filename() == "event.json"
    attached = json.loads(attachment.get_content())
    assert attached[0]["id"] == str(event.uid) and attached[0]["data"]["ObjectName"] == "payments"


def test_a_claim_is_exclusive_and_a_stale_worker_cannot_settle_a_reclaimed_row(
    system: User, make_key: Any, receiver: WebhookReceiver
) -> None:
    webhook_rule(system, receiver, "ops-hook")
    make_key("k", kty="EC")
    policy = Policy.from_settings()
    with (
        Worker(actor=system, policy=policy) as first,
        Worker(actor=system, policy=policy) as second,
    ):
        (held,) = first._claim(clock.now(), free_lanes=1)
        assert second._claim(clock.now(), free_lanes=1) == []
        # The first worker stalls past its lease; the second claims the row again.
        Notification.objects.update(next_attempt_at=clock.now() - timedelta(seconds=1))
        (again,) = second._claim(clock.now(), free_lanes=1)
        assert (held.attempts, again.attempts) == (1, 2)
        first._record([Attempt(held, Outcome.DELIVERED)])
        assert Notification.objects.get().status == Status.PENDING
        second._record([Attempt(again, Outcome.DELIVERED)])
    row = Notification.objects.get()
    assert (row.status, row.attempts) == (Status.DELIVERED, 2)


def test_only_deployment_principals_run_the_worker(outsider: User) -> None:
    with pytest.raises(Forbidden):
        delivery.notifications_deliver(actor=outsider)
    entry = ActivityEntry.objects.get(operation=Operation.NOTIFICATION_DELIVER)
    assert entry.result == "Forbidden"


@pytest.mark.slow
@pytest.mark.alone
def test_two_worker_processes_at_once_send_each_notification_once(
    tmp_path: Path, tls: devtls.TlsFiles, receiver: WebhookReceiver
) -> None:
    env = make_deployment(tmp_path)
    env |= {
        "KVCONSOLE_WEBHOOK_CA_FILE": str(tls.ca_certificate),
        "KVCONSOLE_ALERT_BACKOFF_BASE_SECONDS": "0.01",
        "KVCONSOLE_ALERT_BACKOFF_CAP_SECONDS": "0.05",
        "KVCONSOLE_ALERT_LANE_ROWS": "5",
    }
    created = run_kv(
        env,
        *("alert", "rule", "create", "--name", "ops-hook", "--events", "AlertTest"),
        *("--webhook", receiver.url()),
    )
    assert created.returncode == 2 and "Unknown event type 'AlertTest'" in created.stderr
    created = run_kv(
        env,
        *("alert", "rule", "create", "--name", "ops-hook", "--events", "KeyExpired"),
        *("--webhook", receiver.url()),
    )
    assert created.returncode == 0, created.stderr
    receiver.secrets["/hook"] = json.loads(created.stdout)["signingSecret"]
    # 300 test events, queued in one process.
    script = (
        "from accounts.services import cli_principal\n"
        "from vaults import services\n"
        "actor = cli_principal()\n"
        "for _ in range(300): services.alert_rule_test(actor=actor, name='ops-hook')\n"
    )
    subprocess.run(manage_py("shell", "-c", script), cwd=ROOT, env=env, check=True)
    workers = [
        subprocess.Popen(
            manage_py("kv", "deliver"),
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    summaries = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        summaries.append(json.loads(out))
    arrived = Counter(item.delivery_id for item in receiver.accepted())
    assert len(arrived) == 300 and set(arrived.values()) == {1}
    assert sum(summary["delivered"] for summary in summaries) == 300
    statuses = query(env, "SELECT status, COUNT(*) FROM vaults_notification GROUP BY status")
    assert statuses == [("delivered", 300)]
