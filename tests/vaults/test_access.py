"""Access services: role assignments, assignment rights, access policies, one permission
model per vault, refusals, effective access, and lists that show only what may be read.

The role x scope x model matrix lives in test_access_matrix.py; these tests follow single
behaviours through the services.
"""

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.utils import timezone

from accounts import roles
from accounts.models import Application, User
from keys import services as key_services
from keys.models import Key, KeyGroupObjectPermission, KeyUserObjectPermission
from kvconsole.errors import BadParameter, Conflict, Forbidden, NotFound
from tests.factories import UserFactory
from vaults import permissions, selectors, services
from vaults.models import (
    KEY_PERMISSIONS,
    ActivityEntry,
    ResourceGroup,
    ResourceGroupGroupObjectPermission,
    ResourceGroupUserObjectPermission,
    RoleAssignment,
    Vault,
    VaultGroupObjectPermission,
    VaultUserObjectPermission,
)
from vaults.permissions import (
    ASSIGNMENT_RIGHTS,
    DATA_ACTIONS,
    MANAGEMENT_RIGHTS,
    Action,
    may,
    request_cache,
)
from vaults.services import access

pytestmark = pytest.mark.django_db

SUBSCRIPTION = f"/subscriptions/{settings.KVCONSOLE_SUBSCRIPTION_ID}"
RG = "/resourceGroups/rg-a"
VAULT_A = f"{RG}/providers/Microsoft.KeyVault/vaults/vault-a"
VAULT_B = f"{RG}/providers/Microsoft.KeyVault/vaults/vault-b"
VAULT_P = f"{RG}/providers/Microsoft.KeyVault/vaults/vault-p"
KEY_1 = f"{VAULT_A}/keys/key1"
KEY_2 = f"{VAULT_A}/keys/key2"
DIGEST = hashlib.sha256(b"payload").digest()

OWNER = "Owner"
USER_ACCESS_ADMINISTRATOR = "User Access Administrator"
CONTRIBUTOR = "Key Vault Contributor"
DATA_ACCESS_ADMINISTRATOR = "Key Vault Data Access Administrator"
ADMINISTRATOR = "Key Vault Administrator"
CRYPTO_OFFICER = "Key Vault Crypto Officer"
CRYPTO_USER = "Key Vault Crypto User"
ENCRYPTION_USER = "Key Vault Crypto Service Encryption User"
RELEASE_USER = "Key Vault Crypto Service Release User"
READER = "Key Vault Reader"
KEY_VAULT_DATA_ROLES = (ADMINISTRATOR, CRYPTO_OFFICER, ENCRYPTION_USER, CRYPTO_USER, READER)

GRANT_MODELS = (
    ResourceGroupUserObjectPermission,
    ResourceGroupGroupObjectPermission,
    VaultUserObjectPermission,
    VaultGroupObjectPermission,
    KeyUserObjectPermission,
    KeyGroupObjectPermission,
)


@dataclass(frozen=True)
class World:
    """rg-a holding vault-a (RBAC; key1, key2), vault-b (RBAC; key1) and vault-p
    (access policies; key1); every key an EC P-256 key that can sign."""

    group: ResourceGroup
    vault: Vault
    sibling: Vault
    policy_vault: Vault
    key: Key
    other_key: Key
    sibling_key: Key
    policy_key: Key


def load_key(vault_name: str, name: str) -> Key:
    return Key.objects.select_related("vault__resource_group").get(
        vault__name=vault_name, name=name
    )


@pytest.fixture
def world(system: User) -> World:
    group = services.resource_group_create(actor=system, name="rg-a", location="westeurope")
    vault, sibling = (
        services.vault_create(actor=system, name=name, resource_group="rg-a")
        for name in ("vault-a", "vault-b")
    )
    policy_vault = services.vault_create(
        actor=system,
        name="vault-p",
        resource_group="rg-a",
        permission_model=Vault.PermissionModel.ACCESS_POLICY,
    )
    for vault_name, key_name in (
        ("vault-a", "key1"),
        ("vault-a", "key2"),
        ("vault-b", "key1"),
        ("vault-p", "key1"),
    ):
        key_services.key_create(
            actor=system, vault_name=vault_name, name=key_name, kty="EC", curve="P-256"
        )
    return World(
        group,
        vault,
        sibling,
        policy_vault,
        key=load_key("vault-a", "key1"),
        other_key=load_key("vault-a", "key2"),
        sibling_key=load_key("vault-b", "key1"),
        policy_key=load_key("vault-p", "key1"),
    )


def person(name: str) -> User:
    return UserFactory.create(username=name)


def application(name: str) -> tuple[User, Application]:
    """A service principal: its Application row and the user that holds its grants."""
    user = UserFactory.create(username=name, kind=User.Kind.APPLICATION)
    return user, Application.objects.create(user=user, display_name=name)


def team(name: str, *members: User) -> Group:
    group = Group.objects.create(name=name)
    for member in members:
        member.groups.add(group)
    return group


def assign(assignee: str, role: str, scope: str, *, actor: User | None = None) -> RoleAssignment:
    """Assign as the given actor, or as a superuser (who may always)."""
    acting = (
        actor or User.objects.get_or_create(username="root", defaults={"is_superuser": True})[0]
    )
    return services.role_assignment_create(actor=acting, assignee=assignee, role=role, scope=scope)


def sign(actor: User, vault_name: str = "vault-a", key_name: str = "key1") -> Any:
    return key_services.key_sign(
        actor=actor, vault_name=vault_name, name=key_name, algorithm="ES256", digest=DIGEST
    )


def grant_state() -> tuple[Any, ...]:
    """Every assignment record, grant row and vault row: a refused call changes none."""
    return (
        list(RoleAssignment.objects.order_by("pk").values()),
        [list(model.objects.order_by("pk").values()) for model in GRANT_MODELS],
        list(Vault.objects.order_by("pk").values()),
    )


def last_entry() -> ActivityEntry:
    entry = ActivityEntry.objects.order_by("-seq").first()
    assert entry is not None
    return entry


def refused(call: Callable[[], object], operation: str) -> Forbidden:
    """Run a call that must be refused, changing nothing and leaving a Forbidden entry."""
    before = grant_state()
    with pytest.raises(Forbidden) as raised:
        call()
    assert grant_state() == before
    entry = last_entry()
    assert (entry.operation, entry.result, entry.status_code) == (operation, "Forbidden", 403)
    return raised.value


def role_id(name: str) -> str:
    role = roles.role_named(name)
    assert role is not None
    return role.id


# --- role assignments: creating ------------------------------------------------------------------


def test_assignment_at_resource_group_writes_the_record_and_the_grant(
    world: World, system: User
) -> None:
    alice = person("alice")
    assert not may(alice, Action.KEY_SIGN, world.key)
    created = services.role_assignment_create(
        actor=system, assignee="alice", role=CRYPTO_USER, scope=RG
    )
    record = RoleAssignment.objects.get(pk=created.pk)
    assert record.uid == created.uid
    assert str(record.role_id) == role_id(CRYPTO_USER)
    assert (record.user, record.group) == (alice, None)
    assert (record.resource_group, record.vault, record.key) == (world.group, None, None)
    assert record.scope == RG
    assert (record.created_by, record.created_by_name) == (system, system.username)
    assert timezone.now() - timedelta(minutes=1) < record.created_at <= timezone.now()
    grant = ResourceGroupUserObjectPermission.objects.get(user=alice)
    assert (grant.content_object, grant.permission.codename) == (
        world.group,
        "key_vault_crypto_user_resourcegroup",
    )
    assert may(alice, Action.KEY_SIGN, world.key)
    entry = last_entry()
    assert (entry.operation, entry.result, entry.resource_group) == (
        "RoleAssignmentCreate",
        "Success",
        "rg-a",
    )
    assert entry.target == f"resourceGroups/rg-a/roleAssignments/{created.uid}"


@pytest.mark.parametrize(
    ("written", "canonical", "level"),
    [
        (RG, RG, "group"),
        (f"{SUBSCRIPTION}/resourcegroups/RG-A", RG, "group"),
        (VAULT_A, VAULT_A, "vault"),
        (f"{SUBSCRIPTION}{VAULT_A}", VAULT_A, "vault"),
        (
            f"{SUBSCRIPTION.upper()}/RESOURCEGROUPS/Rg-A/PROVIDERS/microsoft.keyvault/VAULTS/Vault-A/",
            VAULT_A,
            "vault",
        ),
        (KEY_1, KEY_1, "key"),
        (
            f"{SUBSCRIPTION}/resourceGroups/rg-a/providers/Microsoft.KeyVault/vaults/VAULT-A/Keys/KEY1",
            KEY_1,
            "key",
        ),
    ],
)
def test_assignment_scope_is_read_with_or_without_subscription_and_in_any_case(
    world: World, written: str, canonical: str, level: str
) -> None:
    alice = person("alice")
    created = assign("alice", READER, written)
    assert created.scope == canonical
    assert created.resource_group == world.group
    assert created.vault == (None if level == "group" else world.vault)
    assert created.key_id == (world.key.pk if level == "key" else None)
    scope_object = {"group": world.group, "vault": world.vault, "key": world.key}[level]
    grant_model: Any = {
        "group": ResourceGroupUserObjectPermission,
        "vault": VaultUserObjectPermission,
        "key": KeyUserObjectPermission,
    }[level]
    grant = grant_model.objects.get(user=alice)
    assert grant.content_object == scope_object
    assert grant.permission.codename == f"key_vault_reader_{type(scope_object).__name__.lower()}"


