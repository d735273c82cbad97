"""Run a command against a throwaway PostgreSQL cluster: `python -m tests.postgres CMD ...`.

`make test` runs the suite a second time this way. The cluster is initialised into a new
temporary directory, listens only on a unix socket there, trusts local connections (nothing
else can reach it), and is stopped and removed when the command ends, fails or is
interrupted. The command gets `DATABASE_URL` for a database of its own in it; the tests'
separate deployments (tests/processes.py) create theirs beside it.

As root (`.ci/run` on a clean machine) the server runs as Debian's `postgres` user, because
initdb refuses root. It is told to die with this process, so not even a SIGKILL here leaves
it running. Durability is switched off: nothing in a throwaway cluster must survive a crash.
"""

import ctypes
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import quote

import psycopg

SUPERUSER = "kvconsole"
DATABASE = "kvconsole"
_SETTINGS = {
    "listen_addresses": "",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    # Each real-process test deployment opens connections of its own beside the suite's.
    "max_connections": "200",
    # Less write-ahead log kept between checkpoints: tests scan it for secrets.
    "max_wal_size": "256MB",
}
_PR_SET_PDEATHSIG = 1


class PostgresMissing(RuntimeError):
    pass


def server_binaries() -> Path:
    """The directory of initdb and postgres: on PATH, or Debian's newest packaged version."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0,
    )
    if not versions:
        raise PostgresMissing(
            "The PostgreSQL test run needs PostgreSQL's server programs (initdb, postgres); "
            "on Debian: apt-get install postgresql"
        )
    return versions[-1].parent


def database_url(socket_directory: Path, name: str) -> str:
    """A DATABASE_URL for database `name` on the cluster listening in `socket_directory`."""
    return f"postgres://{SUPERUSER}@{quote(str(socket_directory), safe='')}/{name}"


def _server_user() -> tuple[int, int] | None:
    """The uid and gid to run the server as, or None to run it as ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        account = pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresMissing(
            "initdb refuses to run as root and there is no 'postgres' user to run it as "
            "(Debian's postgresql package creates one)"
        ) from None
    return account.pw_uid, account.pw_gid


def _dies_with(parent: int) -> Callable[[], None]:
    def preexec() -> None:
        # Set after the switch of user (subprocess changes it before calling this), which
        # would clear it. SIGQUIT is the server's immediate shutdown.
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGQUIT)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


@dataclass
class Cluster:
    """A throwaway cluster: its directory (data, socket, log) and its server, which can be
    stopped and started again (`make load` restarts it under load)."""

    directory: Path
    binaries: Path
    user: tuple[int, int] | None
    server: subprocess.Popen[bytes] | None = None

    def _as_user(self) -> dict[str, Any]:
        if self.user is None:
            return {}
        return {"user": self.user[0], "group": self.user[1], "extra_groups": []}

    def initialise(self) -> None:
        if self.user is not None:
            os.chown(self.directory, *self.user)
        subprocess.run(
            [
                str(self.binaries / "initdb"),
                f"--pgdata={self.directory / 'data'}",
                f"--username={SUPERUSER}",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
                "--no-instructions",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            # The server's user may not enter the caller's working directory.
            cwd=self.directory,
            **self._as_user(),
        )

    def start(self) -> None:
        settings = [f"--{name.replace('_', '-')}={value}" for name, value in _SETTINGS.items()]
        log = self.directory / "server.log"
        with log.open("ab") as log_file:
            self.server = subprocess.Popen(
                [
                    str(self.binaries / "postgres"),
                    "-D",
                    str(self.directory / "data"),
                    "-k",
                    str(self.directory),
                    *settings,
                ],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                cwd=self.directory,
                stderr=subprocess.STDOUT,
                # Out of the terminal's process group: a Ctrl-C stops the tests, which still
                # need their database while they wind down.
                start_new_session=True,
                preexec_fn=_dies_with(os.getpid()),
                **self._as_user(),
            )
        _wait_until_ready(self.server, self.directory, log)

    def stop(self) -> None:
        if self.server is not None:
            _stop(self.server)

    def create_database(self, name: str) -> str:
        """A new empty database, and its DATABASE_URL."""
        with psycopg.connect(database_url(self.directory, "postgres"), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return database_url(self.directory, name)


@contextmanager
def running_cluster() -> Iterator[Cluster]:
    """A running throwaway cluster, stopped and removed at the end."""
    running = Cluster(
        Path(tempfile.mkdtemp(prefix="kvconsole-pg-")), server_binaries(), _server_user()
    )
    try:
        running.initialise()
        running.start()
        running.create_database(DATABASE)
        yield running
    finally:
        running.stop()
        shutil.rmtree(running.directory, ignore_errors=True)


@contextmanager
def cluster() -> Iterator[Path]:
    """A running throwaway cluster; yields the directory its socket is in."""
    with running_cluster() as running:
        yield running.directory


def _wait_until_ready(server: subprocess.Popen[bytes], directory: Path, log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"PostgreSQL did not start:\n{log.read_text(errors='replace')}")
        try:
            psycopg.connect(database_url(directory, "postgres"), connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _stop(server: subprocess.Popen[bytes]) -> None:
    """Fast shutdown (clients disconnected, open transactions rolled back), then harder."""
    for sig, grace in ((signal.SIGINT, 30), (signal.SIGQUIT, 10), (signal.SIGKILL, 10)):
        if server.poll() is not None:
            return
        server.send_signal(sig)
        try:
            server.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue


def run(command: list[str]) -> int:
    """Run `command` with DATABASE_URL set to a fresh cluster's database; its exit status."""
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, frame: FrameType | None) -> None:
        if child is None:
            # Still starting the cluster: stop, and remove what was made.
            raise SystemExit(128 + signum)
        # A Ctrl-C reaches the command from the terminal by itself; anything else sent to
        # this process is passed on, and the cluster goes once the command is done.
        if signum != signal.SIGINT:
            child.send_signal(signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, forward)
    with cluster() as directory:
        environment = {**os.environ, "DATABASE_URL": database_url(directory, DATABASE)}
        child = subprocess.Popen(command, env=environment)
        status = child.wait()
    return status if status >= 0 else 128 - status


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print("usage: python -m tests.postgres COMMAND [ARGS...]", file=sys.stderr)
        return 2
    try:
        return run(argv)
    except PostgresMissing as missing:
        print(missing, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
