"""The delivery worker: sends the outbox's pending notifications by webhook and email.

All state is in the notification rows, so a worker can stop (or be killed) at any moment and
the next one carries on. A worker claims a due row by moving its `next_attempt_at` forward
as a lease and counting the attempt, in one conditional UPDATE checked by rows affected:
two workers never send the same row at once, and a worker that died mid-send only delays
its rows until the lease ends. A receiver that got a body but whose answer was lost sees it
again; the idempotency id (the notification's uid) tells it so.

Deliveries run on a thread pool, grouped into lanes by endpoint (a webhook URL, or the
SMTP server for every email): an endpoint gets at most `lanes_per_endpoint` lanes at once,
and a lane whose endpoint fails puts back the rest of its rows untried, so a slow or dead
endpoint costs one timeout per lane and never holds the threads the others need. Only the
main thread touches the database.

A failure is retried after an exponential backoff with full jitter; after the last allowed
attempt the row is dead-lettered (recorded in the activity log) until someone requeues it.
"""

import random
import signal
import ssl
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from smtplib import SMTPException, SMTPRecipientsRefused, SMTPResponseException
from typing import Any

import certifi
import httpx
from django.conf import settings
from django.db import connection, transaction

from accounts.models import User
from kvconsole import clock

from . import activity, webhooks
from .activity import operation
from .alert_messages import email_message, webhook_body
from .models import AlertRule, Event, Notification, Operation
from .permissions import DEPLOYMENT, Action, authorize

PENDING = Notification.Status.PENDING
# What is read of a receiver's answer: enough for keep-alive, never a flood into memory.
MAX_RESPONSE_BYTES = 64 << 10
# HTTP answers that say the endpoint as a whole is unwell, not this one body.
ENDPOINT_DOWN_STATUSES = frozenset({408, 429})
USER_AGENT = "kvconsole-webhook/1"


@dataclass(frozen=True)
class Policy:
    """How the worker paces itself (settings KVCONSOLE_ALERT_*)."""

    max_attempts: int
    backoff_base: float
    backoff_cap: float
    timeout: float
    concurrency: int
    lanes_per_endpoint: int
    lane_rows: int
    poll_seconds: float

    @classmethod
    def from_settings(cls) -> "Policy":
        return cls(
            max_attempts=max(1, settings.KVCONSOLE_ALERT_MAX_ATTEMPTS),
            backoff_base=settings.KVCONSOLE_ALERT_BACKOFF_BASE_SECONDS,
            backoff_cap=settings.KVCONSOLE_ALERT_BACKOFF_CAP_SECONDS,
            timeout=settings.KVCONSOLE_ALERT_TIMEOUT_SECONDS,
            concurrency=max(1, settings.KVCONSOLE_ALERT_CONCURRENCY),
            lanes_per_endpoint=max(1, settings.KVCONSOLE_ALERT_LANES_PER_ENDPOINT),
            lane_rows=max(1, settings.KVCONSOLE_ALERT_LANE_ROWS),
            poll_seconds=settings.KVCONSOLE_ALERT_POLL_SECONDS,
        )

    def backoff(self, attempts: int) -> timedelta:
        """Full jitter: anywhere between now and the exponential bound, so receivers that
        failed together are not retried together."""
        bound = min(self.backoff_cap, self.backoff_base * 2 ** max(attempts - 1, 0))
        return timedelta(seconds=random.uniform(0, bound))  # noqa: S311 (jitter, not a secret)

    @property
    def lease(self) -> timedelta:
        """Longer than a lane can take: each row may spend its timeout connecting, writing,
        reading and waiting for a connection."""
        return timedelta(seconds=self.timeout * 4 * self.lane_rows + 60)


@dataclass(frozen=True)
class Claimed:
    """A row this worker holds the lease of; `attempts` counts this attempt."""

    id: int
    uid: str
    attempts: int
    channel: str
    target: str
    schema: str
    event: Event
    rule: AlertRule | None
    secret: str | None

    @property
    def endpoint(self) -> str:
        return _endpoint(self.channel, self.target)


