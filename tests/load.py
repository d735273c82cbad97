"""`make load`: the production server under load, a worker killed, the database restarted.

A production deployment (`KVCONSOLE_ENV=production`, `python -m kvconsole.serve`, 4 granian
workers, HTTPS) on a throwaway PostgreSQL cluster (tests/postgres.py) holds three vaults,
each with an RSA-2048, an EC P-256 and an AES-256 key, used by one application with the Key
Vault Crypto User role. wrk (a C load generator, so that the client takes little of the
machine) drives it over kept-alive connections with a mix of get, list, sign, verify,
encrypt, decrypt, wrap and unwrap across the vaults and key types (tests/load_mix.lua).

Phases, each printed with its throughput, latency percentiles and answers by status:

1. steady: 64 connections for 60 s. Zero 5xx, and zero lost activity entries: every answer
   the client got has exactly one entry with its request id (entries for requests cut off
   when the run stopped, at most one per connection, are counted apart).
2. worker killed: one worker is killed with SIGKILL 10 s into 30 s. The server keeps
   serving (the other workers answer meanwhile; the dead one is started again), no 5xx, no
   answered request without its entry, and the activity log's hash chain still verifies.
3. database restarted: PostgreSQL is stopped 10 s into 30 s and started again 5 s later.
   Requests meanwhile fail cleanly, 503 with Azure's error body, never a 500.
4. recovered: 15 s more, with no failure at all: the workers reconnected by themselves.

Rate limits are raised out of the way: they are measured by their own tests, and this run
measures the server.

Exits non-zero when a line is not held. Needs wrk (Debian: `apt-get install wrk`) and
PostgreSQL's server programs (`apt-get install postgresql`). Options: `--seconds` for the
steady phase, `--connections`, `--workers`.
"""

import argparse
import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg
import requests

from kvconsole import devtls
from tests import postgres
from tests.processes import ROOT, manage_py
from tests.production import access_token, application_with_role

VAULTS = ("load-alpha", "load-beta", "load-gamma")
API = "api-version=2025-07-01"
SUFFIX = "vault.localhost"
MIX_SCRIPT = Path(__file__).with_name("load_mix.lua")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Deployment:
    directory: Path
    port: int
    environment: dict[str, str]
    ca_file: Path
    database_url: str
    server: subprocess.Popen[bytes] | None = None

    def kv(self, *args: str) -> Any:
        done = subprocess.run(
            manage_py("kv", *args),
            cwd=ROOT,
            env=self.environment,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"kv {' '.join(args)}: {done.stderr.strip()}")
        return json.loads(done.stdout) if done.stdout.strip() else None

    def workers(self) -> list[psutil.Process]:
        assert self.server is not None
        return psutil.Process(self.server.pid).children(recursive=True)


def production_environment(directory: Path, port: int, database_url: str) -> dict[str, str]:
    tls = devtls.ensure(directory / "tls", ["localhost"], ["127.0.0.1"])
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("KVCONSOLE_", "DJANGO_"))
    }
    environment.update(
        {
            "DJANGO_SETTINGS_MODULE": "kvconsole.settings",
            "KVCONSOLE_ENV": "production",
            "KVCONSOLE_VAR_DIR": str(directory),
            "KVCONSOLE_SECRET_KEY": secrets.token_urlsafe(50),
            "KVCONSOLE_TENANT_ID": str(uuid.uuid4()),
            "KVCONSOLE_ALLOWED_HOSTS": "localhost",
            "KVCONSOLE_CONSOLE_HOST": f"localhost:{port}",
            "KVCONSOLE_VAULT_HOST_SUFFIX": SUFFIX,
            "KVCONSOLE_VAULT_PORT": str(port),
            "KVCONSOLE_PORT": str(port),
            "KVCONSOLE_TLS_CERT": str(tls.certificate),
            "KVCONSOLE_TLS_KEY": str(tls.private_key),
            "DATABASE_URL": database_url,
            "KVCONSOLE_RATE_LIMIT_VAULT": "100000000",
            "KVCONSOLE_RATE_LIMIT_PRINCIPAL": "100000000",
        }
    )
    return environment


