"""The one decision point: nothing else calls django-guardian, and deciding stays cheap
however many grants an actor holds elsewhere."""

import hashlib
import re
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts import roles
from accounts.models import Application, User
from keys import selectors as key_selectors
from keys import services as key_services
from keys.models import Key
from kvconsole.errors import Forbidden
from tests.factories import SuperuserFactory, UserFactory, VaultFactory
from vaults import permissions, services
from vaults.models import ResourceGroup, Vault
from vaults.permissions import DEPLOYMENT, Action, authorize, may, request_cache, visible

ROOT = Path(__file__).resolve().parents[2]
SCANNED_PACKAGES = ("accounts", "vaults", "keys", "kvconsole")
DECISION_POINT = ROOT / "vaults" / "permissions.py"
GUARDIAN_CALLS = (
    "has_perm(",
    "get_objects_for_user",
    "assign_perm",
    "remove_perm",
    "get_perms",
    "ObjectPermissionChecker",
)
CRYPTO_USER = roles.role_named("Key Vault Crypto User")
READER = roles.role_named("Key Vault Reader")
DIGEST = hashlib.sha256(b"payload").digest()


def guardian_calls(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return [name for name in GUARDIAN_CALLS if name in text]


def test_only_the_permissions_module_calls_django_guardian() -> None:
    sources = [
        path
        for package in SCANNED_PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if ".venv" not in path.parts
    ]
    # The scan reads the real tree: dozens of modules, and the decision point among them.
    assert len(sources) > 30
    assert DECISION_POINT in sources
    offenders = {
        str(path.relative_to(ROOT)): found
        for path in sources
        if path != DECISION_POINT and (found := guardian_calls(path))
    }
    assert offenders == {}


def test_the_scan_recognises_guardian_calls(tmp_path: Path) -> None:
    """The scan above would pass vacuously if it could not see a call; it can."""
    assert set(guardian_calls(DECISION_POINT)) >= {
        "get_objects_for_user",
        "assign_perm",
        "remove_perm",
    }
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from guardian.core import ObjectPermissionChecker\n"
        "user.has_perm('x', obj)\nget_perms(user, obj)\n",
        encoding="utf-8",
    )
    assert guardian_calls(sample) == ["has_perm(", "get_perms", "ObjectPermissionChecker"]


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def signing_key(system: User) -> Key:
    services.resource_group_create(actor=system, name="rg-a", location="westeurope")
    services.vault_create(actor=system, name="vault-a", resource_group="rg-a")
    key_services.key_create(
        actor=system, vault_name="vault-a", name="key1", kty="EC", curve="P-256"
    )
    key_services.key_create(actor=system, vault_name="vault-a", name="key2", kty="oct", size=256)
    return Key.objects.select_related("vault__resource_group").get(name="key1")


def unrelated_grants(holder: User, count: int) -> None:
    """`count` Reader grants on vaults of other groups: nothing the measured call touches."""
    for vault in VaultFactory.create_batch(count):
        assert READER is not None
        permissions.grant_role(holder, READER, vault)


def sign(actor: User) -> None:
    key_services.key_sign(
        actor=actor, vault_name="vault-a", name="key1", algorithm="ES256", digest=DIGEST
    )


# --- query counts --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_authorize_costs_one_query_cold_and_none_when_cached(signing_key: Key) -> None:
    alice = UserFactory.create()
    ops = Group.objects.create(name="ops")
    alice.groups.add(ops)
    assert CRYPTO_USER is not None
    permissions.grant_role(ops, CRYPTO_USER, signing_key.vault.resource_group)
    alice = User.objects.get(pk=alice.pk)
    # Per-process setup (the grant query is compiled once) is not what is measured.
    assert not may(UserFactory.create(), Action.KEY_SIGN, signing_key)
    with request_cache():
        with CaptureQueriesContext(connection) as cold:
            authorize(alice, Action.KEY_SIGN, signing_key)
        assert len(cold.captured_queries) <= 2
        with CaptureQueriesContext(connection) as warm:
            authorize(alice, Action.KEY_SIGN, signing_key)
            authorize(alice, Action.KEY_VERIFY, signing_key)
            assert may(alice, Action.KEY_GET, signing_key)
        assert len(warm.captured_queries) == 0
    # Outside a block nothing is kept between calls.
    with CaptureQueriesContext(connection) as uncached:
        authorize(alice, Action.KEY_SIGN, signing_key)
        authorize(alice, Action.KEY_SIGN, signing_key)
    assert len(uncached.captured_queries) == 2 * len(cold.captured_queries)


@pytest.mark.django_db
def test_a_refusal_costs_no_more_than_an_allowance(signing_key: Key) -> None:
    outsider = UserFactory.create()
    assert not may(UserFactory.create(), Action.KEY_SIGN, signing_key)
    with CaptureQueriesContext(connection) as refused:
        assert not may(outsider, Action.KEY_SIGN, signing_key)
    assert len(refused.captured_queries) <= 2


@pytest.mark.django_db
def test_a_grant_change_inside_a_cached_block_takes_effect(signing_key: Key) -> None:
    alice = UserFactory.create()
    assert CRYPTO_USER is not None
    with request_cache():
        assert not may(alice, Action.KEY_SIGN, signing_key)
        permissions.grant_role(alice, CRYPTO_USER, signing_key.vault)
        assert may(alice, Action.KEY_SIGN, signing_key)
        permissions.revoke_role(alice, CRYPTO_USER, signing_key.vault)
        assert not may(alice, Action.KEY_SIGN, signing_key)
        permissions.set_policy(signing_key.vault, alice, ["sign"])
        signing_key.vault.permission_model = Vault.PermissionModel.ACCESS_POLICY
        assert may(alice, Action.KEY_SIGN, signing_key)


