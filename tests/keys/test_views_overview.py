"""The console overview: what each persona can see, keys expiring soon, recent failures, and
the chart of the last day's operations per hour."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import User
from keys import services as key_services
from keys.models import KeyVersion
from tests.conftest import Personas
from tests.console import htmx_get, is_fragment, text
from tests.factories import VaultFactory
from tests.vaults.test_views_activity import append, entry_values, in_vault
from vaults import charts
from vaults.models import ActivityEntry, Result, Vault

pytestmark = pytest.mark.django_db


@pytest.fixture
def as_(client: Client, personas: Personas) -> Callable[[str], Client]:
    def sign_in(name: str) -> Client:
        client.force_login(personas.each()[name])
        return client

    return sign_in


def test_anonymous_visitors_are_sent_to_sign_in(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/signin/?next=/"


def test_page_sends_a_self_only_content_security_policy(client: Client, owner: User) -> None:
    client.force_login(owner)
    policy = client.get("/")["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy


def test_a_superuser_counts_every_live_vault_and_key(
    client: Client, owner: User, make_key: Any, system: User, vault: Vault
) -> None:
    make_key("one", kty="EC")
    make_key("two", kty="EC")
    make_key("gone", kty="EC")
    key_services.key_delete(actor=system, vault_name=vault.name, name="gone")
    VaultFactory.create(name="empty-vault")
    client.force_login(owner)
    response = client.get("/")
    assert response.status_code == 200
    counts = [response.context[name] for name in ("group_count", "vault_count", "key_count")]
    assert counts == [2, 2, 2]
    assert 'href="/groups/"' in text(response) and 'href="/vaults/"' in text(response)


@pytest.mark.parametrize(
    ("persona", "counts"),
    [
        ("owner", [1, 1, 2]),
        ("crypto_user", [0, 1, 2]),
        ("reader", [0, 1, 2]),
        ("outsider", [0, 0, 0]),
    ],
)
def test_each_persona_counts_only_what_it_can_see(
    as_: Any, personas: Personas, make_key: Any, persona: str, counts: list[int]
) -> None:
    make_key("one", kty="EC")
    make_key("two", kty="EC")
    elsewhere = VaultFactory.create(name="elsewhere")
    make_key("hidden", kty="EC", in_vault=elsewhere)
    response = as_(persona).get("/")
    assert [response.context[name] for name in ("group_count", "vault_count", "key_count")] == (
        counts
    )
    assert "elsewhere" not in text(response)


# --- keys expiring soon ------------------------------------------------------------------


@pytest.fixture
def expiring(make_key: Any, system: User) -> dict[str, KeyVersion]:
    now = timezone.now()
    versions = {
        "soon": make_key("soon", kty="EC", expires=now + timedelta(days=3)),
        "later": make_key("later", kty="EC", expires=now + timedelta(days=29)),
        "far": make_key("far", kty="EC", expires=now + timedelta(days=40)),
        "never": make_key("never", kty="EC"),
        "expired": make_key("expired", kty="EC", expires=now + timedelta(days=1)),
    }
    KeyVersion.objects.filter(pk=versions["expired"].pk).update(expires=now - timedelta(days=1))
    # Only the current version counts: an older one expiring soon is history.
    make_key("rotated", kty="EC", expires=now + timedelta(days=2))
    make_key("rotated", kty="EC", expires=now + timedelta(days=60))
    return versions


@pytest.mark.parametrize("persona", ["owner", "crypto_user", "reader"])
def test_keys_expiring_within_30_days_are_listed_soonest_first(
    as_: Any, personas: Personas, expiring: dict[str, KeyVersion], persona: str
) -> None:
    response = as_(persona).get("/")
    assert [key.name for key in response.context["expiring"]] == ["soon", "later"]
    page = text(response)
    assert f'href="/vaults/{personas.vault.name}/keys/soon/"' in page
    assert "/keys/far/" not in page and "/keys/rotated/" not in page


def test_the_outsider_sees_no_expiring_keys(as_: Any, expiring: dict[str, KeyVersion]) -> None:
    response = as_("outsider").get("/")
    assert response.context["expiring"] == []
    assert "No key you can see expires" in text(response)


# --- recent failures ---------------------------------------------------------------------


@pytest.fixture
def failures(personas: Personas) -> list[ActivityEntry]:
    Vault.objects.filter(pk=personas.vault.pk).update(created_at=timezone.now() - timedelta(days=1))
    other = VaultFactory.create(name="other-vault")
    now = timezone.now()
    return append(
        *[
            in_vault(
                personas.vault,
                time=now,
                result=[Result.FORBIDDEN, Result.NOT_FOUND, Result.BAD_PARAMETER][number % 3],
                correlation_id=f"failure-{number}",
            )
            for number in range(12)
        ],
        in_vault(personas.vault, time=now, correlation_id="success"),
        in_vault(other, time=now, result=Result.CONFLICT, correlation_id="elsewhere"),
        entry_values(
            time=now,
            actor_oid=personas.outsider.oid,
            actor_name=personas.outsider.username,
            result=Result.NOT_FOUND,
            correlation_id="outsider-not-found",
        ),
        entry_values(
            time=now,
            actor_oid=personas.outsider.oid,
            actor_name=personas.outsider.username,
            result=Result.FORBIDDEN,
            correlation_id="outsider-denied",
        ),
    )


def shown_failures(response: Any) -> list[str]:
    return [entry.correlation_id for entry in response.context["failures"]]


def test_the_ten_newest_failures_the_reader_may_read_are_listed(
    as_: Any, failures: list[ActivityEntry]
) -> None:
    response = as_("reader").get("/")
    assert shown_failures(response) == [f"failure-{number}" for number in range(11, 1, -1)]
    assert 'class="badge bad">Forbidden' in text(response)
    assert 'href="/activity/?result=failures"' in text(response)


def test_a_superuser_sees_every_failure_and_never_a_success(
    client: Client, owner: User, failures: list[ActivityEntry]
) -> None:
    client.force_login(owner)
    shown = shown_failures(client.get("/"))
    assert shown[:3] == ["outsider-denied", "outsider-not-found", "elsewhere"]
    assert len(shown) == 10 and "success" not in shown


def test_the_outsider_sees_only_its_own_failures_that_were_not_refusals(
    as_: Any, failures: list[ActivityEntry]
) -> None:
    assert shown_failures(as_("outsider").get("/")) == ["outsider-not-found"]


# --- the chart ---------------------------------------------------------------------------


@pytest.fixture
def day(personas: Personas) -> list[Any]:
    """Entries at known hours of the last day (and one older), in two vaults."""
    now = timezone.now()
    hours = charts.last_hours(now)
    Vault.objects.filter(pk=personas.vault.pk).update(created_at=now - timedelta(days=3))
    # The personas' role assignments on the vault were recorded just now.
    assert not ActivityEntry.objects.filter(vault_name=personas.vault.name, time__lt=hours[-1])
    other = VaultFactory.create(name="other-vault")
    at = {
        "current": hours[-1] + timedelta(seconds=1),
        "three hours ago": hours[-4] + timedelta(minutes=59),
        "first hour": hours[0],
        "too old": hours[0] - timedelta(seconds=1),
    }
    append(
        *[in_vault(personas.vault, time=at["current"]) for _ in range(3)],
        in_vault(personas.vault, time=at["current"], result=Result.FORBIDDEN),
        *[in_vault(personas.vault, time=at["three hours ago"]) for _ in range(2)],
        in_vault(personas.vault, time=at["first hour"], result=Result.NOT_FOUND),
        in_vault(personas.vault, time=at["too old"]),
        in_vault(other, time=at["three hours ago"]),
        in_vault(other, time=at["three hours ago"], result=Result.CONFLICT),
    )
    return hours


def bar_counts(response: Any) -> list[str]:
    return [bar.title.split(": ", 1)[1] for bar in response.context["chart"].bars]


def test_the_chart_counts_a_vaults_operations_per_hour_by_result(
    client: Client, owner: User, personas: Personas, day: list[Any]
) -> None:
    recorded = ActivityEntry.objects.filter(vault_name=personas.vault.name, time__gte=day[-1])
    assigned = recorded.filter(result=Result.SUCCESS).count() - 3
    client.force_login(owner)
    counts = bar_counts(client.get("/", {"vault": personas.vault.name}))
    expected = ["0 succeeded, 0 failed"] * 24
    expected[-1] = f"{assigned + 3} succeeded, 1 failed"
    expected[-4] = "2 succeeded, 0 failed"
    expected[0] = "0 succeeded, 1 failed"
    assert counts == expected


def test_the_chart_of_all_vaults_adds_every_readable_vault(
    client: Client, owner: User, day: list[Any]
) -> None:
    client.force_login(owner)
    response = client.get("/")
    counts = bar_counts(response)
    # The personas' role assignments were recorded just now too.
    assert counts[-4] == "3 succeeded, 1 failed"
    assert counts[0] == "0 succeeded, 1 failed"
    chart = response.context["chart"]
    assert chart.summary.startswith("Operations per hour over the last 24 hours, all activity")


def test_a_reader_charts_only_the_vault_it_may_read(
    as_: Any, personas: Personas, day: list[Any]
) -> None:
    counts = bar_counts(as_("reader").get("/"))
    assert counts[-4] == "2 succeeded, 0 failed"
    assert as_("reader").get("/", {"vault": "other-vault"}).status_code == 404


def test_the_chart_is_accessible_svg_without_inline_styles(
    client: Client, owner: User, personas: Personas, day: list[Any]
) -> None:
    client.force_login(owner)
    response = client.get("/", {"vault": personas.vault.name})
    page, chart = text(response), response.context["chart"]
    assert f'<svg width="100%" height="250" role="img" aria-label="{chart.summary}"' in page
    svg = page[page.index('<svg width="100%"') : page.index("</svg>")]
    assert "2 succeeded, 0 failed</title>" in svg and svg.count("<title>") == 24
    assert charts.SUCCESS_COLOUR in page and charts.FAILURE_COLOUR in page
    assert "Hour (UTC)" in page and f"Succeeded ({chart.succeeded})" in page
    assert f"Failed or denied ({chart.failed})" in page and chart.failed == 2
    assert "style=" not in page
    assert f'<option value="{personas.vault.name}" selected>' in page


def test_the_vault_selector_swaps_only_the_chart(
    client: Client, owner: User, personas: Personas, day: list[Any]
) -> None:
    client.force_login(owner)
    fragment = htmx_get(client, "/", vault=personas.vault.name)
    assert fragment.status_code == 200 and is_fragment(fragment)
    assert text(fragment).lstrip().startswith('<div id="activity-chart"')
    assert "<h1>" not in text(fragment) and "<select" not in text(fragment)
    page = text(client.get("/"))
    assert 'hx-target="#activity-chart"' in page and 'hx-push-url="true"' in page


def test_the_chart_is_one_grouped_query_however_many_entries(
    client: Client, owner: User, personas: Personas
) -> None:
    client.force_login(owner)

    def activity_queries() -> list[str]:
        with CaptureQueriesContext(connection) as queries:
            htmx_get(client, "/", vault=personas.vault.name)
        table = ActivityEntry._meta.db_table
        return [query["sql"] for query in queries.captured_queries if table in query["sql"]]

    few = activity_queries()
    append(*[in_vault(personas.vault, time=timezone.now()) for _ in range(500)])
    many = activity_queries()
    assert len(few) == len(many) == 1
    assert "GROUP BY" in many[0]


def test_the_overview_costs_the_same_queries_for_few_or_many_objects(
    as_: Any, personas: Personas, make_key: Any, django_assert_max_num_queries: Any
) -> None:
    client = as_("reader")
    client.get("/")
    with django_assert_max_num_queries(20) as few:
        client.get("/")
    now = timezone.now()
    for number in range(15):
        make_key(f"k{number}", kty="EC", expires=now + timedelta(days=1 + number))
    append(*[in_vault(personas.vault, time=now, result=Result.NOT_FOUND) for _ in range(50)])
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get("/")
    assert len(response.context["expiring"]) == 15 and len(response.context["failures"]) == 10
