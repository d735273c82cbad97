"""Production mode: what it refuses, `check --deploy` on its settings, and `kv key-files
create`, each in a process of its own with a production environment."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kvconsole import production
from kvconsole.serve import granian_command
from tests.processes import ROOT
from tests.production import manage, prepare, production_environment

pytestmark = pytest.mark.slow


def loaded(env: dict[str, str]) -> dict[str, Any]:
    """The settings' values as production mode checks them, for `env`."""
    values: dict[str, Any] = {
        "DEBUG": env.get("KVCONSOLE_DEBUG") == "1",
        "ALLOWED_HOSTS": env.get("KVCONSOLE_ALLOWED_HOSTS", "").split(","),
        "KVCONSOLE_GENERATE_KEY_FILES": env.get("KVCONSOLE_GENERATE_KEY_FILES") == "1",
        "DATABASES": {"default": {"ENGINE": "django.db.backends.sqlite3"}},
        "SESSION_COOKIE_SECURE": env.get("KVCONSOLE_SECURE_COOKIES", "1") == "1",
        "CSRF_COOKIE_SECURE": env.get("KVCONSOLE_SECURE_COOKIES", "1") == "1",
        "SECURE_HSTS_SECONDS": int(env.get("KVCONSOLE_HSTS_SECONDS", "31536000")),
        "KVCONSOLE_CLOCK_OFFSET": env.get("KVCONSOLE_CLOCK_OFFSET", ""),
    }
    return values


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return production_environment(tmp_path)


def test_a_complete_production_environment_has_no_development_default(
    env: dict[str, str],
) -> None:
    assert production.development_defaults(env, loaded(env)) == []


@pytest.mark.parametrize(
    ("change", "variable"),
    [
        ({"KVCONSOLE_DEBUG": "1"}, "KVCONSOLE_DEBUG"),
        ({"KVCONSOLE_SECRET_KEY": ""}, "KVCONSOLE_SECRET_KEY is not set"),
        ({"KVCONSOLE_SECRET_KEY": "short-and-guessable"}, "KVCONSOLE_SECRET_KEY is weak"),
        ({"KVCONSOLE_SECRET_KEY": "ab" * 40}, "KVCONSOLE_SECRET_KEY is weak"),
        ({"KVCONSOLE_TENANT_ID": ""}, "KVCONSOLE_TENANT_ID"),
        ({"KVCONSOLE_GENERATE_KEY_FILES": "1"}, "KVCONSOLE_GENERATE_KEY_FILES"),
        ({"KVCONSOLE_SQLITE_PATH": ""}, "DATABASE_URL"),
        ({"KVCONSOLE_ALLOWED_HOSTS": ""}, "KVCONSOLE_ALLOWED_HOSTS is not set"),
        ({"KVCONSOLE_ALLOWED_HOSTS": "*"}, "KVCONSOLE_ALLOWED_HOSTS holds a wildcard"),
        ({"KVCONSOLE_ALLOWED_HOSTS": "kv.example.com,"}, "KVCONSOLE_ALLOWED_HOSTS holds"),
        ({"KVCONSOLE_CONSOLE_HOST": ""}, "KVCONSOLE_CONSOLE_HOST"),
        ({"KVCONSOLE_VAULT_HOST_SUFFIX": ""}, "KVCONSOLE_VAULT_HOST_SUFFIX"),
        ({"KVCONSOLE_SECURE_COOKIES": "0"}, "KVCONSOLE_SECURE_COOKIES"),
        ({"KVCONSOLE_HSTS_SECONDS": "0"}, "KVCONSOLE_HSTS_SECONDS"),
        ({"KVCONSOLE_CLOCK_OFFSET": "P40D"}, "KVCONSOLE_CLOCK_OFFSET"),
    ],
)
def test_each_development_default_is_refused_by_name(
    env: dict[str, str], change: dict[str, str], variable: str
) -> None:
    env = {**env, **change}
    env = {name: value for name, value in env.items() if value or name not in change}
    [problem] = production.development_defaults(env, loaded(env))
    assert variable in problem


def test_production_settings_refuse_to_load_naming_every_variable(tmp_path: Path) -> None:
    bare = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("KVCONSOLE_") and key != "DATABASE_URL"
    }
    env = {**bare, "KVCONSOLE_ENV": "production", "KVCONSOLE_VAR_DIR": str(tmp_path)}

    refused = manage(env, "check")

    assert refused.returncode != 0
    for variable in [*production.REQUIRED, "DATABASE_URL"]:
        assert variable in refused.stderr
    # Nothing was generated on the way: no secret key, tenant id or key file.
    assert [path for path in tmp_path.rglob("*") if path.is_file()] == []