@pytest.mark.parametrize(
    "again",
    [VAULT_A, f"{SUBSCRIPTION}/resourcegroups/RG-A/providers/Microsoft.KeyVault/vaults/VAULT-A"],
)
def test_duplicate_assignment_is_a_conflict(world: World, system: User, again: str) -> None:
    person("alice")
    assign("alice", CRYPTO_USER, VAULT_A)
    before = grant_state()
    with pytest.raises(Conflict) as conflict:
        services.role_assignment_create(
            actor=system, assignee="alice", role=CRYPTO_USER, scope=again
        )
    assert conflict.value.code == "RoleAssignmentExists"
    assert grant_state() == before
    assert RoleAssignment.objects.count() == 1
    assert (last_entry().operation, last_entry().result) == ("RoleAssignmentCreate", "Conflict")


def test_same_role_at_another_scope_or_for_a_group_is_not_a_duplicate(world: World) -> None:
    alice = person("alice")
    team("ops", alice)
    assign("alice", CRYPTO_USER, VAULT_A)
    assign("alice", CRYPTO_USER, KEY_1)
    assign("ops", CRYPTO_USER, VAULT_A)
    assert RoleAssignment.objects.count() == 3


@pytest.mark.parametrize(
    "role",
    [
        CRYPTO_USER,
        CRYPTO_USER.upper(),
        roles.KEY_VAULT_CRYPTO_USER,
        f"/providers/Microsoft.Authorization/roleDefinitions/{roles.KEY_VAULT_CRYPTO_USER}",
    ],
)
def test_role_is_named_by_name_in_any_case_or_by_id(world: World, role: str) -> None:
    person("alice")
    assert str(assign("alice", role, VAULT_A).role_id) == role_id(CRYPTO_USER)


# The random id is named, so that every pytest-xdist worker collects the same tests.
@pytest.mark.parametrize(
    "role",
    [
        "Key Vault Crypto Superuser",
        "Contributor",
        pytest.param(str(uuid.uuid4()), id="unknown-role-id"),
    ],
)
def test_unknown_role_is_a_bad_parameter(world: World, system: User, role: str) -> None:
    person("alice")
    before = grant_state()
    with pytest.raises(BadParameter) as bad:
        services.role_assignment_create(actor=system, assignee="alice", role=role, scope=VAULT_A)
    assert bad.value.code == "RoleDefinitionDoesNotExist"
    assert role in bad.value.message
    assert grant_state() == before


@pytest.mark.parametrize(
    "scope",
    [
        "",
        "/",
        "rg-a",
        SUBSCRIPTION,
        "/resourceGroups/",
        "/resourceGroups/rg-a/vaults/vault-a",
        f"{VAULT_A}/secrets/s1",
        f"{KEY_1}/versions/abc",
        "/providers/Microsoft.Management/managementGroups/mg",
        f"/subscriptions/{settings.KVCONSOLE_SUBSCRIPTION_ID}/resourceGroups/rg-a/extra",
    ],
)
def test_bad_scope_is_a_bad_parameter(world: World, system: User, scope: str) -> None:
    person("alice")
    before = grant_state()
    with pytest.raises(BadParameter) as bad:
        services.role_assignment_create(actor=system, assignee="alice", role=READER, scope=scope)
    assert bad.value.code == "InvalidScope"
    assert grant_state() == before


@pytest.mark.parametrize(
    ("scope", "code"),
    [
        ("/resourceGroups/rg-missing", "ResourceGroupNotFound"),
        (f"{RG}/providers/Microsoft.KeyVault/vaults/vault-missing", "VaultNotFound"),
        (f"{VAULT_A}/keys/key-missing", "KeyNotFound"),
    ],
)
def test_missing_scope_is_not_found_for_a_superuser(
    world: World, owner: User, scope: str, code: str
) -> None:
    person("alice")
    with pytest.raises(NotFound) as missing:
        services.role_assignment_create(actor=owner, assignee="alice", role=READER, scope=scope)
    assert missing.value.code == code
    assert not RoleAssignment.objects.exists()


@pytest.mark.parametrize(
    ("scope", "code"),
    [
        (f"{RG}/providers/Microsoft.KeyVault/vaults/vault-missing", "VaultNotFound"),
        (f"{VAULT_A}/keys/key-missing", "KeyNotFound"),
    ],
)
def test_missing_scope_is_not_found_for_an_owner_above_it(
    world: World, scope: str, code: str
) -> None:
    person("alice")
    rg_owner = person("rg-owner")
    assign("rg-owner", OWNER, RG)
    with pytest.raises(NotFound) as missing:
        services.role_assignment_create(actor=rg_owner, assignee="alice", role=READER, scope=scope)
    assert missing.value.code == code


@pytest.mark.parametrize(
    "scope",
    [
        "/resourceGroups/rg-missing",
        "/resourceGroups/rg-missing/providers/Microsoft.KeyVault/vaults/vault-a",
        f"{RG}/providers/Microsoft.KeyVault/vaults/vault-missing",
        f"{VAULT_A}/keys/key-missing",
        f"{VAULT_A}/keys/key-missing/",
    ],
)
def test_missing_scope_is_forbidden_for_an_outsider(world: World, scope: str) -> None:
    person("alice")
    outsider = person("mallory")
    error = refused(
        lambda: services.role_assignment_create(
            actor=outsider, assignee="alice", role=READER, scope=scope
        ),
        "RoleAssignmentCreate",
    )
    assert error.inner_code == "ForbiddenByRbac"


def test_missing_key_and_existing_key_are_refused_alike(world: World) -> None:
    """Someone with no rights in the vault cannot tell which key names exist."""
    person("alice")
    outsider = person("mallory")
    messages = []
    for key_name in ("key1", "no-such-key"):
        with pytest.raises(Forbidden) as raised:
            services.role_assignment_create(
                actor=outsider, assignee="alice", role=READER, scope=f"{VAULT_A}/keys/{key_name}"
            )
        messages.append(raised.value.message)
    assert messages[0] == messages[1]
    assert "key1" not in messages[0]


def test_missing_and_existing_resource_groups_are_refused_alike(world: World) -> None:
    """Someone with no rights cannot tell which resource group names exist."""
    person("alice")
    outsider = person("mallory")
    messages = []
    for group_name in ("RG-A", "rg-missing"):
        with pytest.raises(Forbidden) as raised:
            services.role_assignment_create(
                actor=outsider, assignee="alice", role=READER, scope=f"/resourceGroups/{group_name}"
            )
        messages.append(raised.value.message.replace("rg-missing", "rg-a"))
        with pytest.raises(Forbidden) as raised:
            services.resource_group_get(actor=outsider, name=group_name)
        messages.append(raised.value.message.replace("rg-missing", "rg-a"))
    assert messages[0] == messages[2]
    assert messages[1] == messages[3]
    assert "Resource: '/subscriptions/" in messages[0]
    assert messages[0].count("resourcegroups/rg-a'") == 1


@pytest.mark.parametrize("subscription", [SUBSCRIPTION, SUBSCRIPTION.upper()])
def test_scope_in_this_subscription_is_accepted(world: World, subscription: str) -> None:
    person("alice")
    assert assign("alice", READER, f"{subscription}{VAULT_A}").scope == VAULT_A


def test_scope_in_another_subscription_is_a_bad_parameter(world: World, system: User) -> None:
    person("alice")
    other = f"/subscriptions/{uuid.uuid4()}{VAULT_A}"
    with pytest.raises(BadParameter) as raised:
        services.role_assignment_create(actor=system, assignee="alice", role=READER, scope=other)
    assert raised.value.code == "InvalidScope"
    assert not RoleAssignment.objects.exists()


def test_assignee_is_a_user_name(world: World) -> None:
    alice = person("alice")
    created = assign("alice", READER, VAULT_A)
    assert (created.user, created.group) == (alice, None)


def test_assignee_is_a_group_name_and_members_get_the_grant(world: World) -> None:
    alice = person("alice")
    ops = team("ops", alice)
    created = assign("ops", CRYPTO_USER, VAULT_A)
    assert (created.user, created.group) == (None, ops)
    assert VaultGroupObjectPermission.objects.get(group=ops).content_object == world.vault
    assert may(alice, Action.KEY_SIGN, world.key)
    assert not may(person("bob"), Action.KEY_SIGN, world.key)


def test_assignee_is_an_application_client_id(world: World) -> None:
    app_user, app = application("billing")
    created = assign(str(app.client_id), CRYPTO_USER, VAULT_A)
    assert created.user == app_user
    assert may(app_user, Action.KEY_SIGN, world.key)


