"""Real kvconsole processes for tests: a deployment on disk and `kv` commands against it.

A deployment uses the suite's database engine: a SQLite file in its directory, or, when the
suite runs on PostgreSQL (`DATABASE_URL`, see tests/postgres.py), a database of its own
created beside the suite's on the same server. The helpers below read and inspect a
deployment's database the same way on either.

Applying every migration from nothing takes seconds, more on PostgreSQL, so it is done once
per test session into a template, and each deployment starts from a copy of it (`CREATE
DATABASE ... TEMPLATE` on PostgreSQL). The deployment's own `migrate` still runs on the copy:
it finds nothing to apply, but its post_migrate receivers run for that deployment as on a
fresh database (the read cache's change counter is drawn anew), and the deployment's secret
key and tenant id files are made in its directory by the same command as before.
"""

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg

ROOT = Path(__file__).resolve().parents[1]
DATABASE_FILE = "db.sqlite3"
# The databases this process's deployments made, dropped when the test session ends.
_created: list[str] = []


@dataclass(frozen=True)
class _Template:
    """The session's migrated deployment that the others are copied from: its directory,
    holding its SQLite file, and on PostgreSQL the name of its database."""

    directory: Path
    database: str | None


_templates: list[_Template] = []


def make_deployment(directory: Path) -> dict[str, str]:
    """The environment of a separate development deployment in `directory`, migrated."""
    env = _environment(directory)
    template = _template()
    if server := os.environ.get("DATABASE_URL"):
        env["DATABASE_URL"] = create_database(server, template=template.database)
    else:
        shutil.copyfile(template.directory / DATABASE_FILE, directory / DATABASE_FILE)
    subprocess.run(manage_py("migrate", "-v0"), cwd=ROOT, env=env, check=True)
    return env


def _environment(directory: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "KVCONSOLE_VAR_DIR": str(directory),
        "KVCONSOLE_SQLITE_PATH": str(directory / DATABASE_FILE),
        "DJANGO_SETTINGS_MODULE": "kvconsole.settings",
    }
    env.pop("KVCONSOLE_MASTER_KEY_FILE", None)
    env.pop("KVCONSOLE_BACKUP_KEY_FILE", None)
    return env


def _template() -> _Template:
    """The session's template, migrated from nothing on first use."""
    if _templates:
        return _templates[0]
    directory = Path(tempfile.mkdtemp(prefix="kvconsole-template-"))
    env = _environment(directory)
    database = None
    if server := os.environ.get("DATABASE_URL"):
        env["DATABASE_URL"] = create_database(server)
        database = _created[-1]
    subprocess.run(manage_py("migrate", "-v0"), cwd=ROOT, env=env, check=True)
    if database is None:
        # Everything into the main file, which is all a copy takes; closing the last
        # connection removes the write-ahead log.
        with closing(sqlite3.connect(directory / DATABASE_FILE)) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    _templates.append(_Template(directory, database))
    return _templates[0]


