"""Prometheus metrics (prometheus_client).

* `kvconsole_request_duration_seconds{operation,status}`: a histogram of every HTTP request
  (probes and scrapes aside) by the operation it ran (the activity log's name, else its
  route) and its HTTP status; its `_count` is the number of requests.
* `kvconsole_activity_entries_total{operation,result}`: activity entries, counted once
  committed.
* `kvconsole_outbox_notifications{status}`: pending and dead-lettered notifications, read
  from the database when scraped.

A server with several worker processes keeps each process's values in files under
`PROMETHEUS_MULTIPROC_DIR` (prometheus_client's multiprocess mode), and a scrape answered by
any worker adds them all up. prometheus_client reads that variable when it is first imported,
so it must be in the server's environment, naming an empty directory, before the server starts.
"""

import functools
import os
from collections.abc import Iterator

from django.db import connection
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from vaults.models import Notification

# From a cached key operation (about a millisecond) to a slow console page.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

REQUEST_SECONDS = Histogram(
    "kvconsole_request_duration_seconds",
    "Time to answer an HTTP request, by the operation it ran (else its route) and HTTP status.",
    ["operation", "status"],
    buckets=_LATENCY_BUCKETS,
)
ACTIVITY_ENTRIES = Counter(
    "kvconsole_activity_entries",
    "Activity entries committed, by operation and result.",
    ["operation", "result"],
)


# Each request and entry finds its labelled child here rather than through labels(), which
# checks and locks on every call; the label values are few (operations, routes, statuses).
@functools.cache
def request_seconds(operation: str, status: int) -> Histogram:
    return REQUEST_SECONDS.labels(operation, str(status))


@functools.cache
def activity_entries(operation: str, result: str) -> Counter:
    return ACTIVITY_ENTRIES.labels(operation, result)


class OutboxBacklog:
    """Pending and dead-lettered notifications, counted when scraped: each count reads only
    its own partial index, however many delivered rows the outbox holds."""

    name = "kvconsole_outbox_notifications"
    documentation = (
        "Notifications in the outbox waiting to be delivered (pending) or given up on (dead)."
    )

    def describe(self) -> Iterator[Metric]:
        # Registering asks for the names; describing them spares a query at import.
        yield GaugeMetricFamily(self.name, self.documentation, labels=["status"])

    @staticmethod
    def statement() -> tuple[str, list[str]]:
        """One query, (pending, dead)."""
        table = connection.ops.quote_name(Notification._meta.db_table)
        status = connection.ops.quote_name("status")
        count = f"SELECT COUNT(*) FROM {table} WHERE {status} = %s"  # noqa: S608 (model metadata)
        return f"SELECT ({count}), ({count})", [
            Notification.Status.PENDING,
            Notification.Status.DEAD,
        ]

    def collect(self) -> Iterator[Metric]:
        with connection.cursor() as cursor:
            cursor.execute(*self.statement())
            pending, dead = cursor.fetchone()
        family = GaugeMetricFamily(self.name, self.documentation, labels=["status"])
        family.add_metric(["pending"], pending)
        family.add_metric(["dead"], dead)
        yield family


def _multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


if not _multiprocess():
    REGISTRY.register(OutboxBacklog())


def exposition(accept: str) -> tuple[bytes, str]:
    """Every metric in the format the scraper's Accept header asks for, and its content type."""
    if _multiprocess():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(OutboxBacklog())
    else:
        registry = REGISTRY
    encode, content_type = choose_encoder(accept)
    return encode(registry), content_type
