"""The activity log: one chained, append-only entry per operation, success or failure.

Services are decorated with `@operation(...)`. The decorator writes the entry, so no face
and no service body writes it by hand:

* A service that changes state does its writes inside `with activity.atomic():`; the success
  entry is written inside that same transaction, so the change and its record commit together.
  Slow work (key generation, authorization reads) happens before the block, outside the
  write lock.
* A service that only reads or uses a key gets its success entry in a short transaction of
  its own after the work is done.
* A failure is recorded after the service's transaction has rolled back, so the record of a
  refused or failed call survives. Faces therefore call services outside any transaction of
  their own (no ATOMIC_REQUESTS): a caller's rollback would take the failure entry with it.

Faces say who is calling and from where with `request_context(...)`; services never see it.
Once committed, each entry is also counted (kvconsole/metrics.py) and written to the log as
one JSON line (kvconsole/jsonlog.py).
"""

import functools
import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import CharField, FloatField, IntegerField
from django.utils import timezone

from accounts.models import User
from kvconsole import jsonlog, metrics
from kvconsole.errors import ServiceError

from . import readcache, security
from .models import ActivityEntry, Face, Operation, Result

GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class RequestContext:
    face: str = Face.SYSTEM
    client_ip: str | None = None
    correlation_id: str = ""
    api_version: str = ""
    request_id: str = ""


@dataclass
class _Pending:
    operation: str
    actor: User
    started: float
    resource_group: str = ""
    vault_name: str = ""
    target: str = ""
    status_code: int = 200
    recorded: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class Describable(Protocol):
    @property
    def activity_scope(self) -> tuple[str, str, str]:
        """(resource group name, vault name, target path) of this object."""
        ...


# RequestContext is frozen, so sharing one default instance is safe.
_request_context: ContextVar[RequestContext] = ContextVar(
    "activity_request_context",
    default=RequestContext(),  # noqa: B039
)
_pending: ContextVar[_Pending | None] = ContextVar("activity_pending", default=None)
# Entries written within the current request_context() block, so that a face can tell
# whether a request it refuses still lacks its entry.
_written: ContextVar[list[int] | None] = ContextVar("activity_written", default=None)


@contextmanager
def request_context(
    *,
    face: str,
    client_ip: str | None = None,
    correlation_id: str = "",
    api_version: str = "",
    request_id: str = "",
) -> Iterator[None]:
    """Within this block, operations are recorded with this face, client IP, correlation id
    and, for the vault endpoint, the api-version and request id."""
    token = _request_context.set(
        RequestContext(
            face,
            client_ip,
            _storable(correlation_id[:64]),
            _storable(api_version[:16]),
            request_id[:36],
        )
    )
    written = _written.set([0])
    try:
        yield
    finally:
        _written.reset(written)
        _request_context.reset(token)


def written_in_request() -> int:
    """How many entries have been written inside the current request_context() block."""
    written = _written.get()
    return written[0] if written is not None else 0


def describe(
    obj: Describable | None = None,
    *,
    resource_group: str | None = None,
    vault: str | None = None,
    target: str | None = None,
    status_code: int | None = None,
) -> None:
    """Name what the running operation acts on (called as soon as the service knows it)."""
    pending = _pending.get()
    if pending is None:
        raise RuntimeError("describe() called outside an operation")
    if obj is not None:
        pending.resource_group, pending.vault_name, pending.target = obj.activity_scope
    if resource_group is not None:
        pending.resource_group = resource_group
    if vault is not None:
        pending.vault_name = vault
    if target is not None:
        pending.target = target
    if status_code is not None:
        pending.status_code = status_code


