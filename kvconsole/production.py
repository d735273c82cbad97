"""Production mode (`KVCONSOLE_ENV=production`): the settings refuse to load while any
development default is still in force.

A development deployment makes up what it lacks: a secret key, a tenant id and key files
generated into var/, an SQLite database beside them, debug pages, cookies and hosts fit for
localhost. Each of those is wrong for a team's deployment, and some are dangerous (a key
file silently generated anew orphans every key sealed under the old one). So production
mode changes no default behind the operator's back: it names every variable still to set,
all at once, and does not start.

Pure functions over the environment and the settings' values, called at the end of
settings.py, so that every entry point (the server's workers, manage.py, the `kv` CLI)
refuses alike.
"""

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

ENVIRONMENTS = ("development", "production")

# Django's own rule for a secret key that is not obviously weak (security.W009).
SECRET_KEY_MIN_LENGTH = 50
SECRET_KEY_MIN_UNIQUE_CHARACTERS = 5

# Variables a production deployment must name itself: their development defaults point at
# localhost or at files under var/.
REQUIRED = {
    "KVCONSOLE_SECRET_KEY": "Django's secret key (at least 50 random characters)",
    "KVCONSOLE_TENANT_ID": "the directory tenant's id (a UUID), which clients name",
    "KVCONSOLE_ALLOWED_HOSTS": "the console's host names, comma-separated",
    "KVCONSOLE_CONSOLE_HOST": "the console's host[:port], which is also the token authority",
    "KVCONSOLE_VAULT_HOST_SUFFIX": "the DNS suffix under which every vault has its host",
}

# Checked when the server starts (kvconsole/serve.py), not here: `kv key-files create`, which
# makes them, runs under these same settings.
KEY_FILES = {
    "KVCONSOLE_MASTER_KEY_FILE": "the master keyring",
    "KVCONSOLE_BACKUP_KEY_FILE": "the backup key",
    "KVCONSOLE_TOKEN_KEY_FILE": "the token-signing keyring",
    "KVCONSOLE_WEBHOOK_KEY_FILE": "the webhook key",
}


def environment(environ: Mapping[str, str]) -> str:
    """`KVCONSOLE_ENV`, checked: a misspelt "prod" must not quietly mean development."""
    name = environ.get("KVCONSOLE_ENV", "development")
    if name not in ENVIRONMENTS:
        raise ImproperlyConfigured(
            f"KVCONSOLE_ENV is {name!r}; set it to one of {', '.join(ENVIRONMENTS)}."
        )
    return name


def development_defaults(environ: Mapping[str, str], values: Mapping[str, Any]) -> list[str]:
    """What a production deployment still takes from development: one line per problem,
    each naming the variable that fixes it. `values` are the settings as loaded."""
    problems = [
        f"{name} is not set: set it to {meaning}."
        for name, meaning in REQUIRED.items()
        if not environ.get(name, "").strip()
    ]
    secret_key = environ.get("KVCONSOLE_SECRET_KEY", "")
    if secret_key and (
        len(secret_key) < SECRET_KEY_MIN_LENGTH
        or len(set(secret_key)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS
    ):
        problems.append(
            f"KVCONSOLE_SECRET_KEY is weak: use at least {SECRET_KEY_MIN_LENGTH} random "
            "characters (python -c 'import secrets; print(secrets.token_urlsafe(50))')."
        )
    if values["DEBUG"]:
        problems.append(
            "KVCONSOLE_DEBUG is on: unset it (debug pages show a request's local variables)."
        )
    hosts = [host.strip() for host in values["ALLOWED_HOSTS"]]
    if environ.get("KVCONSOLE_ALLOWED_HOSTS", "").strip() and (
        not all(hosts) or any(host in ("*", ".") for host in hosts)
    ):
        problems.append(
            "KVCONSOLE_ALLOWED_HOSTS holds a wildcard or an empty name: list the console's "
            "host names."
        )
    if values["KVCONSOLE_GENERATE_KEY_FILES"]:
        problems.append(
            "KVCONSOLE_GENERATE_KEY_FILES is on: unset it and provide the key files "
            "(a key file generated anew orphans every key sealed under the one it replaces)."
        )
    database = values["DATABASES"]["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3" and not environ.get(
        "KVCONSOLE_SQLITE_PATH"
    ):
        problems.append(
            "The database is the development SQLite file under var/: set DATABASE_URL "
            "(PostgreSQL), or KVCONSOLE_SQLITE_PATH to choose an SQLite file deliberately."
        )
    if not (values["SESSION_COOKIE_SECURE"] and values["CSRF_COOKIE_SECURE"]):
        problems.append(
            "KVCONSOLE_SECURE_COOKIES is off: unset it (behind a proxy that terminates TLS, "
            "set KVCONSOLE_TRUSTED_PROXIES so that requests are known to be HTTPS)."
        )
    if values["SECURE_HSTS_SECONDS"] <= 0:
        problems.append("KVCONSOLE_HSTS_SECONDS is 0: unset it, or give a number of seconds.")
    if values["KVCONSOLE_CLOCK_OFFSET"]:
        problems.append(
            "KVCONSOLE_CLOCK_OFFSET is set: unset it (it moves key dates and schedules)."
        )
    return problems


def missing_key_files(values: Mapping[str, Any]) -> list[str]:
    """The key files the server cannot read, each with the variable that names it."""
    return [
        f"{name}: {meaning} {values[name]} is missing or unreadable; create the missing key "
        "files once with `manage.py kv key-files create`, or point it at yours."
        for name, meaning in KEY_FILES.items()
        if not os.access(Path(values[name]), os.R_OK)
    ]


def refuse_development_defaults(environ: Mapping[str, str], values: Mapping[str, Any]) -> None:
    problems = development_defaults(environ, values)
    if problems:
        raise ImproperlyConfigured(
            "KVCONSOLE_ENV is production, but development defaults are in force:\n"
            + "\n".join(f"  - {problem}" for problem in problems)
        )
