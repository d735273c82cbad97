"""A production deployment on disk for tests: its environment, key files and a person."""

import json
import os
import secrets
import subprocess
import uuid
from pathlib import Path

import requests

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


def application_with_role(
    env: dict[str, str], display_name: str, role: str, scope: str
) -> tuple[str, str]:
    """A new application holding `role` at `scope`: its client id and client secret."""
    created = manage(env, "kv", "ad", "app", "create", "--display-name", display_name)
    assert created.returncode == 0, created.stderr
    client_id = str(json.loads(created.stdout)["appId"])
    reset = manage(env, "kv", "ad", "app", "credential", "reset", "--id", client_id)
    assert reset.returncode == 0, reset.stderr
    assigned = manage(
        env,
        *("kv", "role", "assignment", "create", "--assignee", client_id),
        *("--role", role, "--scope", scope),
    )
    assert assigned.returncode == 0, assigned.stderr
    return client_id, str(json.loads(reset.stdout)["password"])


def access_token(env: dict[str, str], port: int, client_id: str, secret: str, ca_file: Path) -> str:
    """A vault access token from the deployment's token service on localhost:`port`."""
    answer = requests.post(
        f"https://localhost:{port}/{env['KVCONSOLE_TENANT_ID']}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
            "scope": f"https://{env['KVCONSOLE_VAULT_HOST_SUFFIX']}:{port}/.default",
        },
        # Per request: requests prefers REQUESTS_CA_BUNDLE to a session's own.
        verify=str(ca_file),
        timeout=30,
    )
    answer.raise_for_status()
    return str(answer.json()["access_token"])