@pytest.mark.parametrize("kind", ["user", "application"])
def test_assignee_is_an_object_id(world: World, kind: str) -> None:
    holder = person("alice") if kind == "user" else application("billing")[0]
    created = assign(str(holder.oid).upper(), READER, VAULT_A)
    assert created.user == holder


def test_ambiguous_assignee_is_a_bad_parameter(world: World, system: User) -> None:
    person("ops")
    team("ops")
    with pytest.raises(BadParameter) as bad:
        services.role_assignment_create(actor=system, assignee="ops", role=READER, scope=VAULT_A)
    assert bad.value.code == "AmbiguousPrincipal"
    assert not RoleAssignment.objects.exists()


@pytest.mark.parametrize(
    "assignee", ["nobody", pytest.param(str(uuid.uuid4()), id="unknown-object-id")]
)
def test_unknown_assignee_is_a_bad_parameter(world: World, system: User, assignee: str) -> None:
    with pytest.raises(BadParameter) as bad:
        services.role_assignment_create(actor=system, assignee=assignee, role=READER, scope=VAULT_A)
    assert bad.value.code == "PrincipalNotFound"
    assert not RoleAssignment.objects.exists()


def test_outsider_learns_nothing_about_assignees(world: World) -> None:
    """Authorization comes before the assignee is looked up."""
    outsider = person("mallory")
    error = refused(
        lambda: services.role_assignment_create(
            actor=outsider, assignee="nobody", role=READER, scope=VAULT_A
        ),
        "RoleAssignmentCreate",
    )
    assert "nobody" not in error.message


# --- role assignments: listing -------------------------------------------------------------------


@pytest.fixture
def spread(world: World) -> dict[str, RoleAssignment]:
    """Assignments at the group, vault-a, key1 (of vault-a), key2 and vault-b."""
    alice, bob = person("alice"), person("bob")
    person("carol")
    team("ops", alice, bob)
    return {
        "group": assign("ops", READER, RG),
        "vault": assign("alice", CRYPTO_USER, VAULT_A),
        "key": assign("bob", CRYPTO_OFFICER, KEY_1),
        "other_key": assign("carol", CRYPTO_USER, KEY_2),
        "sibling": assign("carol", READER, VAULT_B),
    }


def listed(actor: User, **filters: Any) -> set[uuid.UUID]:
    return {item.uid for item in services.role_assignment_list(actor=actor, **filters)}


def uids(spread: dict[str, RoleAssignment], *names: str) -> set[uuid.UUID]:
    return {spread[name].uid for name in names}


def test_list_at_a_scope_shows_only_that_scope(
    spread: dict[str, RoleAssignment], system: User
) -> None:
    assert listed(system, scope=VAULT_A) == uids(spread, "vault")
    assert listed(system, scope=RG) == uids(spread, "group")
    assert listed(system, scope=KEY_1.upper()) == uids(spread, "key")


def test_list_with_inherited_adds_the_scopes_above(
    spread: dict[str, RoleAssignment], system: User
) -> None:
    assert listed(system, scope=KEY_1, include_inherited=True) == uids(
        spread, "group", "vault", "key"
    )
    assert listed(system, scope=VAULT_A, include_inherited=True) == uids(spread, "group", "vault")
    assert listed(system, scope=VAULT_B, include_inherited=True) == uids(spread, "group", "sibling")


def test_list_by_assignee_and_by_role(spread: dict[str, RoleAssignment], system: User) -> None:
    assert listed(system) == uids(spread, *spread)
    assert listed(system, assignee="carol") == uids(spread, "other_key", "sibling")
    assert listed(system, assignee="ops") == uids(spread, "group")
    assert listed(system, role=READER) == uids(spread, "group", "sibling")
    assert listed(system, role=CRYPTO_USER, assignee="carol") == uids(spread, "other_key")
    assert listed(system, role=READER, scope=VAULT_A, include_inherited=True) == uids(
        spread, "group"
    )


def test_list_is_in_creation_order(spread: dict[str, RoleAssignment], system: User) -> None:
    found = [item.uid for item in services.role_assignment_list(actor=system)]
    assert found == [item.uid for item in spread.values()]


def test_list_shows_only_scopes_where_the_actor_may_read_assignments(
    spread: dict[str, RoleAssignment],
) -> None:
    dave = person("dave")
    assign("dave", READER, VAULT_A)
    dave_at_vault = RoleAssignment.objects.get(user=dave).uid
    # A reader of vault-a reads assignments at vault-a and its keys, not above or beside.
    assert listed(dave) == uids(spread, "vault", "key", "other_key") | {dave_at_vault}
    assert listed(dave, scope=KEY_1, include_inherited=True) == uids(spread, "vault", "key") | {
        dave_at_vault
    }
    refused(lambda: listed(dave, scope=VAULT_B), "RoleAssignmentList")
    refused(lambda: listed(dave, scope=RG), "RoleAssignmentList")


def test_crypto_user_reads_no_assignments_not_even_its_own(
    spread: dict[str, RoleAssignment],
) -> None:
    alice = User.objects.get(username="alice")
    # Alice holds Reader on the group through ops, which covers assignment reads; Erin
    # holds only Crypto User, whose role has no management actions.
    erin = person("erin")
    assign("erin", CRYPTO_USER, VAULT_A)
    assert listed(erin) == set()
    refused(lambda: listed(erin, scope=VAULT_A), "RoleAssignmentList")
    assert len(listed(alice)) == len(spread) + 1


def test_owner_of_the_group_reads_every_assignment_in_it(
    spread: dict[str, RoleAssignment], system: User
) -> None:
    services.resource_group_create(actor=system, name="rg-b", location="westeurope")
    person("zed")
    elsewhere = assign("zed", READER, "/resourceGroups/rg-b")
    owner = person("rg-owner")
    own = assign("rg-owner", OWNER, RG)
    assert listed(owner) == uids(spread, *spread) | {own.uid}
    assert elsewhere.uid not in listed(owner)


def test_outsider_lists_nothing(spread: dict[str, RoleAssignment]) -> None:
    assert listed(person("mallory")) == set()


# --- role assignments: deleting ------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["uid", "id"])
def test_delete_by_id_removes_the_record_and_the_grant(
    world: World, system: User, spelling: str
) -> None:
    alice = person("alice")
    created = assign("alice", CRYPTO_USER, VAULT_A)
    assert may(alice, Action.KEY_SIGN, world.key)
    assignment_id = (
        str(created.uid)
        if spelling == "uid"
        else f"{VAULT_A}/providers/Microsoft.Authorization/roleAssignments/{created.uid}"
    )
    deleted = services.role_assignment_delete(actor=system, assignment_id=assignment_id)
    assert deleted.uid == created.uid
    assert not RoleAssignment.objects.exists()
    assert not VaultUserObjectPermission.objects.exists()
    entry = last_entry()
    assert (entry.operation, entry.result, entry.vault_name) == (
        "RoleAssignmentDelete",
        "Success",
        "vault-a",
    )
    assert entry.target.endswith(f"vaults/vault-a/roleAssignments/{created.uid}")
    assert not may(alice, Action.KEY_SIGN, world.key)
    with pytest.raises(Forbidden):
        sign(alice)


def test_delete_by_assignee_role_and_scope(world: World, system: User) -> None:
    alice = person("alice")
    assign("alice", CRYPTO_USER, KEY_1)
    assign("alice", READER, KEY_1)
    services.role_assignment_delete(
        actor=system,
        assignee="alice",
        role=CRYPTO_USER.lower(),
        scope=f"{SUBSCRIPTION}/resourcegroups/RG-A/providers/Microsoft.KeyVault/vaults/vault-a/keys/KEY1",
    )
    assert [roles.ROLES_BY_ID[str(item.role_id)].name for item in RoleAssignment.objects.all()] == [
        READER
    ]
    assert not may(alice, Action.KEY_SIGN, world.key)
    assert may(alice, Action.KEY_GET, world.key)


def test_delete_keeps_the_same_right_held_another_way(world: World, system: User) -> None:
    alice = person("alice")
    team("ops", alice)
    direct = assign("alice", CRYPTO_USER, VAULT_A)
    assign("ops", CRYPTO_USER, RG)
    services.role_assignment_delete(actor=system, assignment_id=str(direct.uid))
    assert may(alice, Action.KEY_SIGN, world.key)
    sign(alice)


def test_delete_of_a_missing_assignment_is_not_found(world: World, system: User) -> None:
    person("alice")
    created = assign("alice", CRYPTO_USER, VAULT_A)
    services.role_assignment_delete(actor=system, assignment_id=str(created.uid))
    for call in (
        lambda: services.role_assignment_delete(actor=system, assignment_id=str(created.uid)),
        lambda: services.role_assignment_delete(actor=system, assignment_id=str(uuid.uuid4())),
        lambda: services.role_assignment_delete(actor=system, assignment_id="not-a-uuid"),
        lambda: services.role_assignment_delete(
            actor=system, assignee="alice", role=CRYPTO_USER, scope=VAULT_A
        ),
    ):
        with pytest.raises(NotFound) as missing:
            call()
        assert missing.value.code == "RoleAssignmentNotFound"


