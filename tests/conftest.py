"""Personas and shared fixtures.

Key files live in a per-session temporary directory, never in the developer's var/.
"""

import fcntl
import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.handlers.base import BaseHandler
from django.db import connection
from django.http import HttpRequest, HttpResponseBase
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY

from accounts.models import User
from accounts.tokens import verified_tokens
from keys import protection
from keys import services as key_services
from keys.crypto import Material
from keys.models import KeyVersion
from keys.protection import ProtectedMaterial, master_keyring, material_cache
from kvconsole import jsonlog
from tests import twofactor
from tests.factories import (
    ApplicationFactory,
    SuperuserFactory,
    SystemPrincipalFactory,
    UserFactory,
    VaultFactory,
)
from tests.live import SUFFIX, LiveDeployment, live_deployment, vault_hosts_resolve_locally
from tests.material import MaterialWatch
from tests.processes import drop_deployment_databases
from tests.sdk import Sdk
from vaults import services as vault_services
from vaults.models import ActivityEntry, Face, Vault


@pytest.fixture(scope="session", autouse=True)
def key_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("keyfiles")
    names = (
        "KVCONSOLE_MASTER_KEY_FILE",
        "KVCONSOLE_BACKUP_KEY_FILE",
        "KVCONSOLE_TOKEN_KEY_FILE",
        "KVCONSOLE_WEBHOOK_KEY_FILE",
    )
    original = [getattr(settings, name) for name in names]
    settings.KVCONSOLE_MASTER_KEY_FILE = directory / "master-keys.json"
    settings.KVCONSOLE_BACKUP_KEY_FILE = directory / "backup-key.json"
    settings.KVCONSOLE_TOKEN_KEY_FILE = directory / "token-signing-keys.json"
    settings.KVCONSOLE_WEBHOOK_KEY_FILE = directory / "webhook-key.json"
    yield directory
    for name, value in zip(names, original, strict=True):
        setattr(settings, name, value)