@contextmanager
def atomic() -> Iterator[None]:
    """A transaction whose commit includes the running operation's success entry."""
    pending = _pending.get()
    if pending is None:
        raise RuntimeError("activity.atomic() used outside an operation")
    # What this request reads from now on must include its own change.
    readcache.forget()
    with transaction.atomic():
        yield
        _append(pending, Result.SUCCESS, pending.status_code, "")
    # Only once committed: a failed COMMIT (a deferred constraint, a lost connection) rolls
    # the success entry back with the change, and the failure must then be recorded instead.
    pending.recorded = True


def operation[F: Callable[..., Any]](name: Operation) -> Callable[[F], F]:
    """Decorate a service so that each call is recorded once, whatever its outcome."""

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def run(*, actor: User, **kwargs: Any) -> Any:
            pending = _Pending(operation=name, actor=actor, started=time.perf_counter())
            token = _pending.set(pending)
            try:
                value = function(actor=actor, **kwargs)
                if not pending.recorded:
                    _append(pending, Result.SUCCESS, pending.status_code, "")
                return value
            except ServiceError as error:
                if not pending.recorded:
                    _append(pending, error.result, error.status, error.message)
                    # Only refusals pay for watching refusals; the call's own transaction
                    # has rolled back, so this runs in one of its own.
                    if error.result == Result.FORBIDDEN and pending.vault_name:
                        security.refusal_recorded(
                            actor=actor,
                            resource_group=pending.resource_group,
                            vault_name=pending.vault_name,
                        )
                raise
            except Exception:
                if not pending.recorded:
                    _append(pending, Result.FAILURE, 500, "Internal error")
                raise
            finally:
                _pending.reset(token)

        return run  # type: ignore[return-value]

    return decorate


def _storable(text: str) -> str:
    """`text` with U+FFFD for each NUL: PostgreSQL's text holds none, and a refusal of a name
    or header sent with one must still be recorded."""
    return text.replace("\x00", "\ufffd")


def _append(pending: _Pending, result: str, status_code: int, message: str) -> None:
    context = _request_context.get()
    actor = pending.actor
    # Plain values, not an ActivityEntry: a model instance per call is a measurable share
    # of a key operation (tests/benchmarks/test_sign_throughput.py).
    values = {
        "time": timezone.now(),
        "actor_oid": actor.oid,
        "actor_name": actor.username,
        "actor_display": actor.display_name,
        "actor_kind": actor.kind,
        "operation": pending.operation,
        "resource_group": _within(pending.resource_group, "resource_group"),
        "vault_name": _within(pending.vault_name, "vault_name"),
        "target": _storable(pending.target[:400]),
        "result": result,
        "status_code": status_code,
        "message": _storable(message[:500]),
        "duration_ms": round((time.perf_counter() - pending.started) * 1000, 3),
        "face": context.face,
        "client_ip": _CLIENT_IP_FIELD.get_prep_value(context.client_ip),
        "correlation_id": context.correlation_id,
        "api_version": context.api_version,
        "request_id": context.request_id,
    }
    db = connections[DEFAULT_DB_ALIAS]
    _insert_chained(values, db)
    written = _written.get()
    if written is not None:
        written[0] += 1
    observed = jsonlog.OBSERVED.get()
    if observed is not None:
        observed.entry = values
    # Counted and logged once committed: an entry that rolls back with its transaction
    # never happened, and its failure entry follows. Outside a transaction it is committed
    # already (on_commit would say so with ten more calls, on every key operation).
    if db.in_atomic_block:
        db.on_commit(functools.partial(_committed, values, observed), robust=True)
    else:
        _committed(values, observed)


def _committed(values: dict[str, Any], observed: jsonlog.ObservedRequest | None) -> None:
    metrics.activity_entries(values["operation"], values["result"]).inc()
    if jsonlog.ACTIVITY.isEnabledFor(logging.INFO):
        line = jsonlog.activity_line(values, observed)
        if observed is not None and observed.entry is values:
            observed.entry_line = line
        jsonlog.write(jsonlog.ACTIVITY, line)


