"""What the real processes of tests/keys/test_concurrency.py do, run in a deployment through
`manage.py shell -c`.

Each process loads Django, says it is ready (a file), waits for the start signal (another
file) so that the processes really overlap, calls the services as the CLI would, and prints
what happened to each call as JSON.
"""

import json
import time
from pathlib import Path

from accounts.services import cli_principal
from keys import services
from kvconsole.errors import Conflict

_START_TIMEOUT = 120


def _ready_set_go(ready: str, go: str) -> None:
    Path(ready).touch()
    deadline = time.monotonic() + _START_TIMEOUT
    while not Path(go).exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the start signal never came")
        time.sleep(0.001)


def create_keys(vault_name: str, names: list[str], ready: str, go: str) -> None:
    """Create an EC key of each name, in order: {name: the new version's id, or the code
    of the conflict that refused it}."""
    actor = cli_principal()
    _ready_set_go(ready, go)
    results: dict[str, str] = {}
    for name in names:
        try:
            version = services.key_create(
                actor=actor, vault_name=vault_name, name=name, kty="EC", curve="P-256"
            )
            results[name] = version.version
        except Conflict as conflict:
            results[name] = f"Conflict/{conflict.inner_code or ''}"
    print(json.dumps(results))


def restore_backups(vault_name: str, backups: list[str], ready: str, go: str) -> None:
    """Restore each backup file into the vault, in order: {file: "restored", or "Conflict"}."""
    actor = cli_principal()
    blobs = [(backup, Path(backup).read_bytes()) for backup in backups]
    _ready_set_go(ready, go)
    results: dict[str, str] = {}
    for backup, blob in blobs:
        try:
            services.key_restore(actor=actor, vault_name=vault_name, blob=blob)
            results[backup] = "restored"
        except Conflict:
            results[backup] = "Conflict"
    print(json.dumps(results))


def rotate_until(vault_name: str, name: str, ready: str, go: str, stop: str) -> None:
    """Rotate the key again and again until the stop file appears: [[version id, the time
    its transaction had committed by], ...]."""
    actor = cli_principal()
    _ready_set_go(ready, go)
    written: list[tuple[str, float]] = []
    while not Path(stop).exists():
        version = services.key_rotate(actor=actor, vault_name=vault_name, name=name)
        written.append((version.version, time.time()))
    print(json.dumps(written))


def back_up_keys(vault_name: str, count: int, versions: int, directory: str) -> None:
    """Make `count` EC keys of `versions` versions each and write a backup file of each:
    prints the files' paths."""
    actor = cli_principal()
    paths = []
    for number in range(count):
        name = f"restored-{number:03d}"
        for _ in range(versions):
            services.key_create(actor=actor, vault_name=vault_name, name=name, kty="EC")
        path = Path(directory) / f"{name}.backup"
        path.write_bytes(services.key_backup(actor=actor, vault_name=vault_name, name=name))
        paths.append(str(path))
    print(json.dumps(paths))
