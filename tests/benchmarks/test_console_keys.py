"""The console's Keys tab as a vault grows: 100, 10,000 and 100,000 keys against 10.

Target: the first page costs the same number of queries at every size (at most 12) and is
served within 2x of the 10-key page's time, all measured in the same run through Django's
test client as the same operator (Owner and Key Vault Administrator on the resource group,
so every button is decided too). Keys and versions are written in bulk: a list never reads
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

SMALL = 10
SIZES = (100, 10_000, 100_000)
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
def test_keys_tab_of_100000_keys_costs_what_10_keys_cost(bench_report: BenchReport) -> None:
    admin = SuperuserFactory.create()
    group = ResourceGroupFactory.create(name="bench-rg")
    urls: dict[int, str] = {}
    for size in (SMALL, *SIZES):
        vault = Vault.objects.create(
            name=f"bench-{size}", resource_group=group, location="westeurope"
        )
        fill_vault(vault, size)
        urls[size] = f"/vaults/{vault.name}/keys/"
    operator = UserFactory.create(username="operator")
    for role in ("Owner", "Key Vault Administrator"):
        services.role_assignment_create(
            actor=admin, assignee="operator", role=role, scope="/resourceGroups/bench-rg"
        )
    client = Client()
    client.force_login(operator)
    # Templates, content types and URL resolvers, once per process.
    for url in urls.values():
        client.get(url)

    queries: dict[int, int] = {}
    for size, url in urls.items():
        page, queries[size] = page_and_queries(client, url)
        assert page.count(f'href="/vaults/bench-{size}/keys/key-') == min(size, 25)
    assert f"Page 1 of {SIZES[-1] // 25:,}" in page or f"Page 1 of {SIZES[-1] // 25}" in page

    samples: dict[int, list[float]] = {size: [] for size in urls}
    for _ in range(SAMPLES):
        for size, url in urls.items():
            served_ms(client, url, samples[size])
    medians = {size: statistics.median(times) for size, times in samples.items()}
    ratios = {size: medians[size] / medians[SMALL] for size in SIZES}

    rows = [f"| {SMALL:,} | {medians[SMALL]:.1f} ms | {queries[SMALL]} | 1.00 |"]
    rows += [
        f"| {size:,} | {medians[size]:.1f} ms | {queries[size]} | {ratios[size]:.2f} |"
        for size in SIZES
    ]
    table = "| keys in the vault | first page | queries | against 10 keys |\n|---|---|---|---|\n"
    table += "\n".join(rows)
    print(f"\nKeys tab, first page, through the test client, median of {SAMPLES}:\n{table}")
    bench_report.section("Console Keys tab as the vault grows", table)
    for size in SIZES:
        bench_report.ratio(
            f"Console Keys tab, {size:,} keys",
            measured=f"{medians[size]:.1f} ms, {queries[size]} queries",
            baseline=f"{medians[SMALL]:.1f} ms at {SMALL:,} keys",
            ratio=ratios[size],
            target="<= 2, same queries",
            met=ratios[size] <= 2 and queries[size] == queries[SMALL] <= MAX_QUERIES,
        )
    assert set(queries.values()) == {queries[SMALL]} and queries[SMALL] <= MAX_QUERIES
    assert all(ratio <= 2 for ratio in ratios.values()), ratios