def test_delete_of_a_missing_assignment_is_forbidden_for_an_outsider(world: World) -> None:
    person("alice")
    outsider = person("mallory")
    refused(
        lambda: services.role_assignment_delete(actor=outsider, assignment_id=str(uuid.uuid4())),
        "RoleAssignmentDelete",
    )
    refused(
        lambda: services.role_assignment_delete(
            actor=outsider, assignee="alice", role=CRYPTO_USER, scope=VAULT_A
        ),
        "RoleAssignmentDelete",
    )


def test_delete_needs_assignment_id_or_assignee_role_and_scope(system: User) -> None:
    with pytest.raises(BadParameter):
        services.role_assignment_delete(actor=system, assignee="alice", role=READER)


# --- inheritance ---------------------------------------------------------------------------------


def test_group_assignment_covers_every_vault_and_key_in_it(world: World) -> None:
    alice = person("alice")
    assign("alice", CRYPTO_USER, RG)
    for key in (world.key, world.other_key, world.sibling_key):
        assert may(alice, Action.KEY_SIGN, key)
    sign(alice, "vault-b")


def test_vault_assignment_covers_its_keys_but_not_the_group_or_a_sibling(world: World) -> None:
    alice = person("alice")
    assign("alice", READER, VAULT_A)
    assert may(alice, Action.KEY_GET, world.key)
    assert may(alice, Action.KEY_GET, world.other_key)
    assert may(alice, Action.VAULT_READ, world.vault)
    assert not may(alice, Action.KEY_GET, world.sibling_key)
    assert not may(alice, Action.VAULT_READ, world.sibling)
    assert not may(alice, Action.RESOURCE_GROUP_READ, world.group)


def test_key_assignment_covers_only_that_key(world: World) -> None:
    alice = person("alice")
    assign("alice", CRYPTO_USER, KEY_1)
    assert may(alice, Action.KEY_SIGN, world.key)
    sign(alice)
    assert not may(alice, Action.KEY_SIGN, world.other_key)
    assert not may(alice, Action.KEY_SIGN, world.sibling_key)
    assert not may(alice, Action.KEY_LIST, world.vault)
    assert not may(alice, Action.KEY_CREATE, world.vault)
    with pytest.raises(Forbidden):
        sign(alice, key_name="key2")


def test_group_members_inherit_through_the_scopes_too(world: World) -> None:
    alice = person("alice")
    team("ops", alice)
    assign("ops", CRYPTO_OFFICER, RG)
    assert may(alice, Action.KEY_PURGE, world.sibling_key)
    alice.groups.clear()
    assert not may(alice, Action.KEY_PURGE, world.sibling_key)


# --- who may assign ------------------------------------------------------------------------------


@pytest.mark.parametrize("assigner_role", [OWNER, USER_ACCESS_ADMINISTRATOR])
def test_owner_and_access_administrator_assign_any_role_at_their_scope_and_below(
    world: World, assigner_role: str
) -> None:
    assigner = person("assigner")
    person("target")
    assign("assigner", assigner_role, VAULT_A)
    for role in roles.BUILT_IN_ROLES:
        for scope in (VAULT_A, KEY_1):
            created = assign("target", role.name, scope, actor=assigner)
            assert created.created_by == assigner
    assert RoleAssignment.objects.filter(user__username="target").count() == 2 * len(
        roles.BUILT_IN_ROLES
    )
    deleted = RoleAssignment.objects.filter(user__username="target").first()
    assert deleted is not None
    services.role_assignment_delete(actor=assigner, assignment_id=str(deleted.uid))


@pytest.mark.parametrize("assigner_role", [OWNER, USER_ACCESS_ADMINISTRATOR])
@pytest.mark.parametrize("scope", [RG, VAULT_B, f"{VAULT_B}/keys/key1"])
def test_owner_and_access_administrator_may_not_assign_above_or_beside(
    world: World, assigner_role: str, scope: str
) -> None:
    assigner = person("assigner")
    person("target")
    assign("assigner", assigner_role, VAULT_A)
    error = refused(lambda: assign("target", READER, scope, actor=assigner), "RoleAssignmentCreate")
    assert error.inner_code == "ForbiddenByRbac"
    assert "Microsoft.Authorization/roleAssignments/write" in error.message


@pytest.mark.parametrize("role", KEY_VAULT_DATA_ROLES)
def test_data_access_administrator_assigns_and_removes_the_key_vault_data_roles(
    world: World, role: str
) -> None:
    admin = person("data-admin")
    target = person("target")
    assign("data-admin", DATA_ACCESS_ADMINISTRATOR, VAULT_A)
    created = assign("target", role, KEY_1, actor=admin)
    assert RoleAssignment.objects.filter(pk=created.pk).exists()
    services.role_assignment_delete(actor=admin, assignee="target", role=role, scope=KEY_1)
    assert not RoleAssignment.objects.filter(user=target).exists()


@pytest.mark.parametrize(
    "role",
    [OWNER, CONTRIBUTOR, USER_ACCESS_ADMINISTRATOR, DATA_ACCESS_ADMINISTRATOR, RELEASE_USER],
)
def test_data_access_administrator_may_not_assign_other_roles(world: World, role: str) -> None:
    admin = person("data-admin")
    person("target")
    assign("data-admin", DATA_ACCESS_ADMINISTRATOR, VAULT_A)
    error = refused(lambda: assign("target", role, VAULT_A, actor=admin), "RoleAssignmentCreate")
    assert f"cannot assign or remove '{role}'" in error.message
    assert error.inner_code == "ForbiddenByRbac"


@pytest.mark.parametrize("role", [OWNER, CONTRIBUTOR, USER_ACCESS_ADMINISTRATOR])
def test_data_access_administrator_may_not_remove_other_roles(world: World, role: str) -> None:
    admin = person("data-admin")
    person("target")
    assign("data-admin", DATA_ACCESS_ADMINISTRATOR, VAULT_A)
    existing = assign("target", role, VAULT_A)
    refused(
        lambda: services.role_assignment_delete(actor=admin, assignment_id=str(existing.uid)),
        "RoleAssignmentDelete",
    )
    refused(
        lambda: services.role_assignment_delete(
            actor=admin, assignee="target", role=role, scope=VAULT_A
        ),
        "RoleAssignmentDelete",
    )


@pytest.mark.parametrize("role", [CONTRIBUTOR, CRYPTO_OFFICER, ADMINISTRATOR, READER, CRYPTO_USER])
def test_roles_without_assignment_rights_may_not_assign_or_remove(world: World, role: str) -> None:
    holder = person("holder")
    person("target")
    assign("holder", role, RG)
    existing = assign("target", READER, KEY_1)
    error = refused(
        lambda: assign("target", CRYPTO_USER, VAULT_A, actor=holder), "RoleAssignmentCreate"
    )
    assert "Microsoft.Authorization/roleAssignments/write" in error.message
    refused(
        lambda: services.role_assignment_delete(actor=holder, assignment_id=str(existing.uid)),
        "RoleAssignmentDelete",
    )


def test_superuser_assigns_anything_anywhere(world: World, owner: User) -> None:
    person("target")
    for role in roles.BUILT_IN_ROLES:
        assign("target", role.name, RG, actor=owner)
    assert RoleAssignment.objects.filter(created_by=owner).count() == len(roles.BUILT_IN_ROLES)


# --- access policies -----------------------------------------------------------------------------


def policy_of(vault: Vault, principal: User | Group) -> tuple[str, ...] | None:
    for entry in permissions.policy_entries(vault):
        if entry.principal == principal:
            return entry.permissions
    return None


def set_policy(actor: User, principal: str, *key_permissions: str, **options: Any) -> Any:
    return services.access_policy_set(
        actor=actor,
        vault_name=options.pop("vault_name", "vault-p"),
        principal=principal,
        key_permissions=list(key_permissions),
        **options,
    )


def test_set_policy_replaces_the_principals_permissions(world: World, system: User) -> None:
    alice = person("alice")
    set_policy(system, "alice", "get", "list", "sign")
    assert policy_of(world.policy_vault, alice) == ("get", "list", "sign")
    assert may(alice, Action.KEY_SIGN, world.policy_key)
    entry = set_policy(system, "alice", "verify")
    assert entry.permissions == ("verify",)
    assert policy_of(world.policy_vault, alice) == ("verify",)
    assert not may(alice, Action.KEY_SIGN, world.policy_key)
    assert may(alice, Action.KEY_VERIFY, world.policy_key)
    recorded = last_entry()
    assert (recorded.operation, recorded.result, recorded.vault_name, recorded.target) == (
        "VaultAccessPolicySet",
        "Success",
        "vault-p",
        "vaults/vault-p/accessPolicies/alice",
    )


def test_all_expands_to_every_key_permission(world: World, system: User) -> None:
    alice = person("alice")
    entry = set_policy(system, "alice", "ALL")
    assert entry.permissions == KEY_PERMISSIONS
    assert len(policy_of(world.policy_vault, alice) or ()) == 20
    assert all(may(alice, action, world.policy_key) for action in DATA_ACTIONS)