def sign_queries(actor: User) -> int:
    sign(actor)  # warms per-process caches (compiled SQL, the master keyring)
    with request_cache(), CaptureQueriesContext(connection) as captured:
        sign(actor)
    return len(captured.captured_queries)


@pytest.mark.django_db
def test_key_sign_costs_the_same_whatever_else_the_application_holds(
    signing_key: Key, system: User
) -> None:
    measured = []
    for unrelated in (0, 49):
        app_user = UserFactory.create(kind=User.Kind.APPLICATION)
        app = Application.objects.create(user=app_user, display_name=app_user.username)
        services.role_assignment_create(
            actor=system,
            assignee=str(app.client_id),
            role="Key Vault Crypto User",
            scope="/resourceGroups/rg-a/providers/Microsoft.KeyVault/vaults/vault-a",
        )
        for vault in VaultFactory.create_batch(unrelated):
            services.role_assignment_create(
                actor=system,
                assignee=str(app.client_id),
                role="Key Vault Reader",
                scope=f"/resourceGroups/{vault.resource_group.name}/providers/"
                f"Microsoft.KeyVault/vaults/{vault.name}",
            )
        measured.append(sign_queries(app_user))
    assert measured[0] == measured[1]


@pytest.mark.django_db
def test_key_list_costs_the_same_whatever_else_the_actor_holds(signing_key: Key) -> None:
    vault = signing_key.vault
    measured = []
    for unrelated in (0, 10, 100):
        reader = UserFactory.create()
        assert READER is not None
        permissions.grant_role(reader, READER, vault)
        unrelated_grants(reader, unrelated)
        with CaptureQueriesContext(connection) as captured:
            listed = [key.name for key in key_selectors.key_list(actor=reader, vault=vault)]
        assert listed == ["key1", "key2"]
        measured.append(len(captured.captured_queries))
    # The vault decided once, then the page.
    assert measured == [measured[0]] * 3
    assert measured[0] <= 2


@pytest.mark.django_db
def test_key_list_through_key_grants_costs_the_same_too(signing_key: Key) -> None:
    measured = []
    for unrelated in (0, 10, 100):
        holder = UserFactory.create()
        assert CRYPTO_USER is not None
        permissions.grant_role(holder, CRYPTO_USER, signing_key)
        unrelated_grants(holder, unrelated)
        with CaptureQueriesContext(connection) as captured:
            listed = [
                key.name for key in key_selectors.key_list(actor=holder, vault=signing_key.vault)
            ]
        assert listed == ["key1"]
        measured.append(len(captured.captured_queries))
    assert measured == [measured[0]] * 3
    assert measured[0] <= 2


# --- the decision itself -------------------------------------------------------------------------


@pytest.mark.django_db
def test_deployment_principals_may_do_anything(signing_key: Key, system: User) -> None:
    superuser = SuperuserFactory.create()
    for actor in (system, superuser):
        for action in Action:
            if action.plane is permissions.Plane.DIRECTORY:
                continue
            target = signing_key if action in permissions.DATA_ACTIONS else DEPLOYMENT
            assert may(actor, action, target), (actor, action)
        assert list(visible(actor, ResourceGroup.objects.all(), Action.RESOURCE_GROUP_READ))


@pytest.mark.django_db
def test_inactive_superuser_may_do_nothing(signing_key: Key) -> None:
    superuser = SuperuserFactory.create(is_active=False)
    assert not may(superuser, Action.KEY_SIGN, signing_key)
    assert not may(superuser, Action.RESOURCE_GROUP_WRITE, DEPLOYMENT)
    assert not visible(superuser, Vault.objects.all(), Action.VAULT_READ).exists()
    with pytest.raises(Forbidden):
        sign(superuser)


@pytest.mark.django_db
def test_nobody_else_acts_on_the_whole_deployment(signing_key: Key, system: User) -> None:
    """Roles are held on resource groups, vaults and keys; creating a group is above them."""
    owner = UserFactory.create()
    services.role_assignment_create(
        actor=system, assignee=owner.username, role="Owner", scope="/resourceGroups/rg-a"
    )
    assert may(owner, Action.RESOURCE_GROUP_DELETE, signing_key.vault.resource_group)
    with pytest.raises(Forbidden) as raised:
        authorize(owner, Action.RESOURCE_GROUP_WRITE, DEPLOYMENT)
    assert re.search(r"Resource: '/subscriptions/[0-9a-f-]+'", raised.value.message)


@pytest.mark.django_db
def test_visible_filters_in_sql_by_role_and_by_policy(signing_key: Key, system: User) -> None:
    other = services.vault_create(
        actor=system, name="vault-p", resource_group="rg-a", permission_model="access_policy"
    )
    key_services.key_create(actor=system, vault_name="vault-p", name="key1", kty="oct", size=256)
    alice = UserFactory.create()
    assert CRYPTO_USER is not None
    permissions.grant_role(alice, CRYPTO_USER, signing_key.vault)
    permissions.set_policy(other, alice, ["list"])
    keys = visible(alice, Key.objects.order_by("vault__name", "name"), Action.KEY_LIST)
    assert [str(key) for key in keys] == ["vault-a/key1", "vault-a/key2", "vault-p/key1"]
    # A role on the policy vault and a policy on the RBAC vault count for nothing.
    permissions.revoke_role(alice, CRYPTO_USER, signing_key.vault)
    permissions.grant_role(alice, CRYPTO_USER, other)
    permissions.set_policy(signing_key.vault, alice, ["list"])
    permissions.set_policy(other, alice, ["get"])
    assert not visible(alice, Key.objects.all(), Action.KEY_LIST).exists()
