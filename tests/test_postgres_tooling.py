"""The throwaway PostgreSQL cluster of tests/postgres.py, which `make test` runs the suite on:
it serves the command, and nothing of it is left once the command ends, fails or the
script itself is killed."""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.processes import ROOT

# No skip without PostgreSQL: make test needs its server programs for its second run anyway
# (.ci/run installs them), and tests/postgres.py says which package to install.
pytestmark = pytest.mark.slow


def wrapped(*command: str, **options: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.postgres", *command],
        cwd=ROOT,
        text=True,
        **options,  # type: ignore[call-overload]
    )


def servers_of(directory: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if directory in " ".join(process.info["cmdline"] or []):
            found.append(process)
    return found


def test_the_command_gets_a_database_and_its_failure_and_nothing_is_left() -> None:
    run = wrapped(
        sys.executable,
        "-c",
        "import os, psycopg; print(os.environ['DATABASE_URL']); "
        "psycopg.connect(os.environ['DATABASE_URL']).execute('SELECT 1'); raise SystemExit(3)",
        stdout=subprocess.PIPE,
    )
    out, _ = run.communicate(timeout=120)
    assert run.returncode == 3
    url = out.strip()
    assert url.startswith("postgres://kvconsole@%2F")
    directory = url.split("@", 1)[1].split("/", 1)[0].replace("%2F", "/")
    assert not Path(directory).exists()
    assert servers_of(directory) == []


def test_a_killed_script_takes_its_server_with_it(tmp_path: Path) -> None:
    url_file = tmp_path / "url"
    run = wrapped(
        "sh", "-c", f"echo $DATABASE_URL > {url_file}; exec sleep 120", start_new_session=True
    )
    deadline = time.monotonic() + 120
    while not url_file.exists() or not url_file.read_text().strip():
        assert time.monotonic() < deadline and run.poll() is None
        time.sleep(0.05)
    directory = url_file.read_text().split("@", 1)[1].split("/", 1)[0].replace("%2F", "/")
    try:
        assert servers_of(directory)
        os.kill(run.pid, signal.SIGKILL)
        run.wait(10)
        deadline = time.monotonic() + 30
        while servers_of(directory):
            assert time.monotonic() < deadline, "the server outlived the script"
            time.sleep(0.1)
    finally:
        # The command (in the script's session) and, had it failed, the server; a SIGKILL
        # leaves the directory behind, with nothing running in it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGKILL)
        for server in servers_of(directory):
            server.send_signal(signal.SIGQUIT)
        shutil.rmtree(directory, ignore_errors=True)