def test_permission_names_are_read_in_any_case(world: World, system: User) -> None:
    alice = person("alice")
    entry = set_policy(system, "alice", "SIGN", "wrapkey", "UnwrapKey", "GetRotationPolicy")
    assert entry.permissions == ("unwrapKey", "wrapKey", "sign", "getrotationpolicy")
    assert policy_of(world.policy_vault, alice) == entry.permissions
    assert may(alice, Action.KEY_WRAP, world.policy_key)


def test_unknown_permission_is_a_bad_parameter_listing_the_valid_ones(
    world: World, system: User
) -> None:
    alice = person("alice")
    set_policy(system, "alice", "get")
    before = grant_state()
    with pytest.raises(BadParameter) as bad:
        set_policy(system, "alice", "get", "exportKey")
    assert "exportKey" in bad.value.message
    for valid in ("all", *KEY_PERMISSIONS):
        assert valid in bad.value.message
    assert grant_state() == before
    assert policy_of(world.policy_vault, alice) == ("get",)


def test_empty_permissions_are_a_bad_parameter(world: World, system: User) -> None:
    person("alice")
    with pytest.raises(BadParameter):
        set_policy(system, "alice")
    assert permissions.policy_entries(world.policy_vault) == []


def test_delete_policy_removes_the_entry(world: World, system: User) -> None:
    alice = person("alice")
    set_policy(system, "alice", "sign")
    services.access_policy_delete(actor=system, vault_name="vault-p", principal="alice")
    assert policy_of(world.policy_vault, alice) is None
    assert not may(alice, Action.KEY_SIGN, world.policy_key)
    assert (last_entry().operation, last_entry().result) == ("VaultAccessPolicyDelete", "Success")


def test_delete_of_an_absent_policy_is_not_found(world: World, system: User) -> None:
    person("alice")
    with pytest.raises(NotFound) as missing:
        services.access_policy_delete(actor=system, vault_name="vault-p", principal="alice")
    assert missing.value.code == "AccessPolicyNotFound"


def test_list_policies(world: World, system: User) -> None:
    alice, bob = person("alice"), person("bob")
    app_user, app = application("billing")
    ops = team("ops")
    set_policy(system, "bob", "get")
    set_policy(system, "alice", "sign", "get")
    set_policy(system, str(app.client_id), "wrapKey", principal_kind="application")
    set_policy(system, "ops", "list", principal_kind="group")
    entries = services.access_policy_list(actor=system, vault_name="vault-p")
    assert len(entries) == 4
    assert {entry.principal: entry.permissions for entry in entries} == {
        alice: ("get", "sign"),
        app_user: ("wrapKey",),
        bob: ("get",),
        ops: ("list",),
    }
    assert services.access_policy_list(actor=system, vault_name="vault-a") == []


def test_list_policies_needs_vault_read(world: World, system: User) -> None:
    reader, outsider = person("reader"), person("mallory")
    assign("reader", READER, VAULT_P)
    assert services.access_policy_list(actor=reader, vault_name="vault-p") == []
    with pytest.raises(Forbidden):
        services.access_policy_list(actor=outsider, vault_name="vault-p")


def test_group_policy_grants_to_its_members(world: World, system: User) -> None:
    alice, bob = person("alice"), person("bob")
    team("ops", alice)
    set_policy(system, "ops", "sign", principal_kind="group")
    assert may(alice, Action.KEY_SIGN, world.policy_key)
    sign(alice, "vault-p")
    assert not may(bob, Action.KEY_SIGN, world.policy_key)
    alice.groups.clear()
    assert not may(alice, Action.KEY_SIGN, world.policy_key)


@pytest.mark.parametrize("role", [CRYPTO_OFFICER, ADMINISTRATOR, READER, DATA_ACCESS_ADMINISTRATOR])
def test_set_policy_needs_access_policy_write(world: World, role: str) -> None:
    holder = person("holder")
    assign("holder", role, VAULT_P)
    refused(lambda: set_policy(holder, "holder", "all"), "VaultAccessPolicySet")
    assert policy_of(world.policy_vault, holder) is None


@pytest.mark.slow
def test_access_policy_limit_is_1024_principals(world: World, system: User) -> None:
    vault = world.policy_vault
    holders = User.objects.bulk_create(User(username=f"holder{number}") for number in range(1024))
    for holder in holders:
        permissions.set_policy(vault, holder, ["get"])
    assert len(permissions.policy_entries(vault)) == 1024
    person("late")
    team("late-team")
    before = grant_state()
    for principal, kind in (("late", "user"), ("late-team", "group")):
        with pytest.raises(BadParameter) as full:
            set_policy(system, principal, "get", principal_kind=kind)
        assert full.value.code == "AccessPolicyLimitExceeded"
    assert grant_state() == before
    # An entry already there can still change at the limit.
    set_policy(system, "holder7", "get", "sign")
    assert policy_of(vault, holders[7]) == ("get", "sign")
    assert len(permissions.policy_entries(vault)) == 1024
    services.access_policy_delete(actor=system, vault_name="vault-p", principal="holder0")
    set_policy(system, "late", "get")
    assert len(permissions.policy_entries(vault)) == 1024


def test_contributor_can_grant_itself_data_access_through_a_policy(
    world: World, system: User
) -> None:
    """Key Vault Contributor has no data actions, but may write access policies: on an
    access-policy vault that is a path to the keys, and the log shows it."""
    carol = person("carol")
    assign("carol", CONTRIBUTOR, VAULT_P)
    refusal = refused(lambda: sign(carol, "vault-p"), "KeySign")
    assert refusal.inner_code == "AccessDenied"
    set_policy(carol, "carol", "sign")
    assert sign(carol, "vault-p").version.key.name == "key1"
    granted = ActivityEntry.objects.filter(operation="VaultAccessPolicySet").latest("seq")
    assert (
        granted.actor_name,
        granted.actor_oid,
        granted.result,
        granted.vault_name,
        granted.target,
    ) == ("carol", carol.oid, "Success", "vault-p", "vaults/vault-p/accessPolicies/carol")


# --- one model per vault -------------------------------------------------------------------------


def test_roles_give_no_key_access_on_an_access_policy_vault(world: World) -> None:
    alice = person("alice")
    assign("alice", ADMINISTRATOR, VAULT_P)
    assert RoleAssignment.objects.filter(user=alice).exists()
    for action in DATA_ACTIONS:
        assert not may(alice, action, world.policy_key), action
    with pytest.raises(Forbidden) as raised:
        sign(alice, "vault-p")
    assert raised.value.inner_code == "AccessDenied"
    # Management actions are decided by roles under both models.
    assert may(alice, Action.VAULT_READ, world.policy_vault)


def test_policies_give_no_key_access_on_an_rbac_vault(world: World, system: User) -> None:
    alice = person("alice")
    set_policy(system, "alice", "all", vault_name="vault-a")
    assert policy_of(world.vault, alice) == KEY_PERMISSIONS
    for action in DATA_ACTIONS:
        assert not may(alice, action, world.key), action
    with pytest.raises(Forbidden) as raised:
        sign(alice)
    assert raised.value.inner_code == "ForbiddenByRbac"


def test_owner_switches_the_model_and_it_takes_effect_at_once(world: World) -> None:
    owner = person("vault-owner")
    alice = person("alice")
    assign("vault-owner", OWNER, VAULT_A)
    assign("alice", CRYPTO_USER, VAULT_A)
    set_policy(owner, "alice", "get", vault_name="vault-a")
    with request_cache():
        assert may(alice, Action.KEY_SIGN, world.key)
        switched = services.vault_permission_model_set(
            actor=owner, name="vault-a", permission_model=Vault.PermissionModel.ACCESS_POLICY
        )
        assert switched.permission_model == Vault.PermissionModel.ACCESS_POLICY
        key = load_key("vault-a", "key1")
        assert not may(alice, Action.KEY_SIGN, key)
        assert may(alice, Action.KEY_GET, key)
        with pytest.raises(Forbidden) as raised:
            sign(alice)
        assert raised.value.inner_code == "AccessDenied"
        services.vault_permission_model_set(
            actor=owner, name="vault-a", permission_model=Vault.PermissionModel.RBAC
        )
        assert may(alice, Action.KEY_SIGN, load_key("vault-a", "key1"))
    # Both models' grants were kept throughout.
    assert RoleAssignment.objects.filter(user=alice).count() == 1
    assert policy_of(world.vault, alice) == ("get",)
    changes = ActivityEntry.objects.filter(operation="VaultAccessPolicyChanged").order_by("seq")
    assert [(entry.actor_name, entry.result, entry.vault_name) for entry in changes] == [
        ("vault-owner", "Success", "vault-a"),
        ("vault-owner", "Success", "vault-a"),
    ]


@pytest.mark.parametrize(
    ("role", "missing_action"),
    [
        (CONTRIBUTOR, "Microsoft.Authorization/roleAssignments/write"),
        (USER_ACCESS_ADMINISTRATOR, "Microsoft.KeyVault/vaults/write"),
        (DATA_ACCESS_ADMINISTRATOR, "Microsoft.KeyVault/vaults/write"),
        (ADMINISTRATOR, "Microsoft.KeyVault/vaults/write"),
    ],
)
def test_switching_the_model_needs_vault_write_and_assignment_write(
    world: World, role: str, missing_action: str
) -> None:
    holder = person("holder")
    assign("holder", role, VAULT_A)
    error = refused(
        lambda: services.vault_permission_model_set(
            actor=holder, name="vault-a", permission_model=Vault.PermissionModel.ACCESS_POLICY
        ),
        "VaultAccessPolicyChanged",
    )
    assert f"Action: '{missing_action}'" in error.message
    world.vault.refresh_from_db()
    assert world.vault.permission_model == Vault.PermissionModel.RBAC