def create_database(server_url: str, *, template: str | None = None) -> str:
    """A new database on the server of `server_url`, empty or a copy of `template`, and its
    URL."""
    name = f"kvconsole_deployment_{uuid.uuid4().hex[:16]}"
    copy = f' TEMPLATE "{template}"' if template else ""
    # Through the server's maintenance database, as Django creates its test database.
    with psycopg.connect(server_url, dbname="postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"{copy}')
    _created.append(name)
    return urlsplit(server_url)._replace(path=f"/{name}").geturl()


def drop_deployment_databases() -> None:
    """Drop the databases this process's deployments and their template made on the suite's
    PostgreSQL server (processes still connected to one are disconnected), and remove the
    template's directory."""
    while _templates:
        shutil.rmtree(_templates.pop().directory, ignore_errors=True)
    if not _created:
        return
    with psycopg.connect(os.environ["DATABASE_URL"], dbname="postgres", autocommit=True) as admin:
        while _created:
            admin.execute(f'DROP DATABASE IF EXISTS "{_created.pop()}" WITH (FORCE)')


def on_postgresql(deployment: dict[str, str]) -> bool:
    return bool(deployment.get("DATABASE_URL"))


def query(
    deployment: dict[str, str], sql: str, params: Sequence[Any] = ()
) -> list[tuple[Any, ...]]:
    """The rows of `sql` (placeholders written `%s`) in the deployment's database, read with
    a connection of the test's own, not Django's."""
    if on_postgresql(deployment):
        with psycopg.connect(deployment["DATABASE_URL"]) as connection:
            return connection.execute(sql, params).fetchall()
    with closing(_sqlite(deployment)) as connection:
        return connection.execute(sql.replace("%s", "?"), params).fetchall()


def _sqlite(deployment: dict[str, str]) -> sqlite3.Connection:
    connection = sqlite3.connect(deployment["KVCONSOLE_SQLITE_PATH"])
    # The schema's checks use REGEXP, which Django gives its own connections.
    connection.create_function("REGEXP", 2, lambda pattern, text: bool(re.search(pattern, text)))
    return connection


def integrity_problems(deployment: dict[str, str]) -> list[str]:
    """What the database's own checker finds wrong with the deployment's storage: SQLite's
    integrity check, or amcheck over every B-tree index on PostgreSQL (heap and index)."""
    if not on_postgresql(deployment):
        with closing(_sqlite(deployment)) as connection:
            found = [row[0] for row in connection.execute("PRAGMA integrity_check")]
        return [] if found == ["ok"] else found
    problems = []
    with psycopg.connect(deployment["DATABASE_URL"], autocommit=True) as connection:
        connection.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
        indexes = connection.execute(
            "SELECT c.oid, c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_am am ON am.oid = c.relam "
            "WHERE am.amname = 'btree' AND c.relnamespace = 'public'::regnamespace"
        ).fetchall()
        for oid, name in indexes:
            try:
                connection.execute("SELECT bt_index_check(%s, true)", [oid])
            except psycopg.Error as error:
                problems.append(f"{name}: {error}")
    return problems


def stored_bytes(deployment: dict[str, str]) -> bytes:
    """Every byte the database keeps on disk for the deployment: the SQLite file and its WAL,
    or the PostgreSQL database's files and the server's write-ahead log, after a checkpoint
    has written out everything committed."""
    if not on_postgresql(deployment):
        directory = Path(deployment["KVCONSOLE_SQLITE_PATH"]).parent
        return b"".join(path.read_bytes() for path in directory.glob(f"{DATABASE_FILE}*"))
    with psycopg.connect(deployment["DATABASE_URL"], autocommit=True) as connection:
        connection.execute("CHECKPOINT")
        row = connection.execute(
            "SELECT current_setting('data_directory'), oid FROM pg_database "
            "WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    data = Path(row[0])
    files = [*(data / "base" / str(row[1])).iterdir(), *(data / "pg_wal").iterdir()]
    return b"".join(path.read_bytes() for path in files if path.is_file())


def manage_py(*args: str) -> list[str]:
    """The command line of `python manage.py ...` in this checkout."""
    return [sys.executable, str(ROOT / "manage.py"), *args]


def run_kv(deployment: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        manage_py("kv", *args),
        cwd=ROOT,
        env=deployment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def shell(deployment: dict[str, str], code: str) -> str:
    """What Python `code` printed, run in the deployment (`manage.py shell -c`)."""
    return subprocess.run(
        manage_py("shell", "-v0", "-c", code),
        cwd=ROOT,
        env=deployment,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout


def kv_at_once(deployment: dict[str, str], *args: str, processes: int = 2) -> list[str]:
    """The outputs of `processes` identical `kv` commands started together, once every one
    has succeeded."""
    runs = [
        subprocess.Popen(
            manage_py("kv", *args),
            cwd=ROOT,
            env=deployment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    outputs = [run.communicate(timeout=300) for run in runs]
    for run, (_, stderr) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, stderr
    return [stdout for stdout, _ in outputs]
