"""The console's activity pages (global and a vault's Activity tab) and their exports, with
the console's personas."""

import csv
import io
import json
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import User
from tests.conftest import Personas
from tests.console import htmx_get, is_fragment, text
from tests.factories import VaultFactory
from vaults.activity import GENESIS_HASH, entry_hash
from vaults.models import ActivityEntry, Face, Operation, ResourceGroup, Result, Vault
from vaults.views.activity import EXPORT_FIELDS, PAGE_SIZE

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def entry_values(**fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "time": NOW,
        "actor_oid": None,
        "actor_name": "someone",
        "actor_display": "",
        "actor_kind": "application",
        "operation": Operation.KEY_GET,
        "resource_group": "",
        "vault_name": "",
        "target": "",
        "result": Result.SUCCESS,
        "status_code": 200,
        "message": "",
        "duration_ms": 1.5,
        "face": Face.API,
        "client_ip": "10.0.0.7",
        "correlation_id": "",
        "api_version": "",
        "request_id": "",
    }
    values.update(fields)
    return values


def append(*many: dict[str, Any]) -> list[ActivityEntry]:
    """Entries at the times they name, chained onto the log as the real append chains them
    (the views never check the chain, but nothing here should break it)."""
    head = ActivityEntry.objects.order_by("-seq").values("seq", "hash").first()
    seq, previous = (head["seq"], head["hash"]) if head else (0, GENESIS_HASH)
    entries = []
    for values in many:
        seq += 1
        entry = ActivityEntry(seq=seq, prev_hash=previous, **values)
        entry.hash = previous = entry_hash(entry)
        entries.append(entry)
    return ActivityEntry.objects.bulk_create(entries)


def in_vault(vault: Vault, **fields: Any) -> dict[str, Any]:
    return entry_values(
        resource_group=vault.resource_group.name,
        vault_name=vault.name,
        target=f"vaults/{vault.name}/keys/k1",
        **fields,
    )


def marks(response: Any) -> list[str]:
    """The correlation ids (this module's marks) of the entries a page shows, in order."""
    return [entry.correlation_id for entry in response.context["entries"] if entry.correlation_id]


@pytest.fixture
def as_(client: Client, personas: Personas) -> Callable[[str], Client]:
    def sign_in(name: str) -> Client:
        client.force_login(personas.each()[name])
        return client

    return sign_in


@pytest.fixture
def other_vault(personas: Personas) -> Vault:
    """A vault in another resource group, which none of the personas may read."""
    return VaultFactory.create(name="other-vault")


@pytest.fixture
def log(personas: Personas, other_vault: Vault) -> dict[str, ActivityEntry]:
    """Marked entries a few hours old, in the personas' vault, in another vault, and calls of
    the outsider and the crypto user themselves."""
    # Entries count for a reader only once the vault (or group) existed.
    long_ago = NOW - timedelta(days=10)
    Vault.objects.filter(pk__in=[personas.vault.pk, other_vault.pk]).update(created_at=long_ago)
    ResourceGroup.objects.update(created_at=long_ago)
    vault = personas.vault
    created = append(
        in_vault(vault, time=NOW - timedelta(hours=5), actor_name="app-1", correlation_id="get"),
        in_vault(
            vault,
            time=NOW - timedelta(hours=4),
            actor_name="app-2",
            operation=Operation.KEY_SIGN,
            result=Result.FORBIDDEN,
            status_code=403,
            message="Caller is not authorized",
            correlation_id="denied-sign",
        ),
        in_vault(
            other_vault,
            time=NOW - timedelta(hours=3),
            actor_name="app-1",
            operation=Operation.KEY_CREATE,
            face=Face.CONSOLE,
            correlation_id="elsewhere",
        ),
        entry_values(
            time=NOW - timedelta(hours=2),
            actor_oid=personas.outsider.oid,
            actor_name=personas.outsider.username,
            actor_kind="user",
            operation=Operation.SIGN_IN,
            face=Face.CONSOLE,
            correlation_id="outsider-sign-in",
        ),
        in_vault(
            other_vault,
            time=NOW - timedelta(hours=2),
            actor_oid=personas.outsider.oid,
            actor_name=personas.outsider.username,
            operation=Operation.KEY_GET,
            result=Result.FORBIDDEN,
            status_code=403,
            face=Face.CONSOLE,
            correlation_id="outsider-denied",
        ),
        in_vault(
            vault,
            time=NOW - timedelta(hours=1),
            actor_oid=personas.crypto_user.oid,
            actor_name=personas.crypto_user.username,
            operation=Operation.KEY_DECRYPT,
            result=Result.BAD_PARAMETER,
            status_code=400,
            face=Face.CLI,
            correlation_id="crypto-bad",
        ),
    )
    return {entry.correlation_id: entry for entry in created}


