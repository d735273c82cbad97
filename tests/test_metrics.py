"""`/metrics` (kvconsole/metrics.py, kvconsole/observability.py): what it counts, and who may
read it (by default nobody)."""

import base64
import hashlib
import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from accounts import tokens
from accounts.models import User
from keys import services as key_services
from kvconsole.metrics import OutboxBacklog
from kvconsole.observability import metrics_networks
from tests.conftest import Personas
from tests.granian import serving
from tests.processes import make_deployment
from tests.test_json_logs import Abandoned, create_in_an_abandoned_transaction
from vaults import events
from vaults import services as vault_services
from vaults.models import EventType, Notification, Vault

pytestmark = pytest.mark.django_db

TOKEN = "scrape-token-for-tests-0123456789"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(scraped: dict[Any, float], name: str, **labels: str) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


def scrape(client: Client) -> dict[Any, float]:
    response = client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return samples(response.content.decode())


# --- who may scrape -----------------------------------------------------------------------------


def test_metrics_are_off_until_the_deployment_says_who_may_read_them(client: Client) -> None:
    response = client.get("/metrics")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NotFound"
    assert b"kvconsole_" not in response.content


def test_a_token_is_asked_for_and_checked(client: Client, settings: Any) -> None:
    settings.KVCONSOLE_METRICS_TOKEN = TOKEN
    missing = client.get("/metrics")
    assert missing.status_code == 401 and missing["WWW-Authenticate"] == 'Bearer realm="metrics"'
    wrong = client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}x"})
    assert wrong.status_code == 403 and b"kvconsole_" not in wrong.content
    assert client.get("/metrics", headers={"authorization": f"Basic {TOKEN}"}).status_code == 401
    right = client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
    assert right.status_code == 200 and b"kvconsole_request_duration_seconds" in right.content


def test_allowed_networks_need_no_token(client: Client, settings: Any) -> None:
    settings.KVCONSOLE_METRICS_NETWORKS = ["10.0.0.0/8", "127.0.0.1"]
    assert client.get("/metrics").status_code == 200
    outside = client.get("/metrics", REMOTE_ADDR="192.0.2.7")
    assert outside.status_code == 403 and b"kvconsole_" not in outside.content
    # Outside the networks, the token still admits a scraper when one is set.
    settings.KVCONSOLE_METRICS_TOKEN = TOKEN
    with_token = client.get(
        "/metrics", REMOTE_ADDR="192.0.2.7", headers={"authorization": f"Bearer {TOKEN}"}
    )
    assert with_token.status_code == 200


def test_a_network_that_is_no_network_is_refused_loudly() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"10\.0\.0\.300"):
        metrics_networks(("10.0.0.300/8",))


# --- what is counted ----------------------------------------------------------------------------


