"""The console's Keys tab of a 10,000-key vault against the same tab of a 10-key vault.

Target: the first page costs the same number of queries in both (at most 12) and is served
within 2x of the 10-key page's time, both measured in the same run through Django's test
client as the same operator (Owner and Key Vault Administrator on the resource group, so
every button is decided too). Keys and versions are written in bulk: a list never reads
their material.
"""

import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from tests.benchmarks.conftest import BenchReport
from tests.benchmarks.test_access_filter import fill_vault
from tests.factories import ResourceGroupFactory, SuperuserFactory, UserFactory
from vaults import services
from vaults.models import Vault

LARGE, SMALL = 10_000, 10
SAMPLES = 201
MAX_QUERIES = 12


class QueryCounter:
    """Counts the statements a request runs. An execute wrapper, not the debug cursor's log:
    each request of a transactional test closes the connection, which empties that log."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        self.count += 1
        return execute(sql, params, many, context)


def page_and_queries(client: Client, url: str) -> tuple[str, int]:
    counter = QueryCounter()
    with connection.execute_wrapper(counter):
        page = client.get(url).content.decode()
    return page, counter.count


def served_ms(client: Client, url: str, samples: list[float]) -> None:
    started = time.perf_counter()
    response = client.get(url)
    samples.append((time.perf_counter() - started) * 1000)
    assert response.status_code == 200


@pytest.mark.django_db(transaction=True)
def test_keys_tab_of_10000_keys_costs_what_10_keys_cost(bench_report: BenchReport) -> None:
    admin = SuperuserFactory.create()
    group = ResourceGroupFactory.create(name="bench-rg")
    large = Vault.objects.create(name="bench-large", resource_group=group, location="westeurope")
    small = Vault.objects.create(name="bench-small", resource_group=group, location="westeurope")
    fill_vault(large, LARGE)
    fill_vault(small, SMALL)
    operator = UserFactory.create(username="operator")
    for role in ("Owner", "Key Vault Administrator"):
        services.role_assignment_create(
            actor=admin, assignee="operator", role=role, scope="/resourceGroups/bench-rg"
        )
    client = Client()
    client.force_login(operator)
    large_url, small_url = f"/vaults/{large.name}/keys/", f"/vaults/{small.name}/keys/"
    # Templates, content types and URL resolvers, once per process.
    client.get(small_url)
    client.get(large_url)

    small_page, small_queries = page_and_queries(client, small_url)
    large_page, large_queries = page_and_queries(client, large_url)
    assert small_page.count('href="/vaults/bench-small/keys/key-') == SMALL
    assert large_page.count('href="/vaults/bench-large/keys/key-') == 25
    assert "Page 1 of 400" in large_page

    small_ms: list[float] = []
    large_ms: list[float] = []
    for _ in range(SAMPLES):
        served_ms(client, small_url, small_ms)
        served_ms(client, large_url, large_ms)
    ratio = statistics.median(large_ms) / statistics.median(small_ms)

    print(
        f"\nKeys tab, first page, through the test client, median of {SAMPLES}:\n"
        f"  {SMALL:>6,} keys   {statistics.median(small_ms):7.3f} ms   "
        f"{small_queries} queries\n"
        f"  {LARGE:>6,} keys   {statistics.median(large_ms):7.3f} ms   "
        f"{large_queries} queries   ratio {ratio:.2f} (target <= 2)"
    )
    bench_report.ratio(
        f"Console Keys tab, {LARGE:,} keys",
        measured=f"{statistics.median(large_ms):.1f} ms, {large_queries} queries",
        baseline=f"{statistics.median(small_ms):.1f} ms at {SMALL:,} keys",
        ratio=ratio,
        target="<= 2",
        met=ratio <= 2 and large_queries == small_queries <= MAX_QUERIES,
    )
    assert large_queries == small_queries <= MAX_QUERIES
    assert ratio <= 2, ratio