# --- who sees what -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("persona", "seen"),
    [
        ("owner", ["crypto-bad", "denied-sign", "get"]),
        ("reader", ["crypto-bad", "denied-sign", "get"]),
        ("crypto_user", ["crypto-bad"]),
        ("outsider", ["outsider-sign-in"]),
    ],
)
def test_the_global_page_shows_each_persona_what_it_may_read(
    as_: Any, log: dict[str, ActivityEntry], persona: str, seen: list[str]
) -> None:
    response = as_(persona).get("/activity/")
    assert response.status_code == 200
    assert marks(response) == seen
    page = text(response)
    assert "elsewhere" not in page and "outsider-denied" not in page


def test_a_deployment_superuser_reads_the_whole_log(
    client: Client, owner: User, log: dict[str, ActivityEntry]
) -> None:
    client.force_login(owner)
    assert marks(client.get("/activity/")) == [
        "crypto-bad",
        "outsider-denied",
        "outsider-sign-in",
        "elsewhere",
        "denied-sign",
        "get",
    ]


@pytest.mark.parametrize(
    ("persona", "status", "seen"),
    [
        ("owner", 200, ["crypto-bad", "denied-sign", "get"]),
        ("reader", 200, ["crypto-bad", "denied-sign", "get"]),
        ("crypto_user", 200, ["crypto-bad"]),
        ("outsider", 404, None),
    ],
)
def test_the_vault_tab_shows_only_that_vaults_entries(
    as_: Any,
    personas: Personas,
    log: dict[str, ActivityEntry],
    persona: str,
    status: int,
    seen: list[str] | None,
) -> None:
    response = as_(persona).get(f"/vaults/{personas.vault.name}/activity/")
    assert response.status_code == status
    if seen is not None:
        assert marks(response) == seen
        page = text(response)
        assert 'aria-current="page">Activity</a>' in page
        assert personas.vault.uri in page


def test_the_vault_tab_of_a_vault_nobody_here_may_read_is_404(
    as_: Any, other_vault: Vault, log: dict[str, ActivityEntry]
) -> None:
    assert as_("reader").get(f"/vaults/{other_vault.name}/activity/").status_code == 404


def test_rows_show_every_column_and_expand_to_the_request_details(
    client: Client, owner: User, log: dict[str, ActivityEntry]
) -> None:
    denied = log["denied-sign"]
    client.force_login(owner)
    page = text(client.get("/activity/", {"operation": "KeySign"}))
    assert "<details>" in page and f"#{denied.seq}" in page
    for shown in ("KeySign", "Forbidden", "403", "app-2", "Vault endpoint", "10.0.0.7", "1.5 ms"):
        assert shown in page
    assert "Caller is not authorized" in page and "denied-sign" in page
    assert 'class="badge bad">Forbidden' in page


# --- filters -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filters", "seen"),
    [
        ({"operation": "KeySign"}, ["denied-sign"]),
        ({"actor": "app-1"}, ["elsewhere", "get"]),
        ({"actor": " app-1 "}, ["elsewhere", "get"]),
        ({"result": "Forbidden"}, ["outsider-denied", "denied-sign"]),
        ({"result": "BadParameter"}, ["crypto-bad"]),
        ({"result": "failures"}, ["crypto-bad", "outsider-denied", "denied-sign"]),
        ({"face": "cli"}, ["crypto-bad"]),
        ({"face": "console", "result": "Success"}, ["outsider-sign-in", "elsewhere"]),
        ({"operation": "KeyGet", "result": "Success"}, ["get"]),
    ],
)
def test_each_filter_narrows_the_entries(
    client: Client,
    owner: User,
    log: dict[str, ActivityEntry],
    filters: dict[str, str],
    seen: list[str],
) -> None:
    client.force_login(owner)
    assert marks(client.get("/activity/", filters)) == seen


