"""A per-process cache of what the vault endpoint reads before each key operation: the key
version with its key, vault and group, and the caller's grants there.

Those reads cost more than an RSA signature. They change rarely, and every committed change
to them moves the database's change counter (`ChangeCounter`, moved by triggers installed
here, so no writer — a service, the admin, a shell, raw SQL — can forget to). A request reads
the counter once and may reuse whatever this process read at the same value, so the cache is
exact: a request sees every change committed before it read the counter, as if it had read
the tables themselves.

Rules that keep it exact:
* Only reads made in autocommit mode are shared. Inside a transaction a read may see this
  request's own uncommitted writes, which could still roll back.
* A request that starts a write (`activity.atomic()`, a grant change) stops using the
  shared cache for the rest of the request: its own change is not in what was read before.
* Shared objects are never changed by their readers; services that modify a version read
  it afresh under a lock.
"""

import functools
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.apps import apps
from django.db import DEFAULT_DB_ALIAS, connections, transaction

# What the cached reads depend on. A model whose rows the key lookup or a grant check reads
# belongs here; its triggers are installed after every `migrate`.
WATCHED_MODELS = (
    "keys.Key",
    "keys.KeyVersion",
    "keys.KeyUserObjectPermission",
    "keys.KeyGroupObjectPermission",
    "vaults.Vault",
    "vaults.ResourceGroup",
    "vaults.VaultUserObjectPermission",
    "vaults.VaultGroupObjectPermission",
    "vaults.ResourceGroupUserObjectPermission",
    "vaults.ResourceGroupGroupObjectPermission",
    "accounts.User",
    "accounts.User_groups",
    "auth.Permission",
)
# Entries per counter value: every hot key and caller of a busy process fits; past it the
# cache starts again rather than track which entries are used least.
MAX_ENTRIES = 4096
_COUNTER_ID = 1
# Marks a PostgreSQL transaction whose change has already moved the counter.
_COUNTED_SETTING = "kvconsole.change_counted"

# (counter value, what this process read at that value); replaced as a whole, so a thread
# still serving a request of the previous value keeps that value's dict to itself.
_process: tuple[int, dict[tuple[object, ...], Any]] = (-1, {})


class _Scope:
    __slots__ = ("entries",)

    def __init__(self) -> None:
        # None until the first cached read of the request looks at the counter.
        self.entries: dict[tuple[object, ...], Any] | None = None


_scope: ContextVar[_Scope | None] = ContextVar("readcache_scope", default=None)


@contextmanager
def scope() -> Iterator[None]:
    """One vault endpoint request: it reads the counter at most once, and only if it makes a
    cached read."""
    token = _scope.set(_Scope())
    try:
        yield
    finally:
        _scope.reset(token)


def forget() -> None:
    """The running request is changing what the cache holds: from now on it reads afresh
    (into a dict of its own, which its later writes empty again)."""
    current = _scope.get()
    if current is not None:
        current.entries = {}


def cached[T](key: tuple[object, ...], read: Callable[[], T]) -> T:
    """`read()`, or what this process read under `key` at the same counter value. Outside a
    scope (the console, the CLI) and inside a transaction it is always `read()`.

    None (nothing found) is not kept: any caller could ask for names that do not exist, and
    would otherwise push out what is really used.
    """
    entries = _entries()
    if entries is None:
        return read()
    try:
        return entries[key]
    except KeyError:
        pass
    value = read()
    if value is not None:
        if len(entries) >= MAX_ENTRIES:
            entries.clear()
        entries[key] = value
    return value


def _entries() -> dict[tuple[object, ...], Any] | None:
    current = _scope.get()
    if current is None or connections[DEFAULT_DB_ALIAS].in_atomic_block:
        return None
    if current.entries is None:
        global _process
        counter = _counter()
        if counter is None:
            # No counter (a database migrated halfway, or flushed without its post_migrate):
            # no trigger can move it, so nothing may be shared until `install_triggers` runs.
            current.entries = {}
            return None
        known, entries = _process
        if known != counter:
            entries = {}
            _process = (counter, entries)
        current.entries = entries
    return current.entries


def _counter() -> int | None:
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(_counter_sql(), {"id": _COUNTER_ID})
        row = cursor.fetchone()
    return None if row is None else int(row[0])


