"""`kv master-key rotate` killed with SIGKILL half-way, then run again, as real processes."""

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.processes import ROOT, make_deployment, manage_py, query, run_kv

VERSIONS = 1000

SETUP = f"""
from accounts.services import system_principal
from keys import services as keys
from vaults import services as vaults
actor = system_principal(name="system:setup")
vaults.resource_group_create(actor=actor, name="rg", location="westeurope")
vaults.vault_create(actor=actor, name="rotation", resource_group="rg")
keys.key_create(actor=actor, vault_name="rotation", name="k", kty="EC")
for _ in range({VERSIONS} - 1):
    keys.key_rotate(actor=actor, vault_name="rotation", name="k")
"""


def versions_by_master_key(deployment: dict[str, str]) -> dict[str, int]:
    rows = query(
        deployment, "SELECT master_key_id, COUNT(*) FROM keys_keyversion GROUP BY master_key_id"
    )
    return {master_key_id: count for master_key_id, count in rows}


def all_version_ids(deployment: dict[str, str]) -> list[str]:
    return [row[0] for row in query(deployment, "SELECT version FROM keys_keyversion")]


def a_version_under(deployment: dict[str, str], master_key_id: str) -> str:
    [(version,)] = query(
        deployment,
        "SELECT version FROM keys_keyversion WHERE master_key_id = %s LIMIT 1",
        [master_key_id],
    )
    return str(version)


def signs(deployment: dict[str, str], version: str) -> bool:
    result = run_kv(
        deployment,
        "key", "sign", "--vault-name", "rotation", "--name", "k", "--version", version,
        "--algorithm", "ES256", "--digest", "A" * 43 + "=",
    )  # fmt: skip
    return result.returncode == 0


@pytest.mark.slow
@pytest.mark.alone
def test_rotation_killed_midway_keeps_every_key_usable_and_resumes(tmp_path: Path) -> None:
    deployment = make_deployment(tmp_path)
    subprocess.run(
        manage_py("shell", "-c", SETUP), cwd=ROOT, env=deployment, check=True, timeout=300
    )
    keyring_file = tmp_path / "master-keys.json"
    original = json.loads(keyring_file.read_text())["primary"]
    assert versions_by_master_key(deployment) == {original: VERSIONS}

    rotation = subprocess.Popen(
        manage_py("kv", "master-key", "rotate", "--batch-size", "1"),
        cwd=ROOT,
        env=deployment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    new_primary, done = None, 0
    while time.monotonic() < deadline and rotation.poll() is None:
        keyring = json.loads(keyring_file.read_text())
        if keyring["primary"] != original:
            new_primary = keyring["primary"]
            done = versions_by_master_key(deployment).get(new_primary, 0)
            if done >= 20:
                rotation.send_signal(signal.SIGKILL)
                break
        time.sleep(0.005)
    rotation.wait(timeout=30)
    assert rotation.returncode == -signal.SIGKILL, "the rotation finished before it was killed"
    assert new_primary is not None

    # Killed half-way: both master keys are still in the keyring and every version opens.
    keyring = json.loads(keyring_file.read_text())
    assert set(keyring["keys"]) == {original, new_primary}
    split = versions_by_master_key(deployment)
    assert split[original] > 0
    assert split[new_primary] >= done
    assert sum(split.values()) == VERSIONS
    assert signs(deployment, a_version_under(deployment, original))
    assert signs(deployment, a_version_under(deployment, new_primary))

    resumed = run_kv(deployment, "master-key", "rotate", "--batch-size", "50")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary == {
        "primaryKeyId": new_primary,
        "rewrapped": split[original],
        "resumed": True,
    }
    assert json.loads(keyring_file.read_text())["keys"].keys() == {new_primary}
    assert versions_by_master_key(deployment) == {new_primary: VERSIONS}
    assert all(signs(deployment, version) for version in all_version_ids(deployment)[::250])