def test_a_time_range_is_read_in_utc(
    client: Client, owner: User, log: dict[str, ActivityEntry]
) -> None:
    client.force_login(owner)
    since = (NOW - timedelta(hours=4, minutes=30)).astimezone(UTC)
    until = (NOW - timedelta(hours=2, minutes=30)).astimezone(UTC)
    response = client.get(
        "/activity/",
        {"since": since.strftime("%Y-%m-%dT%H:%M"), "until": until.strftime("%Y-%m-%dT%H:%M")},
    )
    assert marks(response) == ["elsewhere", "denied-sign"]
    assert f'value="{since:%Y-%m-%dT%H:%M}"' in text(response)


def test_the_vault_tab_filters_within_the_vault(
    as_: Any, personas: Personas, log: dict[str, ActivityEntry]
) -> None:
    url = f"/vaults/{personas.vault.name}/activity/"
    assert marks(as_("reader").get(url, {"actor": "app-1"})) == ["get"]


@pytest.mark.parametrize(
    ("filters", "error"),
    [
        ({"operation": "Teleport"}, "Select a valid choice"),
        ({"face": "telepathy"}, "Select a valid choice"),
        ({"since": "yesterday"}, "Enter a valid date/time"),
        ({"since": "2025-01-02T10:00", "until": "2025-01-01T10:00"}, "Must be later than Since"),
    ],
)
def test_bad_filters_are_shown_beside_the_table_and_select_nothing(
    client: Client,
    owner: User,
    log: dict[str, ActivityEntry],
    filters: dict[str, str],
    error: str,
) -> None:
    client.force_login(owner)
    response = htmx_get(client, "/activity/", **filters)
    assert response.status_code == 200 and is_fragment(response)
    assert error in text(response)
    assert response.context["entries"] == []
    assert "Export CSV" not in text(response)


def test_filters_answer_htmx_with_the_table_and_plain_requests_with_the_page(
    client: Client, owner: User, log: dict[str, ActivityEntry]
) -> None:
    client.force_login(owner)
    fragment = htmx_get(client, "/activity/", operation="KeySign")
    assert is_fragment(fragment)
    assert text(fragment).lstrip().startswith('<div id="activity-table">')
    assert "<select" not in text(fragment) and "denied-sign" in text(fragment)
    page = client.get("/activity/", {"operation": "KeySign"})
    assert not is_fragment(page)
    assert 'hx-push-url="true"' in text(page) and 'hx-target="#activity-table"' in text(page)
    assert '<option value="KeySign" selected>' in text(page)


# --- seek pagination ---------------------------------------------------------------------


def follow(client: Client, url: str, **filters: str) -> Iterator[list[ActivityEntry]]:
    """Each page of a listing, found by following its "older" links."""
    response = client.get(url, filters)
    while True:
        yield response.context["entries"]
        older = response.context["older_url"]
        if older is None:
            return
        parts = urlsplit(older)
        query = {name: values[0] for name, values in parse_qs(parts.query).items()}
        assert query.pop("before").isdigit()
        assert query == {name: value for name, value in filters.items() if value}
        response = client.get(older)


def test_older_pages_continue_by_seq_without_gap_or_repeat(
    client: Client, owner: User, personas: Personas
) -> None:
    verify = in_vault(personas.vault, operation=Operation.KEY_VERIFY)
    created = append(*[verify for _ in range(2 * PAGE_SIZE + 7)])
    client.force_login(owner)
    pages = list(follow(client, "/activity/", operation="KeyVerify"))
    assert [len(page) for page in pages] == [PAGE_SIZE, PAGE_SIZE, 7]
    shown = [entry.seq for page in pages for entry in page]
    assert shown == sorted((entry.seq for entry in created), reverse=True)


