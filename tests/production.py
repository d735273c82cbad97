"""A production deployment on disk for tests: its environment, key files and a person."""

import json
import os
import secrets
import subprocess
import uuid
from pathlib import Path

from tests.processes import ROOT, manage_py

# Development settings that a production environment must not inherit from the test run.
DEVELOPMENT_ONLY = (
    "KVCONSOLE_DEBUG",
    "KVCONSOLE_SECURE_COOKIES",
    "KVCONSOLE_CLOCK_OFFSET",
    "KVCONSOLE_GENERATE_KEY_FILES",
    "KVCONSOLE_TRUSTED_PROXIES",
    "DATABASE_URL",
)


def production_environment(directory: Path, *, port: int = 8443) -> dict[str, str]:
    """Everything production mode asks for, set: SQLite chosen explicitly, key files in
    `directory` (not yet created)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in DEVELOPMENT_ONLY and not key.startswith("KVCONSOLE_RATE_LIMIT")
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "kvconsole.settings",
            "KVCONSOLE_ENV": "production",
            "KVCONSOLE_VAR_DIR": str(directory),
            "KVCONSOLE_SECRET_KEY": secrets.token_urlsafe(50),
            "KVCONSOLE_TENANT_ID": str(uuid.uuid4()),
            "KVCONSOLE_ALLOWED_HOSTS": "localhost,127.0.0.1",
            "KVCONSOLE_CONSOLE_HOST": f"localhost:{port}",
            "KVCONSOLE_VAULT_HOST_SUFFIX": "vault.localhost",
            "KVCONSOLE_VAULT_PORT": str(port),
            "KVCONSOLE_PORT": str(port),
            "KVCONSOLE_SQLITE_PATH": str(directory / "kvconsole.sqlite3"),
            "KVCONSOLE_MASTER_KEY_FILE": str(directory / "keys" / "master-keys.json"),
            "KVCONSOLE_BACKUP_KEY_FILE": str(directory / "keys" / "backup-key.json"),
            "KVCONSOLE_TOKEN_KEY_FILE": str(directory / "keys" / "token-signing-keys.json"),
            "KVCONSOLE_WEBHOOK_KEY_FILE": str(directory / "keys" / "webhook-key.json"),
        }
    )
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        manage_py(*args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def prepare(env: dict[str, str]) -> dict[str, object]:
    """Migrate and create the key files, as an operator does before the first start; what
    `kv key-files create` printed."""
    migrated = manage(env, "migrate", "-v0")
    assert migrated.returncode == 0, migrated.stderr
    created = manage(env, "kv", "key-files", "create")
    assert created.returncode == 0, created.stderr
    return dict(json.loads(created.stdout))


def add_person(env: dict[str, str], username: str, password: str) -> None:
    made = manage(
        env,
        "shell",
        "-c",
        "from accounts.models import User; "
        f"User.objects.create_user({username!r}, password={password!r})",
    )
    assert made.returncode == 0, made.stderr