class Outcome(Enum):
    DELIVERED = "delivered"
    FAILED = "failed"
    # Not tried: its endpoint failed earlier in the same lane.
    DEFERRED = "deferred"


@dataclass(frozen=True)
class Attempt:
    claimed: Claimed
    outcome: Outcome
    error: str = ""
    retry_at: datetime | None = None
    # A row that can never be delivered (its rule is gone) is dead-lettered at once.
    final: bool = False


@dataclass
class Summary:
    delivered: int = 0
    retried: int = 0
    dead_lettered: int = 0
    deferred: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "delivered": self.delivered,
            "retried": self.retried,
            "deadLettered": self.dead_lettered,
            "deferred": self.deferred,
        }


@operation(Operation.NOTIFICATION_DELIVER)
def notifications_deliver(
    *, actor: User, stop: threading.Event | None = None, policy: Policy | None = None
) -> Summary:
    """Deliver the notifications due now (one pass), or, given `stop`, keep delivering
    until it is set and then finish what is in flight."""
    activity.describe(target="notifications")
    authorize(actor, Action.NOTIFICATION_DELIVER, DEPLOYMENT)
    with Worker(actor=actor, policy=policy or Policy.from_settings()) as worker:
        return worker.run(stop=stop)


@operation(Operation.NOTIFICATION_DEAD_LETTER)
def notification_dead_letter(*, actor: User, claimed: Claimed, error: str) -> bool:
    """Give up on a notification after its last attempt; False if another worker got to it."""
    event = claimed.event
    activity.describe(
        resource_group=event.resource_group,
        vault=event.vault_name,
        target=f"notifications/{claimed.uid}",
    )
    authorize(actor, Action.NOTIFICATION_DELIVER, DEPLOYMENT)
    with activity.atomic():
        return bool(
            _held(claimed).update(
                status=Notification.Status.DEAD, last_error=error[:500], next_attempt_at=clock.now()
            )
        )


