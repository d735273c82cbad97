"""The vault endpoint's rate limits: 429 with Retry-After and Azure's throttling body, per
vault and per principal, windows that end, and one budget shared by processes."""

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from django.test import Client

from accounts import tokens
from accounts.models import Application, User
from keys.api import ratelimit
from keys.models import Key
from tests.factories import VaultFactory
from tests.processes import ROOT
from vaults import services as vault_services
from vaults.models import ActivityEntry, Face, Operation, Result, Vault

pytestmark = pytest.mark.django_db

THROTTLED = "Request was not processed because too many requests were received. Reason: "


@pytest.fixture
def limits(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    settings.KVCONSOLE_RATE_LIMIT_VAULT = 3
    settings.KVCONSOLE_RATE_LIMIT_VAULT_CREATE = 1
    settings.KVCONSOLE_RATE_LIMIT_PRINCIPAL = 1000
    # The middle of a window, held there: on a slow machine a test's requests could
    # otherwise straddle the end of a window and find their budget back.
    middle = 1_000_000_000 + settings.KVCONSOLE_RATE_LIMIT_WINDOW_SECONDS / 2
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(time=lambda: middle))
    return settings


def officer(system: User, vault: Vault) -> str:
    """A bearer token of a new application that is Crypto Officer on `vault`."""
    application: Application = vault_services.application_create(
        actor=system, display_name="throttled"
    )
    vault_services.role_assignment_create(
        actor=system,
        assignee=str(application.client_id),
        role="Key Vault Crypto Officer",
        scope=f"/resourceGroups/{vault.resource_group.name}/providers/Microsoft.KeyVault/vaults/{vault.name}",
    )
    return tokens.issue_access_token(application, audience=tokens.vault_resource()).access_token


def call(
    vault: Vault, token: str, method: str = "GET", path: str = "/keys", body: Any = None
) -> Any:
    return Client().generic(
        method,
        f"{path}?api-version=7.5",
        data=json.dumps(body) if body is not None else b"",
        content_type="application/json",
        headers={"host": f"{vault.name}.vault.localhost:8443", "authorization": f"Bearer {token}"},
    )


def test_a_vault_over_its_limit_answers_429_with_retry_after(
    limits: Any, system: User, vault: Vault
) -> None:
    token = officer(system, vault)
    assert [call(vault, token).status_code for _ in range(3)] == [200, 200, 200]

    response = call(vault, token)

    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= limits.KVCONSOLE_RATE_LIMIT_WINDOW_SECONDS
    assert response.json() == {
        "error": {"code": "Throttled", "message": THROTTLED + "VaultOperationLimitReached"}
    }
    entry = ActivityEntry.objects.order_by("-seq").first()
    assert entry is not None
    assert (entry.operation, entry.result, entry.status_code, entry.face) == (
        Operation.KEY_LIST,
        Result.THROTTLED,
        429,
        Face.API,
    )
    assert entry.vault_name == vault.name and entry.message.startswith(THROTTLED)


def test_a_throttled_request_does_nothing_and_does_not_count(
    limits: Any, system: User, vault: Vault
) -> None:
    token = officer(system, vault)
    create = {"kty": "EC"}
    assert call(vault, token, "POST", "/keys/first/create", create).status_code == 200
    refused = call(vault, token, "POST", "/keys/second/create", create)
    assert refused.status_code == 429
    assert refused.json()["error"]["message"] == THROTTLED + "VaultRequestTypeLimitReached"
    assert list(Key.objects.values_list("name", flat=True)) == ["first"]
    # Creations have their own budget: other requests still have all of theirs.
    assert [call(vault, token).status_code for _ in range(4)] == [200, 200, 200, 429]


def test_vaults_do_not_share_a_budget(limits: Any, system: User, vault: Vault) -> None:
    other = VaultFactory.create()
    token, other_token = officer(system, vault), officer(system, other)
    for _ in range(3):
        call(vault, token)
    assert call(vault, token).status_code == 429
    assert call(other, other_token).status_code == 200