def _within(name: str, column: str) -> str:
    """`name` if it fits its column: names are described before they are validated, and
    one too long for the column cannot name a real group or vault (the target keeps it)."""
    limit = cast("CharField[str, str]", ActivityEntry._meta.get_field(column)).max_length
    return name if limit is None or len(name) <= limit else ""


_CLIENT_IP_FIELD = ActivityEntry._meta.get_field("client_ip")
_PAYLOAD_FIELDS = (
    "time",
    "actor_oid",
    "actor_name",
    "actor_display",
    "actor_kind",
    "operation",
    "resource_group",
    "vault_name",
    "target",
    "result",
    "status_code",
    "message",
    "duration_ms",
    "face",
    "client_ip",
    "correlation_id",
    "api_version",
    "request_id",
)
_INSERT_ATTEMPTS = 20


def entry_payload(entry: ActivityEntry) -> str:
    """The canonical text of an entry's own fields (ASCII JSON, the same from any database)."""
    return _payload_text({name: getattr(entry, name) for name in _PAYLOAD_FIELDS})


def _payload_text(values: Mapping[str, Any]) -> str:
    fields = [
        values["time"].isoformat(),
        str(values["actor_oid"]) if values["actor_oid"] else "",
        *(values[name] for name in _PAYLOAD_FIELDS[2:14]),
        values["client_ip"] or "",
        values["correlation_id"],
    ]
    # The vault endpoint's fields came later; entries without them hash as they always did.
    if values["api_version"] or values["request_id"]:
        fields += [values["api_version"], values["request_id"]]
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=True)


def chain_hash(prev_hash: str, seq: int, payload: str) -> str:
    """The link: SHA-256 over the previous entry's hash, this entry's seq and its payload."""
    return hashlib.sha256(f"{prev_hash}\n{seq}\n{payload}".encode()).hexdigest()


def entry_hash(entry: ActivityEntry) -> str:
    return chain_hash(entry.prev_hash, entry.seq, entry_payload(entry))


def _insert_chained(values: dict[str, Any], db: BaseDatabaseWrapper) -> None:
    """Append the entry of `values` (by field name) in one INSERT ... SELECT that reads the
    head and links to it.

    One statement needs no explicit transaction: SQLite runs it under its single write
    lock, so seq and prev_hash always come from the true head. PostgreSQL runs concurrent
    appends side by side; two that read the same head collide on the seq primary key and
    the loser retries. Inside a caller's transaction that retry needs a savepoint.
    """
    # Named parameters: Django's SQLite backend rewrites positional ones with a regular
    # expression over the whole statement, which costs more than the insert's Python.
    params = {
        field.attname: field.get_db_prep_save(values[field.attname], db)
        if prepare
        else values[field.attname]
        for field, prepare in _payload_columns()
    }
    params["payload"] = _payload_text(values)
    needs_savepoint = db.vendor == "postgresql" and db.in_atomic_block
    for attempt in range(_INSERT_ATTEMPTS):
        try:
            if needs_savepoint:
                with transaction.atomic(), db.cursor() as cursor:
                    cursor.execute(_append_sql(), params)
            else:
                with db.cursor() as cursor:
                    cursor.execute(_append_sql(), params)
            return
        except IntegrityError:
            if db.vendor != "postgresql" or attempt == _INSERT_ATTEMPTS - 1:
                raise
            # Spread the retries of appends that collided, so they do not collide again.
            time.sleep(random.uniform(0, 0.001 * 2 ** min(attempt, 6)))  # noqa: S311 (jitter)


@functools.cache
def _payload_columns() -> list[tuple[Any, bool]]:
    """Each payload field, and whether its value needs the database's preparation: text and
    number columns take the str, int or float that `_append` builds as it is; times, UUIDs
    and addresses are converted."""
    fields = [ActivityEntry._meta.get_field(name) for name in _PAYLOAD_FIELDS]
    taken_as_is = CharField | IntegerField | FloatField
    return [(field, not isinstance(field, taken_as_is)) for field in fields]