@pytest.fixture
def scraping(settings: Any) -> None:
    settings.KVCONSOLE_METRICS_TOKEN = TOKEN


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.usefixtures("scraping")
@pytest.mark.django_db(transaction=True)
def test_requests_and_committed_entries_are_counted_by_operation(
    client: Client, system: User, personas: Personas, make_key: Any
) -> None:
    vault = personas.vault
    make_key("signer", kty="EC", curve="P-256")
    signer = vault_services.application_create(actor=system, display_name="signer")
    vault_services.role_assignment_create(
        actor=system,
        assignee=str(signer.client_id),
        role="Key Vault Crypto User",
        scope=f"/resourceGroups/{vault.resource_group.name}/providers/Microsoft.KeyVault/vaults/{vault.name}",
    )
    stranger = vault_services.application_create(actor=system, display_name="stranger")
    before = scrape(client)
    body = json.dumps({"alg": "ES256", "value": b64url(hashlib.sha256(b"m").digest())})
    for application, status in ((signer, 200), (signer, 200), (stranger, 403)):
        token = tokens.issue_access_token(application, audience=tokens.vault_resource())
        response = client.post(
            "/keys/signer//sign?api-version=7.6",
            body,
            content_type="application/json",
            headers={
                "host": f"{vault.name}.vault.localhost:8443",
                "authorization": f"Bearer {token.access_token}",
            },
        )
        assert response.status_code == status
    client.force_login(personas.reader)
    assert client.get(f"/vaults/{vault.name}/keys/").status_code == 200
    assert client.get("/healthz").status_code == 200
    after = scrape(client)

    def added(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests_count = "kvconsole_request_duration_seconds_count"
    assert added(requests_count, operation="KeySign", status="200") == 2
    assert added(requests_count, operation="KeySign", status="403") == 1
    assert added(requests_count, operation="key-list", status="200") == 1
    # Probes and scrapes are neither counted nor logged.
    assert not any(
        dict(labels).get("operation") in ("healthz", "readyz", "metrics") for _, labels in after
    )
    assert added(requests_count, operation="unmatched", status="200") == 0
    entries = "kvconsole_activity_entries_total"
    assert added(entries, operation="KeySign", result="Success") == 2
    assert added(entries, operation="KeySign", result="Forbidden") == 1
    # Each signed request fell in a latency bucket; the slowest bucket holds them all.
    bucket = "kvconsole_request_duration_seconds_bucket"
    assert added(bucket, operation="KeySign", status="200", le="+Inf") == 2


@pytest.mark.usefixtures("scraping")
def test_an_entry_rolled_back_is_not_counted(client: Client, system: User, vault: Vault) -> None:
    before = scrape(client)
    with pytest.raises(Abandoned):
        create_in_an_abandoned_transaction(system, vault, "gone")
    # The test's own transaction never commits either: nothing this test writes is counted.
    key_services.key_create(actor=system, vault_name=vault.name, name="uncommitted", kty="EC")
    after = scrape(client)
    entries = "kvconsole_activity_entries_total"
    assert value(after, entries, operation="KeyCreate", result="Success") == value(
        before, entries, operation="KeyCreate", result="Success"
    )


@pytest.mark.usefixtures("scraping")
def test_the_outbox_backlog_is_read_at_scrape_time_in_one_query(
    client: Client, system: User, vault: Vault, django_assert_num_queries: Any
) -> None:
    vault_services.alert_rule_create(
        actor=system,
        name="expiry",
        event_types=[EventType.KEY_NEAR_EXPIRY],
        channel="email",
        target="keys@example.com",
        vault_name=vault.name,
    )
    for _ in range(3):
        with transaction.atomic():
            events.emit(EventType.KEY_NEAR_EXPIRY, vault=vault, subject="k", data={})
    first = Notification.objects.order_by("id").first()
    assert first is not None
    Notification.objects.filter(pk=first.pk).update(status=Notification.Status.DEAD)
    with django_assert_num_queries(1):
        scraped = scrape(client)
    assert value(scraped, "kvconsole_outbox_notifications", status="pending") == 2
    assert value(scraped, "kvconsole_outbox_notifications", status="dead") == 1


def test_the_backlog_counts_read_only_their_partial_indexes() -> None:
    sql, params = OutboxBacklog.statement()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # A planner shown tiny tables would rather scan them; asked not to, it shows
            # which index answers.
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute(f"EXPLAIN {sql}", params)
        else:
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        plan = " ".join(str(row) for row in cursor.fetchall())
    assert "notification_due" in plan and "notification_dead" in plan, plan


# --- several worker processes -------------------------------------------------------------------


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A deployment served by granian with two worker processes, sharing their metrics
    through PROMETHEUS_MULTIPROC_DIR."""
    shared = tmp_path / "prometheus"
    shared.mkdir()
    environment = {
        **make_deployment(tmp_path),
        "PROMETHEUS_MULTIPROC_DIR": str(shared),
        "KVCONSOLE_METRICS_TOKEN": TOKEN,
    }
    with serving(environment, workers=2) as base:
        yield base, shared


@pytest.mark.slow
@pytest.mark.alone
def test_workers_metrics_add_up_whichever_worker_is_scraped(
    two_workers: tuple[str, Path],
) -> None:
    base, shared = two_workers
    sent = 60

    def sign_in_page(_: int) -> int:
        # A connection of its own each, so that both workers take some.
        with requests.Session() as session:
            return session.get(f"{base}/signin/", timeout=30).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(sign_in_page, range(sent))) == {200}
    counts = set()
    for _ in range(10):
        response = requests.get(
            f"{base}/metrics", headers={"authorization": f"Bearer {TOKEN}"}, timeout=30
        )
        assert response.status_code == 200
        counts.add(
            value(
                samples(response.text),
                "kvconsole_request_duration_seconds_count",
                operation="signin",
                status="200",
            )
        )
    assert counts == {sent}
    # Both workers kept values of their own, and every scrape added them up.
    workers = {path.stem.rsplit("_", 1)[-1] for path in shared.glob("histogram_*.db")}
    assert len(workers) == 2, sorted(os.listdir(shared))