def test_a_misspelt_environment_is_refused(env: dict[str, str]) -> None:
    refused = manage({**env, "KVCONSOLE_ENV": "prod"}, "check")
    assert refused.returncode != 0
    assert "KVCONSOLE_ENV is 'prod'" in refused.stderr


def test_check_deploy_passes_with_production_settings(env: dict[str, str]) -> None:
    checked = manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "System check identified no issues" in checked.stdout


def test_check_deploy_fails_on_development_settings(tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("KVCONSOLE_") and key != "DATABASE_URL"
    }
    env["KVCONSOLE_VAR_DIR"] = str(tmp_path)
    checked = manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert checked.returncode != 0
    assert "security.W004" in checked.stderr  # no HSTS


def test_key_files_are_created_once_and_never_replaced(env: dict[str, str]) -> None:
    created = prepare(env)
    assert set(created) == set(production.KEY_FILES)
    assert all(entry["created"] for entry in created.values())  # type: ignore[index]
    contents = {}
    for name in production.KEY_FILES:
        path = Path(env[name])
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        contents[name] = path.read_bytes()

    again = manage(env, "kv", "key-files", "create")

    assert again.returncode == 0, again.stderr
    assert '"created": false' in again.stdout and '"created": true' not in again.stdout
    assert {name: Path(env[name]).read_bytes() for name in production.KEY_FILES} == contents
    listed = manage(env, "kv", "activity", "list", "--output", "json")
    assert listed.stdout.count('"KeyFilesCreate"') == 2


def test_key_files_are_not_generated_on_first_use_in_production(env: dict[str, str]) -> None:
    assert manage(env, "migrate", "-v0").returncode == 0
    refused = manage(env, "kv", "key", "list", "--vault-name", "nowhere")
    assert not Path(env["KVCONSOLE_MASTER_KEY_FILE"]).exists()
    assert refused.returncode != 0


def test_the_server_is_not_started_without_its_key_files(env: dict[str, str]) -> None:
    assert manage(env, "migrate", "-v0").returncode == 0
    env = {**env, "KVCONSOLE_TLS_CERT": "cert.pem", "KVCONSOLE_TLS_KEY": "key.pem"}
    refused = subprocess.run(
        [sys.executable, "-m", "kvconsole.serve"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode != 0
    for name in production.KEY_FILES:
        assert name in refused.stderr
    assert "kv key-files create" in refused.stderr


@pytest.mark.parametrize(
    ("environ", "refusal"),
    [
        ({}, "KVCONSOLE_TRUSTED_PROXIES"),
        ({"KVCONSOLE_TLS_CERT": "server.pem"}, "KVCONSOLE_TLS_KEY"),
        ({"KVCONSOLE_TLS_KEY": "server-key.pem"}, "KVCONSOLE_TLS_CERT"),
        ({"KVCONSOLE_TRUSTED_PROXIES": "10.0.0.1", "KVCONSOLE_WORKERS": "many"}, "WORKERS"),
    ],
)
def test_serving_needs_a_certificate_or_a_proxy(environ: dict[str, str], refusal: str) -> None:
    with pytest.raises(Exception, match=refusal):
        granian_command(environ)


def test_the_server_command_has_workers_and_tls() -> None:
    command = granian_command(
        {
            "KVCONSOLE_TLS_CERT": "server.pem",
            "KVCONSOLE_TLS_KEY": "server-key.pem",
            "KVCONSOLE_WORKERS": "4",
            "KVCONSOLE_PORT": "9443",
        }
    )
    text = " ".join(command)
    assert "--workers 4" in text and "--port 9443" in text
    assert "--ssl-certificate server.pem --ssl-keyfile server-key.pem" in text
    assert "--respawn-failed-workers" in text
    plain = " ".join(granian_command({"KVCONSOLE_TRUSTED_PROXIES": "10.0.0.0/8"}))
    assert "--ssl-certificate" not in plain
    assert f"--workers {os.cpu_count()}" in plain


def test_postgresql_binds_on_the_server_and_prepares_what_repeats(env: dict[str, str]) -> None:
    """Server-side binding and psycopg's prepare threshold, with the options of the URL's
    own query kept beside them, and winning."""
    url = "postgres://kv@%2Fvar%2Frun%2Fpostgresql/kv?sslmode=require&prepare_threshold=2"
    shown = manage(
        {**env, "DATABASE_URL": url},
        "shell",
        "-v0",
        "-c",
        "import json; from django.conf import settings; "
        "print(json.dumps(settings.DATABASES['default']['OPTIONS']))",
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == {
        "server_side_binding": True,
        "prepare_threshold": 2,
        "sslmode": "require",
    }