class Worker:
    """One delivery worker: a pool of threads and an HTTP client with pooled connections."""

    def __init__(self, *, actor: User, policy: Policy):
        self.actor = actor
        self.policy = policy
        self.summary = Summary()
        self._client = httpx.Client(
            verify=_ssl_context(),
            timeout=httpx.Timeout(policy.timeout),
            limits=httpx.Limits(
                max_connections=policy.concurrency, max_keepalive_connections=policy.concurrency
            ),
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
        )
        self._pool = ThreadPoolExecutor(policy.concurrency, thread_name_prefix="kv-deliver")
        self._lanes: dict[Future[list[Attempt]], list[Claimed]] = {}
        self._busy: Counter[str] = Counter()

    def __enter__(self) -> "Worker":
        return self

    def __exit__(self, *exc_info: object) -> None:
        # Rows still in flight keep their leases; the next worker retries them after.
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()

    def run(self, *, stop: threading.Event | None = None) -> Summary:
        """Without `stop`, one pass: each row due when it began is tried once. With `stop`,
        rows are claimed as they fall due until it is set; then what is in flight finishes."""
        cutoff = clock.now()
        while True:
            stopping = stop is not None and stop.is_set()
            claimed = 0
            if not stopping:
                while started := self._claim_and_start(cutoff if stop is None else clock.now()):
                    claimed += started
            if not self._lanes:
                if stop is None or stopping:
                    return self.summary
                if not claimed:
                    stop.wait(self.policy.poll_seconds)
                continue
            done, _ = wait(
                list(self._lanes),
                timeout=None if stop is None else self.policy.poll_seconds,
                return_when=FIRST_COMPLETED,
            )
            self._record([attempt for lane in done for attempt in self._finish(lane)])

    # --- claiming ---------------------------------------------------------------------------

    def _claim_and_start(self, cutoff: datetime) -> int:
        """Claim what the free lanes can take, start delivering it, and say how many rows."""
        free = self.policy.concurrency - len(self._lanes)
        if free <= 0:
            return 0
        by_endpoint: dict[str, list[Claimed]] = {}
        for row in self._claim(cutoff, free_lanes=free):
            by_endpoint.setdefault(row.endpoint, []).append(row)
        for endpoint, rows in by_endpoint.items():
            lanes = min(self._lanes_left(endpoint), len(rows))
            for index in range(lanes):
                self._start(endpoint, rows[index::lanes])
        return sum(len(rows) for rows in by_endpoint.values())

    def _lanes_left(self, endpoint: str) -> int:
        return self.policy.lanes_per_endpoint - self._busy[endpoint]

    def _claim(self, cutoff: datetime, *, free_lanes: int) -> list[Claimed]:
        lane_rows = self.policy.lane_rows
        due = Notification.objects.filter(status=PENDING, next_attempt_at__lte=cutoff)
        # Endpoints that have all their lanes are left alone, however many rows they have
        # waiting, so that the others' rows are found; rows in flight are never claimed twice.
        full = [endpoint for endpoint in self._busy if self._lanes_left(endpoint) <= 0]
        if _SMTP in full:
            due = due.exclude(channel=AlertRule.Channel.EMAIL)
        if webhook_targets := [endpoint for endpoint in full if endpoint != _SMTP]:
            due = due.exclude(target__in=webhook_targets)
        if in_flight := [row.id for rows in self._lanes.values() for row in rows]:
            due = due.exclude(id__in=in_flight)
        now, lease = clock.now(), self.policy.lease
        held: list[tuple[int, int]] = []
        with transaction.atomic():
            candidates = due.order_by("next_attempt_at", "id").values_list(
                "id", "attempts", "channel", "target"
            )
            if connection.vendor == "postgresql":
                # Rows another worker is claiming right now are passed over, not waited for.
                candidates = candidates.select_for_update(skip_locked=True)
            # Each endpoint takes at most lane_rows rows per lane it has left, and rows that
            # would open more lanes than are free wait for a later claim: a lane never holds
            # more rows than its lease allows for.
            taken: Counter[str] = Counter()
            opened = 0
            for row_id, attempts, channel, target in candidates[: free_lanes * lane_rows]:
                endpoint = _endpoint(channel, target)
                lanes_left = self._lanes_left(endpoint)
                if taken[endpoint] >= lanes_left * lane_rows:
                    continue
                if taken[endpoint] < lanes_left:
                    if opened >= free_lanes:
                        continue
                    opened += 1
                claimed = Notification.objects.filter(
                    id=row_id, status=PENDING, attempts=attempts, next_attempt_at__lte=cutoff
                ).update(attempts=attempts + 1, next_attempt_at=now + lease)
                if claimed:
                    taken[endpoint] += 1
                    held.append((row_id, attempts + 1))
        return self._load(held) if held else []

    def _load(self, held: list[tuple[int, int]]) -> list[Claimed]:
        rows = Notification.objects.select_related("event", "rule").in_bulk([i for i, _ in held])
        secrets: dict[int, str] = {}
        claimed = []
        for row_id, attempts in held:
            row = rows[row_id]
            rule, secret = row.rule, None
            if rule is not None and row.channel == AlertRule.Channel.WEBHOOK:
                if rule.pk not in secrets:
                    secrets[rule.pk] = webhooks.rule_secret(rule)
                secret = secrets[rule.pk]
            claimed.append(
                Claimed(
                    id=row_id,
                    uid=str(row.uid),
                    attempts=attempts,
                    channel=row.channel,
                    target=row.target,
                    schema=row.schema,
                    event=row.event,
                    rule=rule,
                    secret=secret,
                )
            )
        return claimed

    def _start(self, endpoint: str, rows: list[Claimed]) -> None:
        self._busy[endpoint] += 1
        self._lanes[self._pool.submit(self._deliver_lane, rows)] = rows

    def _finish(self, lane: Future[list[Attempt]]) -> list[Attempt]:
        rows = self._lanes.pop(lane)
        self._busy[rows[0].endpoint] -= 1
        if self._busy[rows[0].endpoint] <= 0:
            del self._busy[rows[0].endpoint]
        try:
            return lane.result()
        except Exception as error:
            # A bug in a lane must not lose its rows: they are retried like any failure.
            retry_at = clock.now() + self.policy.backoff(rows[0].attempts)
            message = f"Internal error: {type(error).__name__}"
            return [Attempt(row, Outcome.FAILED, message, retry_at) for row in rows]

    # --- recording --------------------------------------------------------------------------

    def _record(self, attempts: list[Attempt]) -> None:
        """Write what the lanes did: delivered rows once, failures with their next attempt."""
        now = clock.now()
        dead: list[Attempt] = []
        with transaction.atomic():
            for attempt in attempts:
                claimed = attempt.claimed
                held = _held(claimed)
                if attempt.outcome is Outcome.DELIVERED:
                    held.update(
                        status=Notification.Status.DELIVERED, delivered_at=now, last_error=""
                    )
                    self.summary.delivered += 1
                elif attempt.outcome is Outcome.DEFERRED:
                    held.update(attempts=claimed.attempts - 1, next_attempt_at=attempt.retry_at)
                    self.summary.deferred += 1
                elif attempt.final or claimed.attempts >= self.policy.max_attempts:
                    dead.append(attempt)
                else:
                    held.update(next_attempt_at=attempt.retry_at, last_error=attempt.error[:500])
                    self.summary.retried += 1
        for attempt in dead:
            if notification_dead_letter(
                actor=self.actor, claimed=attempt.claimed, error=attempt.error
            ):
                self.summary.dead_lettered += 1

    # --- delivering (pool threads: no database) --------------------------------------------

    def _deliver_lane(self, rows: list[Claimed]) -> list[Attempt]:
        attempts: list[Attempt] = []
        for index, row in enumerate(rows):
            attempt, endpoint_down = self._deliver(row)
            attempts.append(attempt)
            if endpoint_down:
                attempts += [
                    Attempt(rest, Outcome.DEFERRED, retry_at=attempt.retry_at)
                    for rest in rows[index + 1 :]
                ]
                break
        return attempts

    def _deliver(self, row: Claimed) -> tuple[Attempt, bool]:
        """One attempt, and whether its failure says the whole endpoint is down."""
        if row.rule is None:
            error = "The alert rule was deleted; nothing is sent in its name."
            return Attempt(row, Outcome.FAILED, error, final=True), False
        try:
            if row.channel == AlertRule.Channel.WEBHOOK:
                self._post(row)
            else:
                _send_email(row)
        except DeliveryFailed as failure:
            delay = self.policy.backoff(row.attempts)
            if failure.retry_after is not None:
                delay = max(delay, min(failure.retry_after, self._cap))
            retry_at = clock.now() + delay
            return Attempt(row, Outcome.FAILED, str(failure), retry_at), failure.endpoint_down
        return Attempt(row, Outcome.DELIVERED), False

    @property
    def _cap(self) -> timedelta:
        return timedelta(seconds=self.policy.backoff_cap)

    def _post(self, row: Claimed) -> None:
        assert row.secret is not None
        body, content_type = webhook_body(row.event, row.schema)
        headers = {
            "Content-Type": content_type,
            webhooks.SIGNATURE_HEADER: webhooks.signature(row.secret, body),
            webhooks.DELIVERY_HEADER: row.uid,
            "X-Kvconsole-Event-Type": row.event.event_type,
        }
        if row.schema == AlertRule.Schema.EVENT_GRID:
            # What Event Grid sends, for receivers written against Azure.
            headers |= {
                "aeg-event-type": "Notification",
                "aeg-subscription-name": row.rule.name.upper() if row.rule else "",
                "aeg-delivery-count": str(row.attempts - 1),
                "aeg-data-version": "1",
                "aeg-metadata-version": "1",
            }
        try:
            with self._client.stream("POST", row.target, content=body, headers=headers) as answer:
                _drain(answer)
        except httpx.TimeoutException:
            raise DeliveryFailed(
                f"No answer within {self.policy.timeout:g} s.", endpoint_down=True
            ) from None
        except httpx.HTTPError as error:
            raise DeliveryFailed(_describe(error), endpoint_down=True) from None
        status = answer.status_code
        if 200 <= status < 300:
            return
        raise DeliveryFailed(
            f"HTTP {status} {answer.reason_phrase}".strip(),
            endpoint_down=status >= 500 or status in ENDPOINT_DOWN_STATUSES,
            retry_after=_retry_after(answer.headers.get("Retry-After")),
        )


