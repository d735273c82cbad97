"""Console pages of the activity log, global and per vault, and their exports.

Entries come from `selectors.activity_list`, which keeps only what the operator may read.
The log only grows, so pages never count it: they read newest first along an index and
page by seeking past the last entry shown (`before=<seq>`), and exports stream.
"""

import csv
import heapq
import itertools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.db.models import Q, QuerySet
from django.http import HttpResponse, QueryDict, StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from kvconsole.console import page
from kvconsole.errors import BadParameter
from kvconsole.http import AuthedRequest

from .. import selectors
from ..models import ActivityEntry, Face, Operation, Result, Vault
from .resources import visible_vault

PAGE_SIZE = 50
EXPORT_CHUNK = 2000
# The result filter's value for every kind of failure at once.
FAILURES = "failures"
RESULT_CHOICES = [
    ("", "Any result"),
    (Result.SUCCESS.value, "Success"),
    (FAILURES, "Any failure"),
    *[(value, label) for value, label in Result.choices if value != Result.SUCCESS],
]
FAILURE_KINDS = [value for value in Result.values if value != Result.SUCCESS]
# What an export holds: the columns the page shows and the ids that find an entry again.
EXPORT_FIELDS = (
    "seq",
    "time",
    "operation",
    "result",
    "status_code",
    "actor_name",
    "face",
    "target",
    "client_ip",
    "duration_ms",
    "message",
    "correlation_id",
    "request_id",
    "api_version",
)


class UtcDateTimeField(forms.DateTimeField):
    """A datetime-local input read and shown in UTC, whatever the deployment's time zone."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")

    def to_python(self, value: Any) -> datetime | None:
        with timezone.override(UTC):
            return super().to_python(value)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, datetime):
            return value.astimezone(UTC).replace(tzinfo=None)
        return value


class ActivityFilterForm(forms.Form):
    operation = forms.ChoiceField(
        required=False, choices=[("", "Any operation"), *[(op, op) for op in Operation.values]]
    )
    actor = forms.CharField(
        required=False,
        max_length=150,
        widget=forms.TextInput(attrs={"placeholder": "Exact user name"}),
    )
    result = forms.ChoiceField(required=False, choices=RESULT_CHOICES)
    face = forms.ChoiceField(required=False, choices=[("", "Any face"), *Face.choices])
    since = UtcDateTimeField(required=False, label="Since (UTC)")
    until = UtcDateTimeField(required=False, label="Until (UTC)")

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean()
        since, until = self.cleaned_data.get("since"), self.cleaned_data.get("until")
        if since and until and since >= until:
            self.add_error("until", "Must be later than Since.")
        return cleaned

    @property
    def by_time(self) -> bool:
        """A time range is read along the (time, seq) index, newest first by time."""
        return bool(self.cleaned_data.get("since") or self.cleaned_data.get("until"))


@dataclass(frozen=True)
class Scope:
    """Where the activity shown comes from: the whole log, or one vault's part of it."""

    vault: Vault | None

    def url(self, name: str) -> str:
        if self.vault is None:
            return reverse(name)
        return reverse(f"vault-{name}", args=[self.vault.name])


def _entries(
    request: AuthedRequest,
    form: ActivityFilterForm,
    scope: Scope,
    *,
    result: str | None = None,
    until: datetime | None = None,
) -> QuerySet[ActivityEntry]:
    """The entries the filters select, newest first; `result` replaces the form's and
    `until` ends the range earlier."""
    data = form.cleaned_data
    result = result or data["result"]
    entries = selectors.activity_list(
        actor=request.user,
        vault=scope.vault.name if scope.vault else None,
        operation=data["operation"] or None,
        result=result if result != FAILURES else None,
        face=data["face"] or None,
        actor_name=data["actor"] or None,
        since=data["since"],
        until=until or data["until"],
    )
    if result == FAILURES:
        entries = entries.exclude(result=Result.SUCCESS)
    if form.by_time:
        # Within a time range, by seq alone the database would sort every entry in it.
        entries = entries.order_by("-time", "-seq")
    return entries


def newest(
    request: AuthedRequest,
    form: ActivityFilterForm,
    scope: Scope,
    *,
    before: int | None = None,
    count: int = PAGE_SIZE,
) -> tuple[list[ActivityEntry], int | None]:
    """The `count` newest entries the filters select after entry `before` (from the newest
    without it), and the seq to seek from for the next ones, if there are more."""
    cursor: datetime | None = None
    if before is not None and form.by_time:
        # Ordered by time, the next entries start at the cursor entry's time, which becomes
        # the range's (exclusive) end just after it: the index is read from there on.
        cursor = (
            _entries(request, form, scope).filter(seq=before).values_list("time", flat=True)
        ).first()
        if cursor is None:
            return [], None
    # The failures' index holds one run per kind, in seq order within each: any failure is
    # the newest of each kind's run, merged, rather than a walk back through every success.
    kinds: list[str | None] = [None]
    if form.cleaned_data["result"] == FAILURES:
        kinds = list(FAILURE_KINDS)
    runs = []
    for kind in kinds:
        until = cursor + timedelta(microseconds=1) if cursor else None
        entries = _entries(request, form, scope, result=kind, until=until)
        if cursor is not None:
            entries = entries.filter(Q(time__lt=cursor) | Q(seq__lt=before))
        elif before is not None:
            entries = entries.filter(seq__lt=before)
        runs.append(list(entries[: count + 1]))
    order = _time_order if form.by_time else _seq_order
    rows = list(itertools.islice(heapq.merge(*runs, key=order, reverse=True), count + 1))
    older = rows[count - 1].seq if len(rows) > count else None
    return rows[:count], older