@pytest.mark.parametrize("value", ["access-policy", "RBAC", "", "policies"])
def test_switching_to_a_bad_value_is_a_bad_parameter(world: World, value: str) -> None:
    owner = person("vault-owner")
    assign("vault-owner", OWNER, VAULT_A)
    before = grant_state()
    with pytest.raises(BadParameter):
        services.vault_permission_model_set(actor=owner, name="vault-a", permission_model=value)
    assert grant_state() == before
    assert (last_entry().operation, last_entry().result) == (
        "VaultAccessPolicyChanged",
        "BadParameter",
    )


# --- refusals ------------------------------------------------------------------------------------


def test_rbac_refusal_names_caller_action_resource_and_vault(world: World) -> None:
    alice = person("alice")
    with pytest.raises(Forbidden) as raised:
        sign(alice)
    error = raised.value
    assert (error.status, error.code, error.inner_code) == (403, "Forbidden", "ForbiddenByRbac")
    lines = error.message.split("\r\n")
    assert lines[0] == "Caller is not authorized to perform action on resource."
    assert f"oid={alice.oid}" in lines[1]
    assert "Action: 'Microsoft.KeyVault/vaults/keys/sign/action'" in lines
    resource = f"{SUBSCRIPTION}/resourcegroups/rg-a/providers/microsoft.keyvault/vaults/vault-a"
    assert f"Resource: '{resource}'" in lines
    assert "Vault: vault-a;location=westeurope" in lines
    assert "DecisionReason: 'DeniedWithNoValidRBAC' " in lines
    assert error.as_azure_error()["error"]["innererror"] == {"code": "ForbiddenByRbac"}  # type: ignore[index]


def test_rbac_refusal_reads_the_same_for_a_missing_key(world: World) -> None:
    alice = person("alice")
    messages = []
    for key_name in ("key1", "missing"):
        with pytest.raises(Forbidden) as raised:
            sign(alice, key_name=key_name)
        messages.append(raised.value.message)
    assert messages[0] == messages[1]


def test_refusal_names_an_application_by_client_and_object_id(world: World) -> None:
    app_user, app = application("billing")
    with pytest.raises(Forbidden) as raised:
        sign(app_user)
    assert f"appid={app.client_id};oid={app_user.oid}" in raised.value.message


def test_access_policy_refusal_names_the_missing_permission(world: World, system: User) -> None:
    app_user, app = application("billing")
    set_policy(system, str(app.client_id), "get", "verify")
    with pytest.raises(Forbidden) as raised:
        sign(app_user, "vault-p")
    error = raised.value
    assert (error.code, error.inner_code) == ("Forbidden", "AccessDenied")
    assert error.message.startswith(
        f"The user, group or application 'appid={app.client_id};oid={app_user.oid}' does not "
        "have keys sign permission on key vault 'vault-p;location=westeurope'."
    )


def test_a_fresh_person_may_do_nothing(world: World) -> None:
    fresh = person("fresh")
    for action in (*DATA_ACTIONS, *MANAGEMENT_RIGHTS):
        assert not may(fresh, action, world.key), action
        assert not may(fresh, action, world.policy_key), action
    assert not may(fresh, Action.RESOURCE_GROUP_READ, world.group)
    assert not may(fresh, Action.RESOURCE_GROUP_WRITE, permissions.DEPLOYMENT)
    with pytest.raises(Forbidden):
        sign(fresh)
    with pytest.raises(Forbidden):
        sign(fresh, "vault-p")
    with pytest.raises(Forbidden):
        services.vault_get(actor=fresh, name="vault-a")
    with pytest.raises(Forbidden):
        key_services.key_list(actor=fresh, vault_name="vault-a")


def test_inactive_person_is_refused_despite_roles_and_policies(world: World, system: User) -> None:
    alice = person("alice")
    team("ops", alice)
    assign("alice", ADMINISTRATOR, RG)
    assign("ops", OWNER, RG)
    set_policy(system, "alice", "all")
    sign(alice)
    alice.is_active = False
    alice.save(update_fields=["is_active"])
    for action in (*DATA_ACTIONS, *MANAGEMENT_RIGHTS):
        assert not may(alice, action, world.key), action
        assert not may(alice, action, world.policy_key), action
    with pytest.raises(Forbidden):
        sign(alice)
    with pytest.raises(Forbidden):
        sign(alice, "vault-p")
    assert list(selectors.vault_list(actor=alice)) == []
    with pytest.raises(Forbidden):
        services.role_assignment_create(actor=alice, assignee="alice", role=OWNER, scope=RG)


def test_disabled_application_is_refused_despite_its_role(world: World) -> None:
    app_user, app = application("billing")
    assign(str(app.client_id), CRYPTO_USER, VAULT_A)
    sign(app_user)
    app.enabled = False
    app.save(update_fields=["enabled"])
    app_user.is_active = False
    app_user.save(update_fields=["is_active"])
    with pytest.raises(Forbidden):
        sign(app_user)
    assert not may(app_user, Action.KEY_SIGN, world.key)


# --- effective access ----------------------------------------------------------------------------


def granted(right: permissions.Right) -> set[tuple[str, str, str, str]]:
    return {(grant.source, grant.role, grant.scope, grant.via) for grant in right.grants}


@pytest.fixture
def mixed(world: World, system: User) -> dict[str, RoleAssignment]:
    """Alice holds Crypto User on vault-a herself, Reader on the group through ops, Crypto
    Officer on key1 through keyops, Owner on vault-b, and an (ignored) policy on vault-a."""
    alice, bob = person("alice"), person("bob")
    team("ops", alice)
    team("keyops", alice)
    team("bystanders", bob)
    found = {
        "direct": assign("alice", CRYPTO_USER, VAULT_A),
        "group": assign("ops", READER, RG),
        "key": assign("keyops", CRYPTO_OFFICER, KEY_1),
        "sibling": assign("alice", OWNER, VAULT_B),
        "other": assign("bob", ADMINISTRATOR, VAULT_A),
        "bystanders": assign("bystanders", OWNER, RG),
    }
    set_policy(system, "alice", "all", vault_name="vault-a")
    return found


def test_effective_access_names_each_granting_assignment(
    mixed: dict[str, RoleAssignment], system: User
) -> None:
    found = services.effective_access(
        actor=system, vault_name="vault-a", principal="alice", key_name="KEY1"
    )
    assert found.principal == User.objects.get(username="alice")
    assert found.model == Vault.PermissionModel.RBAC
    rights = {right.action: right for right in found.rights}
    assert granted(rights[Action.KEY_SIGN]) == {
        ("role assignment", CRYPTO_USER, VAULT_A, ""),
        ("role assignment", CRYPTO_OFFICER, KEY_1, "keyops"),
    }
    assert granted(rights[Action.KEY_GET]) == {
        ("role assignment", READER, RG, "ops"),
        ("role assignment", CRYPTO_USER, VAULT_A, ""),
        ("role assignment", CRYPTO_OFFICER, KEY_1, "keyops"),
    }
    assert granted(rights[Action.KEY_PURGE]) == {
        ("role assignment", CRYPTO_OFFICER, KEY_1, "keyops")
    }
    assert granted(rights[Action.ROLE_ASSIGNMENT_READ]) == {
        ("role assignment", READER, RG, "ops"),
        ("role assignment", CRYPTO_OFFICER, KEY_1, "keyops"),
    }
    assert not rights[Action.ROLE_ASSIGNMENT_WRITE].allowed
    assert Action.VAULT_READ not in rights  # the vault's own rights are asked of the vault
    by_assignment = {grant.assignment for right in found.rights for grant in right.grants}
    assert by_assignment == {str(mixed[name].uid) for name in ("direct", "group", "key")}


def test_effective_access_lists_policies_of_an_rbac_vault_as_ignored(
    mixed: dict[str, RoleAssignment], system: User
) -> None:
    found = services.effective_access(actor=system, vault_name="vault-a", principal="alice")
    rights = {right.action: right for right in found.rights}
    for action in DATA_ACTIONS:
        assert [grant.source for grant in rights[action].ignored] == ["access policy"], action
    assert not rights[Action.KEY_RELEASE].allowed
    assert rights[Action.KEY_RELEASE].ignored
    for action in MANAGEMENT_RIGHTS:
        assert rights[action].ignored == ()