@functools.cache
def _append_sql() -> str:
    quote = connection.ops.quote_name
    table = quote(ActivityEntry._meta.db_table)
    seq, hash_, prev = quote("seq"), quote("hash"), quote("prev_hash")
    if connection.vendor == "postgresql":
        link = (
            "encode(sha256(convert_to(head.hash || E'\\n' || (head.seq + 1)::text || E'\\n' "
            "|| payload.text, 'UTF8')), 'hex')"
        )
    else:
        link = "kvconsole_chain_hash(head.hash, head.seq + 1, payload.text)"
    columns = ", ".join(quote(field.column) for field, _ in _payload_columns())
    placeholders = ", ".join(f"%({name})s" for name in _PAYLOAD_FIELDS)
    return (
        # Identifiers come from model metadata; every value is a query parameter.
        f"INSERT INTO {table} ({seq}, {prev}, {hash_}, {columns}) "  # noqa: S608
        f"SELECT head.seq + 1, head.hash, {link}, {placeholders} FROM "
        f"(SELECT COALESCE((SELECT {seq} FROM {table} ORDER BY {seq} DESC LIMIT 1), 0) AS seq, "
        f"COALESCE((SELECT {hash_} FROM {table} ORDER BY {seq} DESC LIMIT 1), "
        f"'{GENESIS_HASH}') AS hash) head, (SELECT %(payload)s AS text) payload"
    )


def register_sqlite_functions(sender: Any, connection: Any, **kwargs: Any) -> None:
    """Give each SQLite connection the chain hash its appends compute in SQL."""
    if connection.vendor == "sqlite":
        connection.connection.create_function(
            "kvconsole_chain_hash", 3, chain_hash, deterministic=True
        )


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "head": {"seq": self.head_seq, "hash": self.head_hash},
            "firstBadSeq": self.first_bad_seq,
            "problem": self.problem,
        }


def verify_chain(*, anchor: tuple[int, str] | None = None, chunk_size: int = 5000) -> ChainReport:
    """Walk the whole log and report the first modified, inserted or deleted entry.

    A chain alone cannot show that entries were cut off its end, so an `anchor` (a head
    seq and hash recorded earlier, outside the database) can be checked as well.
    """
    expected_seq, previous_hash, before_previous_hash = 1, GENESIS_HASH, ""
    checked = 0
    # The head of an empty log, (0, GENESIS_HASH), is an anchor every log extends.
    anchor_seen = anchor is None or tuple(anchor) == (0, GENESIS_HASH)

    def report(seq: int, problem: str) -> ChainReport:
        return ChainReport(False, checked, expected_seq - 1, previous_hash, seq, problem)

    for entry in ActivityEntry.objects.order_by("seq").iterator(chunk_size=chunk_size):
        if entry.seq != expected_seq:
            return report(expected_seq, f"entry {expected_seq} was deleted")
        own_hash_valid = entry_hash(entry) == entry.hash
        if entry.prev_hash != previous_hash:
            if entry.prev_hash == before_previous_hash:
                return report(entry.seq - 1, f"entry {entry.seq - 1} was inserted")
            if own_hash_valid:
                return report(entry.seq - 1, f"entry {entry.seq - 1} was modified")
        if not own_hash_valid:
            return report(entry.seq, f"entry {entry.seq} was modified")
        if anchor is not None and entry.seq == anchor[0]:
            if entry.hash != anchor[1]:
                return report(entry.seq, f"entry {entry.seq} does not match the anchor")
            anchor_seen = True
        before_previous_hash, previous_hash = previous_hash, entry.hash
        expected_seq += 1
        checked += 1
    if not anchor_seen:
        assert anchor is not None
        return report(expected_seq, f"entries {expected_seq} to {anchor[0]} were deleted")
    return ChainReport(True, checked, expected_seq - 1, previous_hash)