@contextmanager
def deployment(directory: Path, workers: int) -> Iterator[tuple[Deployment, postgres.Cluster]]:
    """A production deployment on its own cluster; yields it and the cluster."""
    with postgres.running_cluster() as cluster:
        database_url = cluster.create_database("load")
        port = free_port()
        environment = production_environment(directory, port, database_url)
        environment["KVCONSOLE_WORKERS"] = str(workers)
        made = Deployment(directory, port, environment, directory / "tls" / "ca.pem", database_url)
        subprocess.run(manage_py("migrate", "-v0"), cwd=ROOT, env=environment, check=True)
        made.kv("key-files", "create")
        log = (directory / "server.log").open("wb")
        made.server = subprocess.Popen(
            [sys.executable, "-m", "kvconsole.serve"],
            cwd=ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_until_serving(made)
            yield made, cluster
        finally:
            os.killpg(made.server.pid, signal.SIGTERM)
            made.server.wait(timeout=60)
            log.close()


def wait_until_serving(made: Deployment) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert made.server is not None
        if made.server.poll() is not None:
            raise RuntimeError((made.directory / "server.log").read_text(errors="replace"))
        try:
            requests.get(
                f"https://localhost:{made.port}/healthz", verify=str(made.ca_file), timeout=2
            )
            return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise RuntimeError("the server did not start")


@dataclass
class Mix:
    authorization: str
    requests: list[dict[str, str]] = field(default_factory=list)

    def lua(self) -> str:
        entries = ",\n".join(
            "  {" + ", ".join(f"{name} = {json.dumps(value)}" for name, value in r.items()) + "}"
            for r in self.requests
        )
        return (
            f"return {{\n authorization = {json.dumps(self.authorization)},\n"
            f" requests = {{\n{entries}\n }}\n}}\n"
        )


def provision(made: Deployment) -> Mix:
    """The vaults, keys and application, and the request mix over them (ciphertexts,
    signatures and wrapped keys made beforehand through the endpoint)."""
    made.kv("group", "create", "--name", "load-rg", "--location", "westeurope")
    for vault in VAULTS:
        made.kv("vault", "create", "--name", vault, "--resource-group", "load-rg")
        made.kv("key", "create", "--vault-name", vault, "--name", "rsa", "--kty", "RSA")
        made.kv("key", "create", "--vault-name", vault, "--name", "ec", "--kty", "EC")
        made.kv("key", "create", "--vault-name", vault, "--name", "aes", "--kty", "oct")
    client_id, secret = application_with_role(
        made.environment, "load", "Key Vault Crypto User", "/resourceGroups/load-rg"
    )
    token = access_token(made.environment, made.port, client_id, secret, made.ca_file)
    mix = Mix(f"Bearer {token}")
    session = requests.Session()
    session.headers["Authorization"] = mix.authorization
    digest = b64url(hashlib.sha256(b"load").digest())
    plaintext, data_key = b64url(os.urandom(64)), b64url(os.urandom(32))

    for vault in VAULTS:
        host = f"{vault}.{SUFFIX}:{made.port}"

        def call(path: str, body: dict[str, str], host: str = host) -> dict[str, str]:
            answer = session.post(
                f"https://127.0.0.1:{made.port}{path}?{API}",
                json=body,
                headers={"Host": host},
                # Per request: requests prefers REQUESTS_CA_BUNDLE to a session's own.
                verify=str(made.ca_file),
                timeout=30,
            )
            answer.raise_for_status()
            result: dict[str, str] = answer.json()
            return result

        def add(
            method: str, path: str, body: dict[str, str] | None = None, host: str = host
        ) -> None:
            request = {"method": method, "path": f"{path}?{API}", "host": host}
            if body is not None:
                request["body"] = json.dumps(body)
            mix.requests.append(request)

        rsa_signature = call("/keys/rsa//sign", {"alg": "RS256", "value": digest})["value"]
        ec_signature = call("/keys/ec//sign", {"alg": "ES256", "value": digest})["value"]
        rsa_cipher = call("/keys/rsa//encrypt", {"alg": "RSA-OAEP-256", "value": plaintext})
        aes_cipher = call("/keys/aes//encrypt", {"alg": "A256GCM", "value": plaintext})
        rsa_wrapped = call("/keys/rsa//wrapkey", {"alg": "RSA-OAEP-256", "value": data_key})
        aes_wrapped = call("/keys/aes//wrapkey", {"alg": "A256KW", "value": data_key})
        add("GET", "/keys/rsa")
        add("GET", "/keys")
        add("POST", "/keys/rsa//sign", {"alg": "RS256", "value": digest})
        add("POST", "/keys/rsa//verify", {"alg": "RS256", "digest": digest, "value": rsa_signature})
        add("POST", "/keys/ec//sign", {"alg": "ES256", "value": digest})
        add("POST", "/keys/ec//verify", {"alg": "ES256", "digest": digest, "value": ec_signature})
        add("POST", "/keys/rsa//encrypt", {"alg": "RSA-OAEP-256", "value": plaintext})
        add("POST", "/keys/rsa//decrypt", {"alg": "RSA-OAEP-256", "value": rsa_cipher["value"]})
        add("POST", "/keys/aes//encrypt", {"alg": "A256GCM", "value": plaintext})
        add(
            "POST",
            "/keys/aes//decrypt",
            {
                "alg": "A256GCM",
                "value": aes_cipher["value"],
                "iv": aes_cipher["iv"],
                "tag": aes_cipher["tag"],
            },
        )
        add("POST", "/keys/rsa//wrapkey", {"alg": "RSA-OAEP-256", "value": data_key})
        add("POST", "/keys/rsa//unwrapkey", {"alg": "RSA-OAEP-256", "value": rsa_wrapped["value"]})
        add("POST", "/keys/aes//wrapkey", {"alg": "A256KW", "value": data_key})
        add("POST", "/keys/aes//unwrapkey", {"alg": "A256KW", "value": aes_wrapped["value"]})
        add("GET", "/keys/ec")
        add("GET", "/keys/aes")
    (made.directory / "requests.lua").write_text(mix.lua())
    return mix


@dataclass
class Phase:
    name: str
    summary: dict[str, Any]
    answered: dict[str, int]
    entries: dict[str, int]

    @property
    def statuses(self) -> dict[int, int]:
        return {int(status): count for status, count in self.summary["statuses"].items()}

    def count(self, low: int, high: int) -> int:
        return sum(count for status, count in self.statuses.items() if low <= status < high)

    @property
    def lost(self) -> int:
        """Answers whose request has no activity entry."""
        return sum(1 for request_id in self.answered if request_id not in self.entries)

    @property
    def lost_successes(self) -> int:
        """2xx answers whose request has no activity entry."""
        return sum(
            1
            for request_id, status in self.answered.items()
            if 200 <= status < 300 and request_id not in self.entries
        )

    @property
    def repeated(self) -> int:
        return sum(1 for count in self.entries.values() if count > 1)

    @property
    def unanswered_entries(self) -> int:
        """Entries of requests the client never saw answered (cut off at the end, or
        answered by a worker killed before it could send the answer)."""
        return sum(1 for request_id in self.entries if request_id not in self.answered)

    def line(self) -> str:
        summary = self.summary
        rate = summary["requests"] / summary["seconds"]
        statuses = ", ".join(f"{s}: {n:,}" for s, n in sorted(self.statuses.items()))
        errors = {kind: n for kind, n in summary["errors"].items() if n}
        return (
            f"{self.name:18} {summary['requests']:>8,} answers  {rate:7.0f} req/s  "
            f"p50 {summary['p50_ms']:6.1f}  p95 {summary['p95_ms']:6.1f}  "
            f"p99 {summary['p99_ms']:6.1f} ms  [{statuses}]"
            + (f"  socket errors {errors}" if errors else "")
            + f"\n{'':18} entries: {len(self.entries):,}, answered without an entry: "
            f"{self.lost} (2xx: {self.lost_successes}), repeated: {self.repeated}, "
            f"entries never answered: {self.unanswered_entries}"
        )


def drive(made: Deployment, name: str, seconds: int, connections: int, during: Any = None) -> Phase:
    """wrk for `seconds`; `during`, if given, runs meanwhile (told when wrk started)."""
    command = [
        "wrk",
        "-t2",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(MIX_SCRIPT),
        f"https://127.0.0.1:{made.port}",
        "--",
        str(made.directory),
        name,
    ]
    wrk = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if during:
        # In this thread: a database server started here dies with the thread that started
        # it (tests/postgres.py ties it to its parent). wrk's output waits in its pipe.
        during(time.monotonic())
    output, errors = wrk.communicate(timeout=seconds + 120)
    found = re.search(r"^LOAD-SUMMARY (.*)$", output, re.MULTILINE)
    if wrk.returncode != 0 or found is None:
        raise RuntimeError(f"wrk failed:\n{output}\n{errors}")
    answered: dict[str, int] = {}
    for path in made.directory.glob(f"answers-{name}-*.txt"):
        for line in path.read_text().splitlines():
            request_id, status = line.split(" ")
            answered[request_id] = int(status)
    with psycopg.connect(made.database_url) as connection:
        rows = connection.execute(
            "SELECT correlation_id, COUNT(*) FROM vaults_activityentry "
            "WHERE correlation_id LIKE %s GROUP BY correlation_id",
            (f"load-{name}-%",),
        ).fetchall()
    return Phase(name, json.loads(found[1]), answered, dict(rows))


def chain_verifies(made: Deployment) -> bool:
    done = subprocess.run(
        manage_py("kv", "activity", "verify"),
        cwd=ROOT,
        env=made.environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return done.returncode == 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=4)
    options = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("make load needs wrk (Debian: apt-get install wrk).", file=sys.stderr)
        return 2
    failures: list[str] = []
    directory = Path(tempfile.mkdtemp(prefix="kvconsole-load-"))
    try:
        with deployment(directory, options.workers) as (made, cluster):
            provision(made)
            connections = options.connections
            print(
                f"{options.workers} workers, {connections} connections, "
                f"{len(VAULTS)} vaults, RSA-2048, EC P-256 and AES-256 keys\n"
            )
            drive(made, "warm-up", 5, connections)

            steady = drive(made, "steady", options.seconds, connections)
            print(steady.line())
            if steady.count(500, 600):
                failures.append(f"steady: {steady.count(500, 600)} answers were 5xx")
            if steady.count(200, 300) != steady.summary["requests"]:
                failures.append("steady: not every answer was 2xx")
            if steady.lost or steady.repeated:
                failures.append("steady: answers without their one activity entry")
            if steady.unanswered_entries > connections:
                failures.append("steady: more unanswered entries than connections")

            killed: list[int] = []

            def kill_a_worker(started: float) -> None:
                time.sleep(max(0.0, started + 10 - time.monotonic()))
                victim = made.workers()[0]
                killed.append(victim.pid)
                victim.send_signal(signal.SIGKILL)

            worker = drive(made, "worker-killed", 30, connections, kill_a_worker)
            print(worker.line())
            alive = [process.pid for process in made.workers()]
            print(
                f"{'':18} killed worker {killed[0]}; workers now {len(alive)} "
                f"({'respawned' if killed[0] not in alive else 'still there'})"
            )
            if worker.count(500, 600):
                failures.append(f"worker killed: {worker.count(500, 600)} answers were 5xx")
            if worker.lost or worker.repeated:
                failures.append("worker killed: answers without their one activity entry")
            if len(alive) != options.workers or killed[0] in alive:
                failures.append("worker killed: the dead worker was not replaced")

            def restart_database(started: float) -> None:
                time.sleep(max(0.0, started + 10 - time.monotonic()))
                cluster.stop()
                time.sleep(5)
                cluster.start()

            restarted = drive(made, "db-restarted", 30, connections, restart_database)
            print(restarted.line())
            others = {
                status: count
                for status, count in restarted.statuses.items()
                if not (200 <= status < 300 or status == 503)
            }
            if others:
                failures.append(f"database restarted: answers other than 2xx and 503: {others}")
            if not restarted.count(503, 504):
                failures.append("database restarted: no 503 while it was down")
            # A 503 while the database was down could not be recorded; a success always is.
            if restarted.lost_successes or restarted.repeated:
                failures.append("database restarted: successes without their one entry")

            recovered = drive(made, "recovered", 15, connections)
            print(recovered.line())
            if recovered.count(200, 300) != recovered.summary["requests"] or recovered.lost:
                failures.append("recovered: not every request succeeded with its entry")

            if not chain_verifies(made):
                failures.append("the activity log's hash chain does not verify")
            else:
                print("\nactivity log: the hash chain verifies")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