def _time_order(entry: ActivityEntry) -> tuple[datetime, int]:
    return entry.time, entry.seq


def _seq_order(entry: ActivityEntry) -> int:
    return entry.seq


def _query(params: QueryDict, **changes: Any) -> str:
    """The filters of `params` (without the page cursor), with `changes`, as a query string."""
    query = {name: value for name, value in params.items() if name != "before" and value}
    query.update({name: value for name, value in changes.items() if value is not None})
    return urlencode(query)


def _before(request: AuthedRequest) -> int | None:
    value = request.GET.get("before", "")
    if not value:
        return None
    if not value.isdigit():
        raise BadParameter("The page cursor 'before' must be an entry number.")
    return int(value)


def _activity_page(request: AuthedRequest, scope: Scope) -> HttpResponse:
    form = ActivityFilterForm(request.GET)
    before = _before(request)
    entries: list[ActivityEntry] = []
    older = None
    if form.is_valid():
        entries, older = newest(request, form, scope, before=before)
    filters = _query(request.GET)
    base = scope.url("activity")
    context = {
        "vault": scope.vault,
        "tab": "activity",
        "form": form,
        "entries": entries,
        "base_url": base,
        "filtered": bool(filters),
        "paged": before is not None,
        "newest_url": f"{base}?{filters}" if filters else base,
        "older_url": f"{base}?{_query(request.GET, before=older)}" if older else None,
        "csv_url": f"{scope.url('activity-export-csv')}?{filters}".rstrip("?"),
        "jsonl_url": f"{scope.url('activity-export-jsonl')}?{filters}".rstrip("?"),
    }
    # Infinite scroll asks for the rows after a cursor; the filters ask for the whole table.
    partial = "activity-rows" if before is not None else "activity-table"
    return page(request, "vaults/activity.html", context, partial=partial)


@require_GET
def activity(request: AuthedRequest) -> HttpResponse:
    return _activity_page(request, Scope(vault=None))


@require_GET
def vault_activity(request: AuthedRequest, name: str) -> HttpResponse:
    return _activity_page(request, Scope(vault=visible_vault(request, name)))


# --- exports ---------------------------------------------------------------------------------


class _Echo:
    """A file-like object whose write returns what it is given, so that `csv.writer` makes
    lines for a streaming response instead of buffering them."""

    def write(self, value: str) -> str:
        return value


# A spreadsheet runs a cell that starts with one of these as a formula; the log holds names
# and messages that callers chose.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _exported(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _csv_lines(rows: Iterable[tuple[Any, ...]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_FIELDS)
    for row in rows:
        yield writer.writerow([_csv_cell(_exported(value)) for value in row])


def _jsonl_lines(rows: Iterable[tuple[Any, ...]]) -> Iterator[str]:
    for row in rows:
        record = dict(zip(EXPORT_FIELDS, map(_exported, row), strict=True))
        yield json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


_FORMATS = {
    "csv": ("text/csv; charset=utf-8", _csv_lines),
    "jsonl": ("application/jsonl; charset=utf-8", _jsonl_lines),
}


def _export(request: AuthedRequest, scope: Scope, kind: str) -> StreamingHttpResponse:
    form = ActivityFilterForm(request.GET)
    if not form.is_valid():
        errors = form.errors.get_json_data()
        problems = "; ".join(
            f"{name}: {' '.join(error['message'] for error in field_errors)}"
            for name, field_errors in errors.items()
        )
        raise BadParameter(f"The filters are not valid: {problems}")
    content_type, lines = _FORMATS[kind]
    rows = _entries(request, form, scope).values_list(*EXPORT_FIELDS)
    # Rows are read in chunks and written as they come, so memory stays flat however many
    # entries the filters select.
    response = StreamingHttpResponse(lines(rows.iterator(chunk_size=EXPORT_CHUNK)))
    response["Content-Type"] = content_type
    stamp = timezone.now().astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = scope.vault.name if scope.vault else "all"
    response["Content-Disposition"] = f'attachment; filename="activity-{name}-{stamp}.{kind}"'
    return response


@require_GET
def activity_export(request: AuthedRequest, kind: str) -> StreamingHttpResponse:
    return _export(request, Scope(vault=None), kind)


@require_GET
def vault_activity_export(request: AuthedRequest, name: str, kind: str) -> StreamingHttpResponse:
    return _export(request, Scope(vault=visible_vault(request, name)), kind)