def test_older_pages_within_a_time_range_follow_time_without_gap_or_repeat(
    client: Client, owner: User, personas: Personas
) -> None:
    # Times out of seq order, with ties, as concurrent writers leave them.
    rng = random.Random(5)
    times = [NOW - timedelta(minutes=rng.randrange(40)) for _ in range(2 * PAGE_SIZE + 3)]
    created = append(*[in_vault(personas.vault, time=time) for time in times])
    append(in_vault(personas.vault, time=NOW - timedelta(hours=3)))  # outside the range
    client.force_login(owner)
    since = (NOW - timedelta(hours=1)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M")
    pages = list(follow(client, "/activity/", since=since, operation="KeyGet"))
    assert [len(page) for page in pages] == [PAGE_SIZE, PAGE_SIZE, 3]
    shown = [entry.seq for page in pages for entry in page]
    expected = sorted(created, key=lambda entry: (entry.time, entry.seq), reverse=True)
    assert shown == [entry.seq for entry in expected]


@pytest.mark.parametrize("by_time", [False, True])
def test_any_failure_pages_through_every_kind_without_gap_or_repeat(
    client: Client, owner: User, personas: Personas, by_time: bool
) -> None:
    rng = random.Random(7)
    kinds = [Result.FORBIDDEN, Result.NOT_FOUND, Result.BAD_PARAMETER, Result.CONFLICT]
    created = append(
        *[
            in_vault(
                personas.vault,
                time=NOW - timedelta(minutes=rng.randrange(30)),
                result=rng.choice([*kinds, Result.SUCCESS]),
            )
            for _ in range(3 * PAGE_SIZE)
        ]
    )
    failures = [entry for entry in created if entry.result != Result.SUCCESS]
    client.force_login(owner)
    filters = {"result": "failures", "face": "api"}
    if by_time:
        filters["until"] = (NOW + timedelta(minutes=5)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M")
        failures.sort(key=lambda entry: (entry.time, entry.seq), reverse=True)
    else:
        failures.sort(key=lambda entry: entry.seq, reverse=True)
    shown = [entry.seq for page in follow(client, "/activity/", **filters) for entry in page]
    assert shown == [entry.seq for entry in failures]


def test_infinite_scroll_loads_the_next_rows_only(
    client: Client, owner: User, personas: Personas
) -> None:
    append(*[in_vault(personas.vault, operation=Operation.KEY_WRAP) for _ in range(PAGE_SIZE + 2)])
    client.force_login(owner)
    first = client.get("/activity/", {"operation": "KeyWrap"})
    older = first.context["older_url"]
    assert f'hx-get="{older.replace("&", "&amp;")}" hx-trigger="revealed"' in text(first)
    rows = htmx_get(client, older)
    assert is_fragment(rows)
    assert "<table" not in text(rows) and text(rows).count("<tr>") == 2
    assert rows.context["older_url"] is None and 'id="activity-more"' not in text(rows)
    # Without JavaScript the same link is a whole page, with a way back to the newest.
    page = client.get(older)
    assert not is_fragment(page) and "Newest entries" in text(page)


def test_a_cursor_that_is_not_a_number_is_refused(client: Client, owner: User) -> None:
    client.force_login(owner)
    response = client.get("/activity/", {"before": "x"})
    assert response.status_code == 400


# --- exports -----------------------------------------------------------------------------


def streamed(response: Any) -> str:
    assert response.streaming
    return b"".join(response.streaming_content).decode()


def test_the_csv_export_holds_exactly_the_filtered_entries(
    client: Client, owner: User, personas: Personas, log: dict[str, ActivityEntry]
) -> None:
    many = append(
        *[in_vault(personas.vault, operation=Operation.KEY_VERIFY) for _ in range(PAGE_SIZE + 5)]
    )
    client.force_login(owner)
    response = client.get("/activity/export.csv", {"operation": "KeyVerify"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="activity-all-')
    assert response["Content-Disposition"].endswith('.csv"')
    rows = list(csv.reader(io.StringIO(streamed(response))))
    assert rows[0] == list(EXPORT_FIELDS)
    assert [int(row[0]) for row in rows[1:]] == sorted((e.seq for e in many), reverse=True)
    record = dict(zip(rows[0], rows[1], strict=True))
    assert record["operation"] == "KeyVerify" and record["client_ip"] == "10.0.0.7"
    assert datetime.fromisoformat(record["time"]) == many[-1].time


def test_the_json_lines_export_parses_line_by_line(
    client: Client, owner: User, log: dict[str, ActivityEntry]
) -> None:
    client.force_login(owner)
    response = client.get("/activity/export.jsonl", {"result": "failures"})
    assert response["Content-Type"] == "application/jsonl; charset=utf-8"
    assert response["Content-Disposition"].endswith('.jsonl"')
    lines = streamed(response).splitlines()
    records = [json.loads(line) for line in lines]
    assert [record["correlation_id"] for record in records] == [
        "crypto-bad",
        "outsider-denied",
        "denied-sign",
    ]
    assert set(records[0]) == set(EXPORT_FIELDS)
    assert records[2]["status_code"] == 403 and records[2]["message"] == "Caller is not authorized"


def test_exports_hold_only_what_the_operator_may_read(
    as_: Any, personas: Personas, log: dict[str, ActivityEntry]
) -> None:
    client = as_("reader")
    body = streamed(client.get("/activity/export.jsonl"))
    seen = {json.loads(line)["correlation_id"] for line in body.splitlines()}
    assert {"get", "denied-sign", "crypto-bad"} <= seen
    assert not seen & {"elsewhere", "outsider-sign-in", "outsider-denied"}
    mine = streamed(as_("outsider").get("/activity/export.csv"))
    assert "outsider-sign-in" in mine and "outsider-denied" not in mine


def test_the_vault_export_is_the_vaults_own_and_404_for_outsiders(
    as_: Any, personas: Personas, log: dict[str, ActivityEntry]
) -> None:
    url = f"/vaults/{personas.vault.name}/activity/export.csv"
    response = as_("reader").get(url, {"face": "api"})
    assert f'filename="activity-{personas.vault.name}-' in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(streamed(response))))
    assert [row["correlation_id"] for row in rows] == ["denied-sign", "get"]
    assert as_("outsider").get(url).status_code == 404


def test_the_page_links_exports_of_its_own_filters(
    client: Client, owner: User, personas: Personas, log: dict[str, ActivityEntry]
) -> None:
    client.force_login(owner)
    page = text(client.get(f"/vaults/{personas.vault.name}/activity/", {"actor": "app-2"}))
    assert f'href="/vaults/{personas.vault.name}/activity/export.csv?actor=app-2"' in page
    assert f'href="/vaults/{personas.vault.name}/activity/export.jsonl?actor=app-2"' in page


def test_an_export_with_bad_filters_is_refused(client: Client, owner: User) -> None:
    client.force_login(owner)
    response = client.get("/activity/export.csv", {"result": "Maybe"})
    assert response.status_code == 400
    assert "result" in text(response)


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(
    client: Client, owner: User
) -> None:
    append(entry_values(actor_name="=HYPERLINK(1)", message="+1", correlation_id="formula"))
    client.force_login(owner)
    rows = list(csv.DictReader(io.StringIO(streamed(client.get("/activity/export.csv")))))
    row = next(row for row in rows if row["correlation_id"] == "formula")
    assert (row["actor_name"], row["message"]) == ("'=HYPERLINK(1)", "'+1")


# --- cost --------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["owner", "reader"])
def test_a_page_costs_the_same_queries_for_10_or_1000_entries(
    as_: Any, personas: Personas, persona: str, django_assert_max_num_queries: Any
) -> None:
    Vault.objects.filter(pk=personas.vault.pk).update(created_at=NOW - timedelta(days=1))
    append(*[in_vault(personas.vault, result=Result.NOT_FOUND) for _ in range(10)])
    client = as_(persona)
    client.get("/activity/")
    urls = [
        "/activity/",
        "/activity/?result=failures",
        f"/vaults/{personas.vault.name}/activity/",
    ]
    counts = {}
    for url in urls:
        # "Any failure" reads one run per kind of failure (seven of them).
        with django_assert_max_num_queries(13) as few:
            assert len(client.get(url).context["entries"]) >= 10
        counts[url] = len(few.captured_queries)
    kinds = [Result.NOT_FOUND, Result.FORBIDDEN, Result.CONFLICT]
    append(*[in_vault(personas.vault, result=kinds[number % 3]) for number in range(1000)])
    for url in urls:
        with django_assert_max_num_queries(counts[url]):
            assert len(client.get(url).context["entries"]) == PAGE_SIZE