def test_principals_do_not_share_a_budget(limits: Any, system: User, vault: Vault) -> None:
    limits.KVCONSOLE_RATE_LIMIT_VAULT = 1000
    limits.KVCONSOLE_RATE_LIMIT_PRINCIPAL = 2
    greedy, patient = officer(system, vault), officer(system, vault)
    assert [call(vault, greedy).status_code for _ in range(3)] == [200, 200, 429]
    assert call(vault, greedy).json()["error"]["message"] == (
        THROTTLED + "PrincipalRequestLimitReached"
    )
    assert call(vault, patient).status_code == 200


def test_the_budget_comes_back_when_the_window_ends(
    limits: Any, system: User, vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = officer(system, vault)
    now = [1_000_000_003.0]  # three seconds into a ten-second window
    monkeypatch.setattr(ratelimit.time, "time", lambda: now[0])
    for _ in range(3):
        call(vault, token)
    refused = call(vault, token)
    assert refused.status_code == 429
    assert refused["Retry-After"] == "7"
    now[0] += 6.5
    assert call(vault, token)["Retry-After"] == "1"
    now[0] += 0.5
    assert call(vault, token).status_code == 200


def test_a_limit_of_zero_is_no_limit(limits: Any, system: User, vault: Vault) -> None:
    limits.KVCONSOLE_RATE_LIMIT_VAULT = 0
    token = officer(system, vault)
    assert {call(vault, token).status_code for _ in range(6)} == {200}


def test_an_unauthenticated_request_is_challenged_not_counted(
    limits: Any, system: User, vault: Vault
) -> None:
    for _ in range(5):
        assert call(vault, "").status_code == 401
    assert call(vault, officer(system, vault)).status_code == 200


def test_counters_name_budgets_by_a_hash_that_every_process_agrees_on(tmp_path: Path) -> None:
    counters = ratelimit.Counters(tmp_path / "table")
    budget = ratelimit.Budget("vault:shared", 2, "VaultOperationLimitReached")
    assert counters.take([budget], 10, 100.0) is None
    reopened = ratelimit.Counters(tmp_path / "table")
    assert reopened.take([budget], 10, 101.0) is None
    assert reopened.take([budget], 10, 102.0) == budget
    # Every budget has room or none is charged.
    spare = ratelimit.Budget("principal:spare", 5, "PrincipalRequestLimitReached")
    assert counters.take([spare, budget], 10, 103.0) == budget
    assert counters.take([spare], 10, 103.0) is None
    assert counters.take([ratelimit.Budget("principal:spare", 1, "")], 10, 103.0) is not None


def test_a_full_table_lets_requests_through_rather_than_refuse_strangers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ratelimit, "SLOTS", 2)
    monkeypatch.setattr(ratelimit, "PROBES", 2)
    counters = ratelimit.Counters(tmp_path / "table")
    for name in ("a", "b", "c", "d"):
        assert counters.take([ratelimit.Budget(name, 1, "")], 10, 100.0) is None
    # The next window frees every slot.
    assert counters.take([ratelimit.Budget("e", 1, "")], 10, 110.0) is None


WORKER = textwrap.dedent(
    """
    import sys, time
    import django
    django.setup()
    from keys.api import ratelimit
    counters = ratelimit.Counters(__import__("pathlib").Path(sys.argv[1]))
    budget = ratelimit.Budget("vault:shared", int(sys.argv[2]), "VaultOperationLimitReached")
    start = float(sys.argv[3])
    while time.time() < start:
        time.sleep(0.001)
    admitted = sum(counters.take([budget], 3600, start) is None for _ in range(int(sys.argv[4])))
    print(admitted)
    """
)


@pytest.mark.slow
@pytest.mark.alone
def test_processes_draw_on_one_budget(tmp_path: Path) -> None:
    table = tmp_path / "table"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "kvconsole.settings"}
    start = time.time() + 3
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(table), "500", str(start), "400"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    admitted = [int(worker.communicate(timeout=120)[0]) for worker in workers]
    # 800 attempts at once against 500: exactly 500 admitted, split between the two.
    assert sum(admitted) == 500
    assert all(count > 0 for count in admitted)