@pytest.mark.parametrize("target", ["key", "vault", "other_key"])
def test_effective_access_agrees_with_authorize(
    mixed: dict[str, RoleAssignment], world: World, system: User, target: str
) -> None:
    alice = User.objects.get(username="alice")
    obj: Any = {"key": world.key, "vault": world.vault, "other_key": world.other_key}[target]
    key_name = None if target == "vault" else obj.name
    found = services.effective_access(
        actor=system, vault_name="vault-a", principal="alice", key_name=key_name
    )
    rights = {right.action: right for right in found.rights}
    # On a key, the management rights shown are those over its role assignments.
    management = MANAGEMENT_RIGHTS if target == "vault" else ASSIGNMENT_RIGHTS
    assert set(rights) == {*DATA_ACTIONS, *management}
    for action in (*DATA_ACTIONS, *management):
        assert rights[action].allowed == may(alice, action, obj), action
    assert any(right.allowed for right in found.rights)
    assert not all(right.allowed for right in found.rights)


def test_effective_access_on_an_access_policy_vault(world: World, system: User) -> None:
    alice = person("alice")
    team("ops", alice)
    reader = assign("ops", READER, RG)
    assign("alice", CRYPTO_USER, VAULT_P)
    set_policy(system, "ops", "get", "sign", principal_kind="group")
    set_policy(system, "alice", "list")
    found = services.effective_access(
        actor=system, vault_name="vault-p", principal="alice", key_name="key1"
    )
    assert found.model == Vault.PermissionModel.ACCESS_POLICY
    rights = {right.action: right for right in found.rights}
    assert granted(rights[Action.KEY_SIGN]) == {("access policy", "", "", "ops")}
    assert {(grant.role, grant.via) for grant in rights[Action.KEY_SIGN].ignored} == {
        (CRYPTO_USER, "")
    }
    assert granted(rights[Action.KEY_LIST]) == {("access policy", "", "", "")}
    assert {(grant.role, grant.via) for grant in rights[Action.KEY_GET].ignored} == {
        (READER, "ops"),
        (CRYPTO_USER, ""),
    }
    assert not rights[Action.KEY_DECRYPT].allowed
    assert {grant.assignment for grant in rights[Action.ROLE_ASSIGNMENT_READ].grants} == {
        str(reader.uid)
    }
    for action in (*DATA_ACTIONS, *ASSIGNMENT_RIGHTS):
        assert rights[action].allowed == may(alice, action, world.policy_key), action


def test_anyone_may_ask_about_themselves_where_they_hold_a_right(
    mixed: dict[str, RoleAssignment], world: World
) -> None:
    erin = person("erin")
    assign("erin", CRYPTO_USER, KEY_1)
    assert not may(erin, Action.ROLE_ASSIGNMENT_READ, world.key)
    for principal in ("erin", str(erin.oid)):
        found = services.effective_access(
            actor=erin, vault_name="vault-a", principal=principal, key_name="key1"
        )
        rights = {right.action: right for right in found.rights}
        assert rights[Action.KEY_SIGN].allowed
        assert not rights[Action.KEY_DELETE].allowed
    # Nothing is held on the vault itself, so asking there is refused like any outsider.
    refused(
        lambda: services.effective_access(actor=erin, vault_name="vault-a", principal="erin"),
        "EffectiveAccessGet",
    )


def test_an_application_may_ask_about_itself_by_client_id(world: World) -> None:
    app_user, app = application("billing")
    assign(str(app.client_id), CRYPTO_USER, VAULT_A)
    found = services.effective_access(
        actor=app_user, vault_name="vault-a", principal=str(app.client_id)
    )
    assert found.principal == app_user
    assert {right.action for right in found.rights if right.allowed} == {
        Action.KEY_GET,
        Action.KEY_LIST,
        Action.KEY_UPDATE,
        Action.KEY_BACKUP,
        Action.KEY_ENCRYPT,
        Action.KEY_DECRYPT,
        Action.KEY_SIGN,
        Action.KEY_VERIFY,
        Action.KEY_WRAP,
        Action.KEY_UNWRAP,
    }


def test_asking_about_others_needs_assignment_read(
    mixed: dict[str, RoleAssignment], world: World
) -> None:
    erin = person("erin")
    assign("erin", CRYPTO_USER, VAULT_A)
    refused(
        lambda: services.effective_access(actor=erin, vault_name="vault-a", principal="alice"),
        "EffectiveAccessGet",
    )
    refused(
        lambda: services.effective_access(
            actor=erin, vault_name="vault-a", principal="alice", key_name="key1"
        ),
        "EffectiveAccessGet",
    )
    auditor = person("auditor")
    assign("auditor", READER, KEY_1)
    found = services.effective_access(
        actor=auditor, vault_name="vault-a", principal="alice", key_name="key1"
    )
    assert any(right.allowed for right in found.rights)
    refused(
        lambda: services.effective_access(actor=auditor, vault_name="vault-a", principal="alice"),
        "EffectiveAccessGet",
    )


def test_effective_access_of_a_group_is_a_bad_parameter(world: World, system: User) -> None:
    team("ops")
    with pytest.raises(BadParameter):
        services.effective_access(actor=system, vault_name="vault-a", principal="ops")


def test_effective_access_of_an_inactive_person_is_nothing(world: World, system: User) -> None:
    alice = person("alice")
    assign("alice", ADMINISTRATOR, VAULT_A)
    alice.is_active = False
    alice.save(update_fields=["is_active"])
    found = services.effective_access(actor=system, vault_name="vault-a", principal="alice")
    assert not any(right.allowed for right in found.rights)


# --- lists show only what the actor may read -----------------------------------------------------


def names(items: Any) -> set[str]:
    return {item.name for item in items}


def test_vault_list_shows_vaults_the_actor_may_read(world: World, system: User) -> None:
    reader, group_reader, crypto_user, policy_holder = (
        person("reader"),
        person("group-reader"),
        person("crypto-user"),
        person("policy-holder"),
    )
    assign("reader", READER, VAULT_A)
    assign("reader", READER, VAULT_P)
    assign("group-reader", READER, RG)
    assign("crypto-user", CRYPTO_USER, VAULT_A)
    set_policy(system, "policy-holder", "all")
    assert names(services.vault_list(actor=reader)) == {"vault-a", "vault-p"}
    assert names(services.vault_list(actor=group_reader)) == {"vault-a", "vault-b", "vault-p"}
    # Data-plane grants, of either model, do not reveal the vault in management lists.
    assert names(services.vault_list(actor=crypto_user)) == set()
    assert names(services.vault_list(actor=policy_holder)) == set()
    assert names(services.vault_list(actor=person("mallory"))) == set()
    assert names(services.vault_list(actor=system)) == {"vault-a", "vault-b", "vault-p"}


def test_deleted_vault_list_shows_vaults_the_actor_may_read(world: World, system: User) -> None:
    reader, crypto_user = person("reader"), person("crypto-user")
    assign("reader", READER, VAULT_A)
    assign("reader", READER, VAULT_P)
    assign("crypto-user", CRYPTO_USER, VAULT_A)
    for name in ("vault-a", "vault-b", "vault-p"):
        services.vault_delete(actor=system, name=name, force=True)
    assert names(services.vault_list_deleted(actor=reader)) == {"vault-a", "vault-p"}
    assert names(services.vault_list_deleted(actor=crypto_user)) == set()
    assert names(services.vault_list_deleted(actor=person("mallory"))) == set()
    assert names(services.vault_list(actor=reader)) == set()


def test_resource_group_list_shows_groups_the_actor_may_read(world: World, system: User) -> None:
    services.resource_group_create(actor=system, name="rg-b", location="westeurope")
    group_reader, vault_reader = person("group-reader"), person("vault-reader")
    assign("group-reader", READER, "/resourceGroups/rg-b")
    assign("vault-reader", OWNER, VAULT_A)
    assert names(services.resource_group_list(actor=group_reader)) == {"rg-b"}
    assert names(services.resource_group_list(actor=vault_reader)) == set()
    assert names(services.resource_group_list(actor=system)) == {"rg-a", "rg-b"}


def test_key_list_with_a_vault_grant_shows_every_key(world: World, system: User) -> None:
    reader, policy_reader = person("reader"), person("policy-reader")
    assign("reader", READER, VAULT_A)
    set_policy(system, "policy-reader", "list")
    assert names(key_services.key_list(actor=reader, vault_name="vault-a")) == {"key1", "key2"}
    assert names(key_services.key_list(actor=policy_reader, vault_name="vault-p")) == {"key1"}


def test_key_list_with_key_grants_shows_only_those_keys(world: World) -> None:
    alice = person("alice")
    assign("alice", READER, KEY_2)
    assert names(key_services.key_list(actor=alice, vault_name="vault-a")) == {"key2"}
    with pytest.raises(Forbidden):
        key_services.key_list(actor=alice, vault_name="vault-b")


def test_key_list_without_a_grant_is_forbidden(world: World, system: User) -> None:
    alice, signer = person("alice"), person("signer")
    assign("alice", CRYPTO_USER, VAULT_P)
    set_policy(system, "signer", "sign")
    set_policy(system, "signer", "list", vault_name="vault-a")
    for actor, vault_name in (
        (person("mallory"), "vault-a"),
        (alice, "vault-p"),
        (signer, "vault-p"),
        (signer, "vault-a"),
    ):
        refused(partial(key_services.key_list, actor=actor, vault_name=vault_name), "KeyList")