@pytest.fixture(autouse=True)
def _alone_if_marked(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Under pytest-xdist, a test marked `alone` waits until no other worker is running a test,
    and the others wait for it: its real processes race or are timed, and must not share the
    cores with another test's work. Every test holds a shared lock, `alone` an exclusive one."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        yield
        return
    # The workers' temporary directories are side by side in the run's own.
    with (tmp_path_factory.getbasetemp().parent / "alone.lock").open("a") as lock:
        alone = request.node.get_closest_marker("alone") is not None
        fcntl.flock(lock, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        yield


@pytest.fixture(scope="session", autouse=True)
def _deployment_databases() -> Iterator[None]:
    # Real-process deployments on PostgreSQL each made a database beside the suite's.
    yield
    drop_deployment_databases()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """pytest-django's test database. On PostgreSQL, which drops no database in use, the
    sessions still open on it are ended first: a live server's thread keeps its connection
    for as long as a client keeps its kept-alive HTTP connection."""
    yield
    if connection.vendor == "postgresql":
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )


@pytest.fixture(scope="session", autouse=True)
def _console_host_of_the_test_client() -> Iterator[None]:
    # Django's test client calls itself "testserver": as the console's host it is never
    # taken for a vault's alias, whose lookup refreshes on a timer and would make query
    # counts depend on how long a test took.
    original = settings.KVCONSOLE_CONSOLE_HOST
    settings.KVCONSOLE_CONSOLE_HOST = "testserver"
    yield
    settings.KVCONSOLE_CONSOLE_HOST = original


@pytest.fixture(scope="session", autouse=True)
def _fast_password_hashing() -> Iterator[None]:
    # Personas get passwords; the default PBKDF2 costs about a second each.
    original = settings.PASSWORD_HASHERS
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    yield
    settings.PASSWORD_HASHERS = original


@pytest.fixture(autouse=True)
def _superusers_signed_in_with_their_authenticator(monkeypatch: pytest.MonkeyPatch) -> None:
    """`client.force_login` gives a superuser the session their authenticator's code gives:
    the console admits superusers with no other (vaults/twofactor.py)."""
    force_login = Client.force_login

    def verified(client: Client, user: Any, backend: str | None = None) -> None:
        force_login(client, user, backend)
        if user.is_superuser:
            session = client.session
            session[DEVICE_ID_SESSION_KEY] = twofactor.enrol(user).persistent_id
            session.save()

    monkeypatch.setattr(Client, "force_login", verified)


@pytest.fixture(autouse=True)
def _rate_limits_of_this_test(tmp_path: Path, settings: Any) -> None:
    # The vault endpoint's counters outlive a test; each test counts from nothing.
    settings.KVCONSOLE_RATE_LIMIT_FILE = tmp_path / "rate-limits"


@pytest.fixture(autouse=True)
def _empty_material_cache() -> Iterator[None]:
    material_cache.clear()
    yield
    material_cache.clear()


@pytest.fixture(autouse=True)
def no_key_material_in_responses(monkeypatch: pytest.MonkeyPatch) -> Iterator[MaterialWatch]:
    """Every response of every test (console pages and fragments, the admin, the vault
    endpoint, served to the test client or a live server's thread) is scanned for the private
    material of each key sealed meanwhile, and for anything shaped like a private key."""
    watch = MaterialWatch()
    protect = protection.protect

    def remembering(material: Material, *, aad: bytes) -> ProtectedMaterial:
        watch.remember(material)
        return protect(material, aad=aad)

    get_response = BaseHandler.get_response

    def scanned(handler: BaseHandler, request: HttpRequest) -> HttpResponseBase:
        response = get_response(handler, request)
        if not response.streaming:
            try:
                watch.scan(response.content, f"{request.method} {request.path}")  # type: ignore[attr-defined]
            except AssertionError as leak:
                # Recorded rather than raised: a live server's thread would swallow it.
                watch.leaks.append(str(leak))
        return response

    monkeypatch.setattr(protection, "protect", remembering)
    monkeypatch.setattr(BaseHandler, "get_response", scanned)
    yield watch
    assert not watch.leaks, watch.leaks


@pytest.fixture(autouse=True)
def no_key_material_in_log_lines(no_key_material_in_responses: MaterialWatch) -> Iterator[None]:
    """The JSON log lines a test writes (kvconsole/jsonlog.py) are kept rather than printed,
    and scanned as responses are."""
    lines = io.StringIO()
    with jsonlog.lines_to(lines):
        yield
    no_key_material_in_responses.scan(lines.getvalue().encode(), "the JSON log lines")


@pytest.fixture
def fresh_keyring(tmp_path: Path, settings: Any) -> Path:
    """A master keyring of this test's own, for tests that rotate it."""
    settings.KVCONSOLE_MASTER_KEY_FILE = tmp_path / "master-keys.json"
    master_keyring._loaded = None
    return settings.KVCONSOLE_MASTER_KEY_FILE


@pytest.fixture
def fresh_token_keys(tmp_path: Path, settings: Any) -> Path:
    """A token-signing keyring of this test's own, for tests that rotate it."""
    settings.KVCONSOLE_TOKEN_KEY_FILE = tmp_path / "token-signing-keys.json"
    return settings.KVCONSOLE_TOKEN_KEY_FILE


@pytest.fixture
def system(db: None) -> User:
    """The system principal cron and the CLI run as."""
    return SystemPrincipalFactory.create()


@pytest.fixture
def owner(db: None) -> User:
    """A superuser: may do anything anywhere."""
    return SuperuserFactory.create()


@pytest.fixture
def outsider(db: None) -> User:
    """A signed-in user with no grants at all."""
    return UserFactory.create()


@pytest.fixture
def application(db: None) -> User:
    """A service principal with no grants."""
    return ApplicationFactory.create()


@pytest.fixture
def vault(db: None) -> Vault:
    return VaultFactory.create()


@pytest.fixture
def make_key(system: User, vault: Vault) -> Callable[..., KeyVersion]:
    """Create a key in `vault` (or another) through the service, as the system principal."""

    def make(name: str = "key1", *, in_vault: Vault | None = None, **options: Any) -> KeyVersion:
        return key_services.key_create(
            actor=system, vault_name=(in_vault or vault).name, name=name, **options
        )

    return make


@pytest.fixture(scope="session")
def deployment(
    django_db_setup: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveDeployment]:
    """A live HTTPS deployment (console host, token service, vault hosts) in this process."""
    names = ("KVCONSOLE_CONSOLE_HOST", "KVCONSOLE_VAULT_PORT", "KVCONSOLE_VAULT_HOST_SUFFIX")
    original = [getattr(settings, name) for name in names]
    with live_deployment(tmp_path_factory.mktemp("tls")) as live, vault_hosts_resolve_locally():
        settings.KVCONSOLE_CONSOLE_HOST = f"localhost:{live.port}"
        settings.KVCONSOLE_VAULT_PORT = live.port
        settings.KVCONSOLE_VAULT_HOST_SUFFIX = SUFFIX
        yield live
    for name, value in zip(names, original, strict=True):
        setattr(settings, name, value)


@pytest.fixture(autouse=True)
def _forget_verified_tokens() -> Iterator[None]:
    # Principals are made afresh by every test; a token cached by an earlier one is stale.
    verified_tokens.clear()
    yield
    verified_tokens.clear()


@pytest.fixture
def sdk(deployment: LiveDeployment, system: User) -> Sdk:
    return Sdk(deployment, system)


@pytest.fixture
def one_entry_per_request(deployment: LiveDeployment, transactional_db: None) -> Iterator[None]:
    """Every vault endpoint and token request of a test is one activity entry."""
    mark = deployment.log.mark()
    first = (ActivityEntry.objects.order_by("-seq").values_list("seq", flat=True).first() or 0) + 1
    yield
    served = [
        request
        for request in deployment.log.since(mark)
        if request[0].split(":")[0].endswith("." + SUFFIX)
        or request[2].endswith(("/oauth2/v2.0/token", "/msi/token"))
    ]
    entries = ActivityEntry.objects.filter(seq__gte=first, face=Face.API).count()
    assert entries == len(served)


@dataclass(frozen=True)
class Personas:
    """The console's people around one vault: its group's owner (Owner and Key Vault
    Administrator on the resource group), a crypto user and a reader of the vault, and an
    outsider with no grants."""

    vault: Vault
    owner: User
    crypto_user: User
    reader: User
    outsider: User

    def each(self) -> dict[str, User]:
        return {
            "owner": self.owner,
            "crypto_user": self.crypto_user,
            "reader": self.reader,
            "outsider": self.outsider,
        }


@pytest.fixture
def personas(system: User, vault: Vault) -> Personas:
    group_scope = f"/resourceGroups/{vault.resource_group.name}"
    vault_scope = f"{group_scope}/providers/Microsoft.KeyVault/vaults/{vault.name}"
    people = {name: UserFactory.create(username=name) for name in ("owner", "crypto", "reader")}
    for person, role, scope in (
        (people["owner"], "Owner", group_scope),
        (people["owner"], "Key Vault Administrator", group_scope),
        (people["crypto"], "Key Vault Crypto User", vault_scope),
        (people["reader"], "Key Vault Reader", vault_scope),
    ):
        vault_services.role_assignment_create(
            actor=system, assignee=person.username, role=role, scope=scope
        )
    return Personas(
        vault=vault,
        owner=people["owner"],
        crypto_user=people["crypto"],
        reader=people["reader"],
        outsider=UserFactory.create(username="outsider"),
    )
