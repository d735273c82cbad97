"""Webhook delivery through the outbox against the same HTTP client posting the same bodies.

One worker pass delivers a backlog of notifications to a local HTTPS receiver (threads of
this process, checking every signature): claiming each row, building and signing its body,
posting it in the endpoint's lanes and recording it delivered, in a database file in WAL
mode. The baseline is the worker's own client configuration (same TLS context, same pool)
posting the same pre-built, pre-signed bodies from as many threads as the outbox has lanes
to the same receiver, with no database at all. The issue's target: at least 200 webhooks a
second with one worker; the ratio to the baseline is reported beside it.
"""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from django.db import transaction

from accounts.models import User
from kvconsole import clock
from tests.benchmarks.conftest import BenchReport
from tests.receivers import tls_files, webhook_receiver
from vaults import alert_messages, delivery, events, services, webhooks
from vaults.delivery import Policy
from vaults.models import AlertRule, EventType, Notification

BACKLOG = 2000
ROUNDS = 3


@pytest.mark.django_db(transaction=True)
def test_the_outbox_delivers_200_webhooks_a_second(
    system: User, tmp_path: Path, settings: object, bench_report: BenchReport
) -> None:
    tls = tls_files(tmp_path / "tls")
    settings.KVCONSOLE_WEBHOOK_CA_FILE = str(tls.ca_certificate)  # type: ignore[attr-defined]
    policy = Policy.from_settings()
    with webhook_receiver(tls) as receiver:
        issued = services.alert_rule_create(
            actor=system,
            name="bench-hook",
            event_types=["KeyExpired"],
            channel=AlertRule.Channel.WEBHOOK,
            target=receiver.url(),
        )
        assert issued.secret is not None
        receiver.secrets["/hook"] = issued.secret
        with transaction.atomic():
            for index in range(BACKLOG):
                events.emit(
                    EventType.KEY_EXPIRED,
                    vault=None,
                    subject=f"key{index}",
                    data={"ObjectName": f"key{index}"},
                    only_rule=issued.rule,
                )
        requests = [
            _request(row, issued.secret)
            for row in Notification.objects.select_related("event", "rule")
        ]

        def outbox() -> float:
            Notification.objects.update(
                status=Notification.Status.PENDING, attempts=0, next_attempt_at=clock.now()
            )
            started = time.perf_counter()
            summary = delivery.notifications_deliver(actor=system)
            elapsed = time.perf_counter() - started
            assert summary.delivered == BACKLOG
            return BACKLOG / elapsed

        def baseline() -> float:
            with httpx.Client(
                verify=delivery._ssl_context(),
                timeout=httpx.Timeout(policy.timeout),
                limits=httpx.Limits(
                    max_connections=policy.concurrency,
                    max_keepalive_connections=policy.concurrency,
                ),
            ) as client:
                lanes = policy.lanes_per_endpoint
                errors: list[int] = []
                lock = threading.Lock()

                def post(share: list[tuple[bytes, dict[str, str]]]) -> None:
                    for body, headers in share:
                        answer = client.post(receiver.url(), content=body, headers=headers)
                        if answer.status_code != 200:
                            with lock:
                                errors.append(answer.status_code)

                started = time.perf_counter()
                with ThreadPoolExecutor(lanes) as pool:
                    list(pool.map(post, [requests[lane::lanes] for lane in range(lanes)]))
                elapsed = time.perf_counter() - started
            assert not errors
            return BACKLOG / elapsed

        outbox_rates, baseline_rates = [], []
        for _ in range(ROUNDS):
            baseline_rates.append(baseline())
            outbox_rates.append(outbox())
        accepted = len(receiver.accepted())
    assert accepted == 2 * ROUNDS * BACKLOG

    rate, direct = max(outbox_rates), max(baseline_rates)
    print(
        f"\noutbox: {rate:,.0f} webhooks/s with one worker; the same client posting the "
        f"same bodies without the outbox: {direct:,.0f}/s; ratio {rate / direct:.2f}"
    )
    bench_report.ratio(
        "Outbox webhook delivery, one worker",
        measured=f"{rate:,.0f} webhooks/s",
        baseline=f"{direct:,.0f}/s posted directly",
        ratio=rate / direct,
        target=">= 200 webhooks/s",
        met=rate >= 200,
    )
    assert rate >= 200


def _request(row: Notification, secret: str) -> tuple[bytes, dict[str, str]]:
    body, content_type = alert_messages.webhook_body(row.event, row.schema)
    return body, {
        "Content-Type": content_type,
        webhooks.SIGNATURE_HEADER: webhooks.signature(secret, body),
        webhooks.DELIVERY_HEADER: str(row.uid),
        "aeg-event-type": "Notification",
    }