def test_deleted_key_list_follows_the_same_rule(world: World, system: User) -> None:
    alice, bob = person("alice"), person("bob")
    assign("alice", READER, KEY_1)
    assign("bob", CRYPTO_OFFICER, VAULT_A)
    for key_name in ("key1", "key2"):
        key_services.key_delete(actor=system, vault_name="vault-a", name=key_name)
    assert names(key_services.key_list_deleted(actor=alice, vault_name="vault-a")) == {"key1"}
    assert names(key_services.key_list_deleted(actor=bob, vault_name="vault-a")) == {
        "key1",
        "key2",
    }
    with pytest.raises(Forbidden):
        key_services.key_list_deleted(actor=person("mallory"), vault_name="vault-a")


def test_key_versions_follow_the_key_grant(world: World, system: User) -> None:
    alice = person("alice")
    assign("alice", READER, KEY_1)
    key_services.key_rotate(actor=system, vault_name="vault-a", name="key1")
    key_services.key_rotate(actor=system, vault_name="vault-a", name="key2")
    versions = key_services.key_list_versions(actor=alice, vault_name="vault-a", name="key1")
    assert len(versions) == 2
    refused(
        lambda: key_services.key_list_versions(actor=alice, vault_name="vault-a", name="key2"),
        "KeyListVersions",
    )


def test_key_versions_under_an_access_policy(world: World, system: User) -> None:
    alice = person("alice")
    set_policy(system, "alice", "list")
    assert len(key_services.key_list_versions(actor=alice, vault_name="vault-p", name="key1")) == 1
    set_policy(system, "alice", "get")
    with pytest.raises(Forbidden):
        key_services.key_list_versions(actor=alice, vault_name="vault-p", name="key1")


def entries_seen(actor: User) -> list[ActivityEntry]:
    return list(selectors.activity_list(actor=actor))


def test_activity_shows_readable_vaults_and_own_calls_only(world: World, system: User) -> None:
    dave = person("dave")
    assign("dave", READER, VAULT_A)
    with pytest.raises(Forbidden):
        services.vault_get(actor=dave, name="vault-b")
    services.vault_get(actor=dave, name="vault-a")
    seen = entries_seen(dave)
    # Its own refusal on vault-b is not given back: a refused call's entry can name what
    # was refused.
    assert {entry.vault_name for entry in seen} == {"vault-a"}
    assert any(
        entry.operation == "KeyCreate" and entry.actor_name == system.username for entry in seen
    )
    all_entries = ActivityEntry.objects.all()
    expected = {
        entry.seq
        for entry in all_entries
        if entry.vault_name == "vault-a"
        or (entry.actor_oid == dave.oid and entry.result != "Forbidden")
    }
    assert {entry.seq for entry in seen} == expected


def test_activity_of_the_group_is_for_group_readers(world: World, system: User) -> None:
    group_reader, vault_reader = person("group-reader"), person("vault-reader")
    assign("group-reader", READER, RG)
    assign("vault-reader", READER, VAULT_A)
    group_level = {
        entry.seq for entry in ActivityEntry.objects.filter(vault_name="", resource_group="rg-a")
    }
    assert group_level  # the group's creation, the assignments at its scope
    assert group_level <= {entry.seq for entry in entries_seen(group_reader)}
    assert not group_level & {entry.seq for entry in entries_seen(vault_reader)}


def test_activity_under_an_access_policy(world: World, system: User) -> None:
    """Reading the log is a management right: a policy holder sees only its own calls."""
    erin, frank = person("erin"), person("frank")
    set_policy(system, "erin", "all")
    assign("frank", READER, VAULT_P)
    sign(erin, "vault-p")
    erin_seen = entries_seen(erin)
    assert erin_seen
    assert {entry.actor_name for entry in erin_seen} == {"erin"}
    frank_seen = entries_seen(frank)
    assert {entry.vault_name for entry in frank_seen} == {"vault-p"}
    assert any(entry.operation == "KeySign" and entry.actor_name == "erin" for entry in frank_seen)
    assert any(entry.operation == "VaultAccessPolicySet" for entry in frank_seen)


def test_outsider_sees_nothing_not_even_its_refused_calls(world: World) -> None:
    mallory = person("mallory")
    assert entries_seen(mallory) == []
    with pytest.raises(Forbidden):
        sign(mallory)
    assert entries_seen(mallory) == []


# --- review follow-ups: what refusals and the log give away -------------------------------------


@pytest.mark.parametrize("key_name", ["key1", "no-such-key"])
def test_outsider_asking_about_itself_is_refused_alike_for_any_key(
    world: World, key_name: str
) -> None:
    mallory = person("mallory")
    messages = set()
    for target in (key_name, None):
        error = refused(
            lambda target=target: services.effective_access(  # type: ignore[misc]
                actor=mallory, vault_name="vault-a", principal="mallory", key_name=target
            ),
            "EffectiveAccessGet",
        )
        messages.add(error.message)
    assert len(messages) == 1
    assert "key1" not in messages.pop()


def test_asking_about_itself_works_where_a_right_is_held(world: World) -> None:
    carol = person("carol")
    assign("carol", CRYPTO_USER, KEY_1)
    found = services.effective_access(
        actor=carol, vault_name="vault-a", principal="carol", key_name="key1"
    )
    assert {right.action for right in found.rights if right.allowed} >= {Action.KEY_SIGN}
    # Not on the sibling key, and a missing one reads the same as a sibling.
    refusals = {
        refused(
            lambda name=name: services.effective_access(  # type: ignore[misc]
                actor=carol, vault_name="vault-a", principal="carol", key_name=name
            ),
            "EffectiveAccessGet",
        ).message
        for name in ("key2", "no-such-key")
    }
    assert len(refusals) == 1


def test_a_refused_calls_entry_is_not_given_back_to_its_caller(world: World) -> None:
    mallory = person("mallory")
    with pytest.raises(Forbidden):
        key_services.key_get(actor=mallory, vault_name="vault-a", name="KEY1")
    refusal = last_entry()
    assert refusal.result == "Forbidden" and refusal.actor_oid == mallory.oid
    assert refusal.seq not in {entry.seq for entry in entries_seen(mallory)}


def test_a_purged_vaults_history_stays_hidden_from_readers_of_a_new_vault_of_that_name(
    world: World, system: User
) -> None:
    services.vault_delete(actor=system, name="vault-b", force=True)
    services.vault_purge(actor=system, name="vault-b")
    old = {entry.seq for entry in ActivityEntry.objects.filter(vault_name="vault-b")}
    assert old
    services.vault_create(actor=system, name="vault-b", resource_group="rg-a")
    bob = person("bob")
    assign("bob", READER, VAULT_B)
    seen = {entry.seq for entry in entries_seen(bob) if entry.vault_name == "vault-b"}
    assert seen
    assert not seen & old


def test_data_access_administrator_cannot_switch_the_permission_model(world: World) -> None:
    eve = person("eve")
    assign("eve", CONTRIBUTOR, VAULT_A)
    assign("eve", DATA_ACCESS_ADMINISTRATOR, VAULT_A)
    refused(
        lambda: services.vault_permission_model_set(
            actor=eve, name="vault-a", permission_model="access_policy"
        ),
        "VaultAccessPolicyChanged",
    )
    assert Vault.objects.get(name="vault-a").permission_model == "rbac"


def test_effective_access_on_a_key_shows_no_vault_rights_from_a_key_role(
    world: World, system: User
) -> None:
    person("olive")
    assign("olive", OWNER, KEY_1)
    found = services.effective_access(
        actor=system, vault_name="vault-a", principal="olive", key_name="key1"
    )
    allowed = {right.action for right in found.rights if right.allowed}
    assert allowed == set(ASSIGNMENT_RIGHTS)
    with pytest.raises(Forbidden):
        services.vault_update(
            actor=User.objects.get(username="olive"), name="vault-a", tags={"a": "b"}
        )


def test_a_list_within_a_container_holds_only_that_container(world: World, system: User) -> None:
    everything = Key.objects.all()
    within = permissions.visible(system, everything, Action.KEY_LIST, within=world.vault)
    assert set(within) == {world.key, world.other_key}


def test_the_same_assignment_made_meanwhile_is_a_conflict(
    world: World, system: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two requests pass the duplicate check together; the second insert is the conflict."""
    person("alice")
    real = access._assignments_of
    calls: list[object] = []

    def racing(principal: Any) -> Any:
        calls.append(principal)
        if len(calls) == 1:
            # The other request commits between this request's check and its insert.
            assign("alice", CRYPTO_USER, VAULT_A)
            return RoleAssignment.objects.none()
        return real(principal)

    monkeypatch.setattr(access, "_assignments_of", racing)
    with pytest.raises(Conflict) as raised:
        services.role_assignment_create(
            actor=system, assignee="alice", role=CRYPTO_USER, scope=VAULT_A
        )
    assert raised.value.code == "RoleAssignmentExists"
    assert len(calls) == 3  # the check, the other request's check, the look after the insert
    assert RoleAssignment.objects.count() == 1
    assert (last_entry().operation, last_entry().result) == ("RoleAssignmentCreate", "Conflict")
