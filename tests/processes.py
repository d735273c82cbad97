"""Real kvconsole processes for tests: a deployment on disk and `kv` commands against it."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_deployment(directory: Path) -> dict[str, str]:
    """The environment of a separate development deployment in `directory`, migrated."""
    env = {
        **os.environ,
        "KVCONSOLE_VAR_DIR": str(directory),
        "KVCONSOLE_SQLITE_PATH": str(directory / "db.sqlite3"),
        "DJANGO_SETTINGS_MODULE": "kvconsole.settings",
    }
    env.pop("KVCONSOLE_MASTER_KEY_FILE", None)
    env.pop("KVCONSOLE_BACKUP_KEY_FILE", None)
    subprocess.run(manage_py("migrate", "-v0"), cwd=ROOT, env=env, check=True)
    return env


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
