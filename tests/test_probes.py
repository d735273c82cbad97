"""`/healthz` and `/readyz` (kvconsole/health.py): on any host, with no sign-in, no token, no
activity entry and no log line."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import DEFAULT_DB_ALIAS, connections
from django.test import Client

from keys.protection import master_keyring
from vaults.models import ActivityEntry, Vault

pytestmark = pytest.mark.django_db

HOSTS = ["testserver", "vault-1.vault.localhost:8443", "10.1.2.3:8000", "not-allowed.example"]


@pytest.mark.parametrize("host", HOSTS)
def test_healthz_answers_on_any_host_without_touching_the_database(
    client: Client, vault: Vault, host: str, django_assert_num_queries: Any
) -> None:
    with django_assert_num_queries(0):
        response = client.get("/healthz", headers={"host": host})
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"


@pytest.mark.parametrize("host", HOSTS)
def test_readyz_answers_on_any_host_with_nobody_signed_in(
    client: Client, vault: Vault, host: str
) -> None:
    before = ActivityEntry.objects.count()
    response = client.get("/readyz", headers={"host": host})
    assert response.status_code == 200 and response.json() == {"status": "ready"}
    assert ActivityEntry.objects.count() == before


def test_probes_answer_get_only(client: Client) -> None:
    response = client.post("/healthz")
    assert response.status_code == 405 and response.json()["error"]["code"] == "MethodNotAllowed"


@pytest.fixture
def keyring_file(settings: Any, tmp_path: Path) -> Iterator[Path]:
    """A master keyring of this test's own, forgotten again afterwards."""
    settings.KVCONSOLE_MASTER_KEY_FILE = tmp_path / "master-keys.json"
    yield settings.KVCONSOLE_MASTER_KEY_FILE
    master_keyring._loaded = None


def test_readyz_fails_when_the_master_key_file_is_missing(
    client: Client, settings: Any, keyring_file: Path
) -> None:
    settings.KVCONSOLE_GENERATE_KEY_FILES = False
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "reasons": ["The master key is not loaded."],
    }
    # Nothing about where the file should be reaches an unauthenticated caller.
    assert str(keyring_file) not in response.text


def test_readyz_fails_when_stored_keys_lost_their_master_key(
    client: Client, make_key: Any, keyring_file: Path
) -> None:
    make_key("sealed", kty="EC")
    assert client.get("/readyz").status_code == 200
    keyring_file.unlink()
    assert client.get("/readyz").status_code == 503
    assert not keyring_file.exists()


def test_readyz_fails_while_the_database_is_unreachable(client: Client, tmp_path: Path) -> None:
    # This thread's connection swapped for one to a database that is not there (the
    # suite's own stays open: an in-memory database would not survive being closed).
    serving = connections[DEFAULT_DB_ALIAS]
    missing = (
        "kvconsole_no_such_database"
        if serving.vendor == "postgresql"
        else str(tmp_path / "no-such-directory" / "kvconsole.sqlite3")
    )
    unreachable = type(serving)({**serving.settings_dict, "NAME": missing}, DEFAULT_DB_ALIAS)
    connections[DEFAULT_DB_ALIAS] = unreachable
    try:
        response = client.get("/readyz")
        assert client.get("/healthz").status_code == 200
    finally:
        unreachable.close()
        connections[DEFAULT_DB_ALIAS] = serving
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "reasons": ["The database does not answer."],
    }
    assert client.get("/readyz").status_code == 200