@functools.cache
def _counter_sql() -> str:
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    table = quote(apps.get_model("vaults", "ChangeCounter")._meta.db_table)
    return f"SELECT value FROM {table} WHERE id = %(id)s"  # noqa: S608 (identifiers only)


def install_triggers(using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    """Create each watched table's triggers where they are missing, and move the counter to
    a new random value (creating its row if need be).

    Runs after every `migrate` and `flush` (a post_migrate receiver): SQLite drops a table's
    triggers when a migration rebuilds the table, and a flush empties the counter. A change
    committed while a trigger was missing moved nothing, so every process must read afresh
    once the triggers are back; a random value never repeats one a process has seen.
    """
    connection = connections[using]
    existing = set(connection.introspection.table_names())
    counter = apps.get_model("vaults", "ChangeCounter")._meta.db_table
    if counter not in existing:
        return
    quote = connection.ops.quote_name
    tables = [
        table
        for table in (apps.get_model(label)._meta.db_table for label in WATCHED_MODELS)
        if table in existing
    ]
    bump = f"UPDATE {quote(counter)} SET value = value + 1 WHERE id = {_COUNTER_ID}"  # noqa: S608
    # One transaction, the counter moved last: no change can slip between a trigger's
    # creation and the value processes start caching under.
    with transaction.atomic(using=using), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            _install_postgresql_triggers(cursor, quote, tables, bump)
        else:
            for table in tables:
                for event in ("INSERT", "UPDATE", "DELETE"):
                    name = quote(f"kvconsole_changes_{table}_{event.lower()}")
                    cursor.execute(
                        f"CREATE TRIGGER IF NOT EXISTS {name} AFTER {event} ON {quote(table)} "
                        f"BEGIN {bump}; END"
                    )
        cursor.execute(
            f"DELETE FROM {quote(counter)} WHERE id = %s",  # noqa: S608
            [_COUNTER_ID],
        )
        cursor.execute(
            f"INSERT INTO {quote(counter)} (id, value) VALUES (%s, %s)",  # noqa: S608
            [_COUNTER_ID, secrets.randbits(62)],
        )


def _install_postgresql_triggers(
    cursor: Any, quote: Callable[[str], str], tables: list[str], bump: str
) -> None:
    # Deferred to the commit and counted once per transaction: the counter's row lock is
    # taken while committing and held only until the commit ends, so writers of unrelated
    # rows do not queue behind each other's open transactions. One order can still deadlock
    # (PostgreSQL then fails one of the two): a transaction that bumps the counter before a
    # foreign-key check that waits on a row another writer holds FOR UPDATE while that writer
    # waits for the counter. The services lock before they write, so none runs into it
    # today. The function keeps the search_path it was created with, so a session with
    # another one (search_path = '') still finds the counter.
    cursor.execute(
        "CREATE OR REPLACE FUNCTION kvconsole_count_change() RETURNS trigger "
        "LANGUAGE plpgsql SET search_path FROM CURRENT AS $$ BEGIN "
        f"IF current_setting('{_COUNTED_SETTING}', true) IS DISTINCT FROM 'yes' THEN "
        f"{bump}; PERFORM set_config('{_COUNTED_SETTING}', 'yes', true); END IF; "
        "RETURN NULL; END $$"
    )
    # Trigger names are per table in PostgreSQL: one short name everywhere, looked up by
    # table, never truncated at 63 bytes (which would make the next migrate create it again).
    cursor.execute(
        "SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "WHERE c.relnamespace = current_schema()::regnamespace AND t.tgname IN (%s, %s)",
        ["kvconsole_changes", "kvconsole_changes_truncate"],
    )
    installed = set(cursor.fetchall())
    for table in tables:
        if (table, "kvconsole_changes") not in installed:
            cursor.execute(
                "CREATE CONSTRAINT TRIGGER kvconsole_changes "
                f"AFTER INSERT OR UPDATE OR DELETE ON {quote(table)} "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
                "EXECUTE FUNCTION kvconsole_count_change()"
            )
        if (table, "kvconsole_changes_truncate") not in installed:
            # TRUNCATE fires no row triggers; it locks the table exclusively anyway.
            cursor.execute(
                f"CREATE TRIGGER kvconsole_changes_truncate AFTER TRUNCATE ON {quote(table)} "
                "FOR EACH STATEMENT EXECUTE FUNCTION kvconsole_count_change()"
            )