class DeliveryFailed(Exception):
    def __init__(self, message: str, *, endpoint_down: bool, retry_after: timedelta | None = None):
        super().__init__(message)
        self.endpoint_down = endpoint_down
        self.retry_after = retry_after


def _send_email(claimed: Claimed) -> None:
    try:
        email_message(
            claimed.event,
            schema=claimed.schema,
            recipients=claimed.target.split(","),
            delivery_id=claimed.uid,
            rule_name=claimed.rule.name if claimed.rule else "",
        ).send()
    except SMTPRecipientsRefused as refused:
        raise DeliveryFailed(
            f"Recipients refused: {', '.join(sorted(refused.recipients))}", endpoint_down=False
        ) from None
    except SMTPResponseException as error:
        raise DeliveryFailed(
            f"SMTP {error.smtp_code}: {_text(error.smtp_error)}",
            endpoint_down=error.smtp_code >= 400 and error.smtp_code < 500,
        ) from None
    except (SMTPException, OSError) as error:
        raise DeliveryFailed(
            f"SMTP: {type(error).__name__}: {error}"[:300], endpoint_down=True
        ) from None


# --- plumbing ----------------------------------------------------------------------------------

_SMTP = "smtp:"


def _endpoint(channel: str, target: str) -> str:
    """What a lane is for: a webhook's URL, or the one SMTP server every email goes through."""
    return _SMTP if channel == AlertRule.Channel.EMAIL else target


