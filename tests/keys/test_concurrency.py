"""Key operations run at the same moment by real processes, on the suite's database engine
(a SQLite file, or a PostgreSQL database of the deployment's own): creating keys of one
name, restoring one backup twice, and rotating the master key while versions are written.
Every outcome is one the operation promises, and the activity log's chain still verifies.

Also, on PostgreSQL, the lock order that the change counter's commit-time trigger could
deadlock with."""

import json
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, connections, transaction

from keys.models import Key, KeyRotationPolicy
from keys.services._shared import lock_key
from tests.keys.due_keys import deployment_version_report
from tests.processes import ROOT, make_deployment, manage_py, query, run_kv
from vaults.models import Vault

VAULT = "racing"


def racer(deployment: dict[str, str], function: str, *args: Any) -> subprocess.Popen[str]:
    """A process of the deployment running `tests.keys.racers.<function>(*args)`."""
    return subprocess.Popen(
        manage_py(
            "shell", "-v0", "-c", f"from tests.keys import racers; racers.{function}(*{args!r})"
        ),
        cwd=ROOT,
        env=deployment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> Any:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return json.loads(out)


def race(
    deployment: dict[str, str], tmp_path: Path, calls: list[tuple[str, tuple[Any, ...]]]
) -> list[Any]:
    """Run each call of a `racers` function (name, arguments before the ready and start
    files) in a process of its own, started together once every one is loaded; their JSON
    reports."""
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{number}" for number in range(len(calls))]
    processes = [
        racer(deployment, function, *args, str(flag), str(go))
        for (function, args), flag in zip(calls, ready, strict=True)
    ]
    deadline = time.monotonic() + 120
    while not all(flag.exists() for flag in ready):
        assert time.monotonic() < deadline, "the racers never got ready"
        assert all(process.poll() is None for process in processes), "a racer died early"
        time.sleep(0.01)
    go.touch()
    return [finish(process) for process in processes]


def deployment_with_vault(tmp_path: Path) -> dict[str, str]:
    deployment = make_deployment(tmp_path)
    for command in (
        ("group", "create", "-n", "racing-rg", "-l", "westeurope"),
        ("vault", "create", "-n", VAULT, "-g", "racing-rg"),
    ):
        assert run_kv(deployment, *command).returncode == 0
    return deployment


def activity_results(deployment: dict[str, str], operation: str) -> Counter[str]:
    rows = query(
        deployment,
        "SELECT result, COUNT(*) FROM vaults_activityentry WHERE operation = %s GROUP BY result",
        [operation],
    )
    return Counter({result: count for result, count in rows})


def assert_the_chain_verifies(deployment: dict[str, str]) -> None:
    verified = run_kv(deployment, "activity", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["ok"] is True


def versions_per_key(deployment: dict[str, str]) -> dict[str, int]:
    rows = query(
        deployment,
        "SELECT k.name, COUNT(v.id) FROM keys_key k"
        " JOIN vaults_vault vault ON vault.id = k.vault_id"
        " LEFT JOIN keys_keyversion v ON v.key_id = k.id"
        " WHERE vault.name = %s GROUP BY k.name",
        [VAULT],
    )
    return {name: count for name, count in rows}


def version_ids(deployment: dict[str, str], vault_name: str) -> set[str]:
    rows = query(
        deployment,
        "SELECT v.version FROM keys_keyversion v JOIN keys_key k ON k.id = v.key_id"
        " JOIN vaults_vault vault ON vault.id = k.vault_id WHERE vault.name = %s",
        [vault_name],
    )
    return {version for (version,) in rows}


# --- real processes ------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.alone
def test_keys_created_with_one_name_at_once_are_each_one_key(tmp_path: Path) -> None:
    """Two processes create the same 40 names in the same order at the same moment. Each
    call either adds a version (the first makes the key) or, when the other process is
    making that key in the same instant, is refused as ObjectIsBeingCreated: never two keys
    of one name, never a version lost or an unexplained failure."""
    deployment = deployment_with_vault(tmp_path)
    names = [f"same-{number:02d}" for number in range(40)]
    reports = race(deployment, tmp_path, [("create_keys", (VAULT, names))] * 2)

    outcomes = [report[name] for report in reports for name in names]
    refused = [outcome for outcome in outcomes if outcome.startswith("Conflict")]
    assert set(refused) <= {"Conflict/ObjectIsBeingCreated"}
    made = [outcome for outcome in outcomes if not outcome.startswith("Conflict")]
    assert len(set(made)) == len(made)
    # Every name became one key; it holds exactly the versions its callers were told of.
    assert versions_per_key(deployment) == {
        name: sum(not report[name].startswith("Conflict") for report in reports) for name in names
    }
    assert all(any(not report[name].startswith("Conflict") for report in reports) for name in names)
    assert activity_results(deployment, "KeyCreate") == Counter(
        {"Success": len(made), **({"Conflict": len(refused)} if refused else {})}
    )
    assert deployment_version_report(deployment, VAULT)["problems"] == []
    assert_the_chain_verifies(deployment)


@pytest.mark.slow
@pytest.mark.alone
def test_one_backup_restored_twice_at_once_is_restored_once(tmp_path: Path) -> None:
    """Two processes restore the same 15 backups into one vault in the same order at the
    same moment: each key is restored by exactly one of them, whole, and refused to the
    other as a conflict."""
    deployment = deployment_with_vault(tmp_path)
    assert run_kv(deployment, "vault", "create", "-n", "source", "-g", "racing-rg").returncode == 0
    backups = finish(racer(deployment, "back_up_keys", "source", 15, 2, str(tmp_path)))
    reports = race(deployment, tmp_path, [("restore_backups", (VAULT, backups))] * 2)

    for backup in backups:
        assert sorted(report[backup] for report in reports) == ["Conflict", "restored"]
    assert versions_per_key(deployment) == {Path(backup).stem: 2 for backup in backups}
    # The restored versions are the backed-up ones, with their ids.
    assert version_ids(deployment, VAULT) == version_ids(deployment, "source")
    assert deployment_version_report(deployment, VAULT)["problems"] == []
    assert activity_results(deployment, "KeyRestore") == Counter({"Success": 15, "Conflict": 15})
    assert_the_chain_verifies(deployment)


@pytest.mark.slow
@pytest.mark.alone
def test_master_key_rotation_while_versions_are_written_leaves_none_behind(
    tmp_path: Path,
) -> None:
    """`kv master-key rotate` re-wraps every version while another process keeps adding
    versions: the rotation finishes with every version, including those written during it,
    under the new master key, the old one retired, and each version opening."""
    deployment = deployment_with_vault(tmp_path)
    setup = (
        "from accounts.services import cli_principal\n"
        "from keys import services\n"
        "actor = cli_principal()\n"
        f"services.key_create(actor=actor, vault_name={VAULT!r}, name='busy', kty='EC')\n"
        "for _ in range(150):\n"
        f"    services.key_rotate(actor=actor, vault_name={VAULT!r}, name='busy')\n"
    )
    subprocess.run(manage_py("shell", "-c", setup), cwd=ROOT, env=deployment, check=True)
    keyring_file = tmp_path / "master-keys.json"
    original = json.loads(keyring_file.read_text())["primary"]

    go, ready, stop = tmp_path / "go", tmp_path / "ready", tmp_path / "stop"
    writer = racer(deployment, "rotate_until", VAULT, "busy", str(ready), str(go), str(stop))
    deadline = time.monotonic() + 120
    while not ready.exists():
        assert time.monotonic() < deadline and writer.poll() is None, "the writer never started"
        time.sleep(0.01)
    go.touch()
    started = time.time()
    rotated = run_kv(deployment, "master-key", "rotate", "--batch-size", "2")
    ended = time.time()
    stop.touch()
    written = finish(writer)

    assert rotated.returncode == 0, rotated.stderr
    primary = json.loads(rotated.stdout)["primaryKeyId"]
    assert primary != original
    assert json.loads(keyring_file.read_text())["keys"].keys() == {primary}
    during = [version for version, at in written if started < at < ended]
    assert during, "no version was written while the rotation ran"
    assert query(
        deployment, "SELECT master_key_id, COUNT(*) FROM keys_keyversion GROUP BY master_key_id"
    ) == [(primary, 151 + len(written))]
    report = deployment_version_report(deployment, VAULT)
    assert report == {"versions": {"busy": 151 + len(written)}, "problems": []}
    assert_the_chain_verifies(deployment)


# --- the lock order on PostgreSQL ------------------------------------------------------------


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="SQLite runs one writer at a time, so no two transactions can hold locks at once",
)
def test_a_locked_key_does_not_deadlock_with_a_commit_that_checks_a_reference_to_it(
    transactional_db: None, make_key: Any, vault: Vault
) -> None:
    """A service holding a key's lock, which moves the change counter when it commits,
    beside a transaction that moved the counter first and then, at its commit, checks a new
    row's reference to that key. The lock must not block the reference check (FOR NO KEY
    UPDATE, not FOR UPDATE), or each waits for the other and PostgreSQL fails one."""
    key = make_key("locked", kty="EC").key
    locked, committing = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def in_thread(work: Any) -> threading.Thread:
        def run() -> None:
            try:
                work()
            except BaseException as error:
                errors.append(error)
                locked.set()
                committing.set()
            finally:
                connections.close_all()

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    def holder() -> None:
        with transaction.atomic():
            held = lock_key(key)
            held.save(update_fields=["updated_at"])
            locked.set()
            assert committing.wait(10)
            # The other transaction is committing now: its reference check runs meanwhile.
            time.sleep(0.5)

    def referrer() -> None:
        assert locked.wait(10)
        with transaction.atomic():
            Vault.objects.filter(pk=vault.pk).update(tags={"touched": "yes"})
            KeyRotationPolicy.objects.create(
                key_id=key.pk, created_at=key.created_at, updated_at=key.created_at
            )
            committing.set()

    threads = [in_thread(holder), in_thread(referrer)]
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    assert KeyRotationPolicy.objects.filter(key_id=key.pk).exists()
    assert Key.objects.get(pk=key.pk).updated_at >= key.updated_at