def _held(claimed: Claimed) -> Any:
    """The row, if this worker's claim still holds it (no other worker reclaimed it since)."""
    return Notification.objects.filter(id=claimed.id, status=PENDING, attempts=claimed.attempts)


def _ssl_context() -> ssl.SSLContext:
    """Public CAs, plus the private CA of KVCONSOLE_WEBHOOK_CA_FILE when one is set."""
    context = ssl.create_default_context(cafile=certifi.where())
    if settings.KVCONSOLE_WEBHOOK_CA_FILE:
        context.load_verify_locations(cafile=settings.KVCONSOLE_WEBHOOK_CA_FILE)
    return context


def _drain(answer: httpx.Response) -> None:
    read = 0
    for chunk in answer.iter_raw():
        read += len(chunk)
        if read > MAX_RESPONSE_BYTES:
            return


def _retry_after(value: str | None) -> timedelta | None:
    if value is not None and value.strip().isdigit():
        return timedelta(seconds=int(value.strip()))
    return None


def _describe(error: httpx.HTTPError) -> str:
    reason = str(error) or type(error).__name__
    return f"{type(error).__name__}: {reason}"[:300]


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGTERM or SIGINT while the block runs (the main thread only)."""
    stop = threading.Event()
    previous = {
        number: signal.signal(number, lambda *_: stop.set())
        for number in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        yield stop
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
