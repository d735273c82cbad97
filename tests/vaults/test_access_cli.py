"""`kv role ...` and the access commands of `kv vault ...`, through call_command."""

import pytest
from django.conf import settings
from django.contrib.auth.models import Group

from accounts.models import Application, User
from tests.cli import kv, kv_fails
from tests.factories import UserFactory
from vaults.models import KEY_PERMISSIONS, ActivityEntry, RoleAssignment, Vault

pytestmark = pytest.mark.django_db

RG = "/resourceGroups/rg-a"
VAULT_A = f"{RG}/providers/Microsoft.KeyVault/vaults/vault-a"
KEY_1 = f"{VAULT_A}/keys/key1"
ASSIGNMENT_FIELDS = {
    "id",
    "name",
    "type",
    "scope",
    "roleDefinitionId",
    "roleDefinitionName",
    "principalId",
    "principalType",
    "principalName",
    "createdBy",
    "createdOn",
}
# Azure's built-in role ids (MicrosoftDocs built-in-roles), which clients hard-code.
AZURE_ROLE_IDS = {
    "Owner": "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    "User Access Administrator": "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
    "Key Vault Administrator": "00482a5a-887f-4fb3-b363-3b7fe8e74483",
    "Key Vault Contributor": "f25e0fa2-a7c8-4377-a976-54943a77a395",
    "Key Vault Reader": "21090545-7ca7-4776-b22c-e363652d74d2",
    "Key Vault Crypto Officer": "14b46e9e-c2b7-41b4-b07b-48a6ebf60603",
    "Key Vault Crypto User": "12338af0-0e69-4776-bea7-57ae8d297424",
    "Key Vault Crypto Service Encryption User": "e147488a-f6f5-4113-8e2d-b22465e65bf6",
    "Key Vault Crypto Service Release User": "08bbd89e-9f13-488c-ac41-acfcb10c90ab",
    "Key Vault Data Access Administrator": "8b54135c-b56d-4d72-a534-26097cfdc8d8",
}


@pytest.fixture
def deployment(db: None) -> None:
    """As the CLI's system principal: rg-a with vault-a (RBAC, key1) and vault-p (access
    policies, key1); people alice, bob and carol, group ops holding alice."""
    kv("group", "create", "--name", "rg-a", "--location", "westeurope")
    kv("vault", "create", "--name", "vault-a", "--resource-group", "rg-a")
    kv(
        "vault",
        "create",
        "--name",
        "vault-p",
        "--resource-group",
        "rg-a",
        "--enable-rbac-authorization",
        "false",
    )
    for vault_name in ("vault-a", "vault-p"):
        kv(
            "key",
            "create",
            "--vault-name",
            vault_name,
            "--name",
            "key1",
            "--kty",
            "oct",
            "--size",
            "256",
        )
    alice = UserFactory.create(username="alice")
    UserFactory.create(username="bob")
    UserFactory.create(username="carol")
    alice.groups.add(Group.objects.create(name="ops"))


def application(name: str) -> Application:
    user = UserFactory.create(username=name, kind=User.Kind.APPLICATION)
    return Application.objects.create(user=user, display_name=name)


# --- kv role definition list ---------------------------------------------------------------------


def test_role_definition_list_shows_the_ten_roles_with_azure_ids(db: None) -> None:
    listed = kv("role", "definition", "list")
    assert {item["roleName"]: item["name"] for item in listed} == AZURE_ROLE_IDS
    for item in listed:
        assert item["id"] == f"/providers/Microsoft.Authorization/roleDefinitions/{item['name']}"
        assert (item["type"], item["roleType"]) == (
            "Microsoft.Authorization/roleDefinitions",
            "BuiltInRole",
        )
        assert set(item["permissions"][0]) == {
            "actions",
            "notActions",
            "dataActions",
            "notDataActions",
        }
    by_name = {item["roleName"]: item for item in listed}
    assert by_name["Key Vault Crypto User"]["permissions"][0]["actions"] == []
    assert (
        "Microsoft.KeyVault/vaults/keys/sign/action"
        in (by_name["Key Vault Crypto User"]["permissions"][0]["dataActions"])
    )
    assert by_name["Owner"]["permissions"][0]["actions"] == ["*"]


def test_role_definition_list_as_a_table(db: None) -> None:
    table = kv("role", "definition", "list", "-o", "table")
    for name, role_id in AZURE_ROLE_IDS.items():
        assert name in table
        assert role_id in table


def test_role_definitions_are_readable_by_anyone(db: None) -> None:
    UserFactory.create(username="nobody")
    assert len(kv("role", "definition", "list", "--as", "nobody")) == 10


# --- kv role assignment --------------------------------------------------------------------------


def test_role_assignment_create_list_delete_round_trip(deployment: None) -> None:
    alice = User.objects.get(username="alice")
    created = kv(
        "role",
        "assignment",
        "create",
        "--assignee",
        "alice",
        "--role",
        "Key Vault Crypto User",
        "--scope",
        f"/subscriptions/{settings.KVCONSOLE_SUBSCRIPTION_ID}/resourcegroups/RG-A/providers/"
        "Microsoft.KeyVault/vaults/VAULT-A",
    )
    assert set(created) == ASSIGNMENT_FIELDS
    record = RoleAssignment.objects.get()
    assert created["name"] == str(record.uid)
    assert created["id"] == (
        f"{VAULT_A}/providers/Microsoft.Authorization/roleAssignments/{record.uid}"
    )
    assert created["type"] == "Microsoft.Authorization/roleAssignments"
    assert created["scope"] == VAULT_A
    assert created["roleDefinitionId"] == (
        "/providers/Microsoft.Authorization/roleDefinitions/12338af0-0e69-4776-bea7-57ae8d297424"
    )
    assert created["roleDefinitionName"] == "Key Vault Crypto User"
    assert (created["principalId"], created["principalType"], created["principalName"]) == (
        str(alice.oid),
        "User",
        "alice",
    )
    assert created["createdBy"].startswith("cli:")

    assert kv("role", "assignment", "list", "--assignee", "alice") == [created]
    assert kv("role", "assignment", "list", "--scope", VAULT_A) == [created]
    assert kv("role", "assignment", "list", "--scope", KEY_1) == []
    assert kv("role", "assignment", "list", "--scope", KEY_1, "--include-inherited") == [created]
    assert kv("role", "assignment", "list", "--role", "Key Vault Reader") == []

    assert kv("role", "assignment", "delete", "--ids", created["id"]) == ""
    assert kv("role", "assignment", "list") == []
    assert not RoleAssignment.objects.exists()
    operations = ActivityEntry.objects.filter(face="cli", operation__startswith="RoleAssignment")
    assert {entry.operation for entry in operations} == {
        "RoleAssignmentCreate",
        "RoleAssignmentList",
        "RoleAssignmentDelete",
    }


def test_role_assignment_shapes_groups_and_applications(deployment: None) -> None:
    app = application("billing")
    to_group = kv(
        "role", "assignment", "create", "--assignee", "ops", "--role", "Key Vault Reader",
        "--scope", RG,
    )  # fmt: skip
    assert (to_group["principalId"], to_group["principalType"], to_group["principalName"]) == (
        None,
        "Group",
        "ops",
    )
    to_app = kv(
        "role", "assignment", "create", "--assignee", str(app.client_id), "--role",
        "Key Vault Crypto User", "--scope", KEY_1,
    )  # fmt: skip
    assert (to_app["principalId"], to_app["principalType"], to_app["principalName"]) == (
        str(app.user.oid),
        "ServicePrincipal",
        "billing",
    )
    assert to_app["scope"] == KEY_1
    table = kv("role", "assignment", "list", "-o", "table")
    for text in ("ops", "Group", "billing", "ServicePrincipal", KEY_1, "Key Vault Reader"):
        assert text in table


def test_role_assignment_delete_by_assignee_role_and_scope(deployment: None) -> None:
    kv(
        "role", "assignment", "create", "--assignee", "bob", "--role", "Key Vault Reader",
        "--scope", KEY_1,
    )  # fmt: skip
    kv(
        "role", "assignment", "delete", "--assignee", "bob", "--role", "key vault reader",
        "--scope", KEY_1.upper(),
    )  # fmt: skip
    assert not RoleAssignment.objects.exists()


@pytest.mark.parametrize(
    ("args", "code", "returncode"),
    [
        (("--role", "Key Vault Reader", "--scope", "/resourceGroups"), "InvalidScope", 2),
        (("--role", "Vault Wizard", "--scope", RG), "RoleDefinitionDoesNotExist", 2),
        (
            ("--role", "Key Vault Reader", "--scope", "/resourceGroups/nope"),
            "ResourceGroupNotFound",
            3,
        ),
    ],
)
def test_role_assignment_create_errors_carry_the_azure_code(
    deployment: None, args: tuple[str, ...], code: str, returncode: int
) -> None:
    error = kv_fails("role", "assignment", "create", "--assignee", "bob", *args)
    assert str(error).startswith(f"({code}) ")
    assert error.returncode == returncode
    assert not RoleAssignment.objects.exists()


def test_duplicate_assignment_and_missing_deletion_fail(deployment: None) -> None:
    create = ("role", "assignment", "create", "--assignee", "bob", "--role", "Owner")
    kv(*create, "--scope", RG)
    duplicate = kv_fails(*create, "--scope", "/resourcegroups/RG-A")
    assert str(duplicate).startswith("(RoleAssignmentExists) ")
    assert duplicate.returncode == 5
    missing = kv_fails("role", "assignment", "delete", "--ids", "0" * 32)
    assert str(missing).startswith("(RoleAssignmentNotFound) ")
    assert missing.returncode == 3


def test_as_runs_the_command_as_that_principal(deployment: None) -> None:
    kv(
        "role", "assignment", "create", "--assignee", "bob", "--role", "Owner",
        "--scope", VAULT_A,
    )  # fmt: skip
    kv(
        "role", "assignment", "create", "--assignee", "alice", "--role",
        "Key Vault Crypto User", "--scope", VAULT_A,
    )  # fmt: skip
    by_bob = kv(
        "role", "assignment", "create", "--assignee", "carol", "--role", "Key Vault Reader",
        "--scope", KEY_1, "--as", "bob",
    )  # fmt: skip
    assert by_bob["createdBy"] == "bob"
    refused = kv_fails(
        "role", "assignment", "create", "--assignee", "carol", "--role", "Owner",
        "--scope", RG, "--as", "bob",
    )  # fmt: skip
    assert str(refused).startswith("(Forbidden) Caller is not authorized")
    assert refused.returncode == 4
    refused = kv_fails(
        "role", "assignment", "create", "--assignee", "carol", "--role", "Owner",
        "--scope", VAULT_A, "--as", "alice",
    )  # fmt: skip
    assert refused.returncode == 4
    # Alice's Crypto User role reads no assignments; Bob (Owner of the vault) reads them.
    assert kv("role", "assignment", "list", "--as", "alice") == []
    assert {item["principalName"] for item in kv("role", "assignment", "list", "--as", "bob")} == {
        "alice",
        "bob",
        "carol",
    }
    entry = ActivityEntry.objects.filter(actor_name="alice", result="Forbidden").get()
    assert (entry.operation, entry.face) == ("RoleAssignmentCreate", "cli")


def test_as_an_inactive_principal_is_refused(deployment: None) -> None:
    User.objects.filter(username="bob").update(is_active=False)
    error = kv_fails("role", "definition", "list", "--as", "bob")
    assert str(error).startswith("(PrincipalNotFound) ")
    assert error.returncode == 3


# --- kv vault set-policy / delete-policy / show --------------------------------------------------


def test_set_policy_for_user_group_and_application_shows_in_vault_show(deployment: None) -> None:
    app = application("billing")
    alice = User.objects.get(username="alice")
    by_upn = kv(
        "vault", "set-policy", "--name", "vault-p", "--upn", "alice",
        "--key-permissions", "Get", "sign", "LIST",
    )  # fmt: skip
    assert by_upn == {
        "tenantId": settings.KVCONSOLE_TENANT_ID,
        "objectId": str(alice.oid),
        "principalType": "User",
        "principalName": "alice",
        "permissions": {"keys": ["get", "list", "sign"]},
    }
    by_group = kv(
        "vault", "set-policy", "--name", "vault-p", "--group", "ops", "--key-permissions", "all"
    )
    assert by_group["permissions"]["keys"] == list(KEY_PERMISSIONS)
    assert (by_group["principalType"], by_group["objectId"]) == ("Group", None)
    by_spn = kv(
        "vault", "set-policy", "--name", "vault-p", "--spn", str(app.client_id),
        "--key-permissions", "wrapKey", "unwrapKey",
    )  # fmt: skip
    assert (by_spn["principalType"], by_spn["objectId"]) == ("ServicePrincipal", str(app.user.oid))
    by_object_id = kv(
        "vault", "set-policy", "--name", "vault-p", "--object-id", str(alice.oid),
        "--key-permissions", "get",
    )  # fmt: skip
    assert by_object_id["permissions"]["keys"] == ["get"]

    shown = kv("vault", "show", "--name", "vault-p")
    assert shown["properties"]["enableRbacAuthorization"] is False
    policies = {item["principalName"]: item for item in shown["properties"]["accessPolicies"]}
    assert set(policies) == {"alice", "ops", "billing"}
    assert policies["alice"]["permissions"] == {"keys": ["get"]}
    assert policies["billing"]["permissions"] == {"keys": ["unwrapKey", "wrapKey"]}
    assert kv("vault", "show", "--name", "vault-a")["properties"]["accessPolicies"] == []


def test_delete_policy(deployment: None) -> None:
    kv("vault", "set-policy", "--name", "vault-p", "--group", "ops", "--key-permissions", "get")
    assert kv("vault", "delete-policy", "--name", "vault-p", "--group", "ops") == ""
    assert kv("vault", "show", "--name", "vault-p")["properties"]["accessPolicies"] == []
    missing = kv_fails("vault", "delete-policy", "--name", "vault-p", "--group", "ops")
    assert str(missing).startswith("(AccessPolicyNotFound) ")
    assert missing.returncode == 3


def test_set_policy_errors(deployment: None) -> None:
    unknown = kv_fails(
        "vault", "set-policy", "--name", "vault-p", "--upn", "alice",
        "--key-permissions", "get", "export",
    )  # fmt: skip
    assert str(unknown).startswith("(BadParameter) Unknown key permission(s): export.")
    assert unknown.returncode == 2
    nobody = kv_fails(
        "vault", "set-policy", "--name", "vault-p", "--upn", "ops", "--key-permissions", "get"
    )
    assert str(nobody).startswith("(PrincipalNotFound) ")
    refused = kv_fails(
        "vault", "set-policy", "--name", "vault-p", "--upn", "alice",
        "--key-permissions", "all", "--as", "alice",
    )  # fmt: skip
    assert str(refused).startswith("(Forbidden) ")
    assert "Microsoft.KeyVault/vaults/accessPolicies/write" in str(refused)
    assert kv("vault", "show", "--name", "vault-p")["properties"]["accessPolicies"] == []


# --- kv vault update: the permission model -------------------------------------------------------


@pytest.mark.parametrize(
    ("to_policies", "back_to_rbac"),
    [
        (("--permission-model", "access-policy"), ("--permission-model", "rbac")),
        (("--enable-rbac-authorization", "false"), ("--enable-rbac-authorization", "true")),
    ],
)
def test_vault_update_switches_the_permission_model(
    deployment: None, to_policies: tuple[str, ...], back_to_rbac: tuple[str, ...]
) -> None:
    switched = kv("vault", "update", "--name", "vault-a", *to_policies)
    assert switched["properties"]["enableRbacAuthorization"] is False
    assert Vault.objects.get(name="vault-a").permission_model == "access_policy"
    back = kv("vault", "update", "--name", "vault-a", *back_to_rbac, "--tags", "env=prod")
    assert back["properties"]["enableRbacAuthorization"] is True
    assert back["tags"] == {"env": "prod"}
    changes = ActivityEntry.objects.filter(operation="VaultAccessPolicyChanged", face="cli")
    assert changes.count() == 2


def test_vault_update_refuses_both_model_options(deployment: None) -> None:
    error = kv_fails(
        "vault", "update", "--name", "vault-a", "--permission-model", "access-policy",
        "--enable-rbac-authorization", "false",
    )  # fmt: skip
    assert str(error).startswith("(BadParameter) ")
    assert error.returncode == 2
    assert Vault.objects.get(name="vault-a").permission_model == "rbac"


def test_vault_update_permission_model_as_other_principals(deployment: None) -> None:
    for person, role in (("alice", "Key Vault Contributor"), ("bob", "Owner")):
        kv("role", "assignment", "create", "--assignee", person, "--role", role, "--scope", VAULT_A)
    refused = kv_fails(
        "vault", "update", "--name", "vault-a", "--permission-model", "access-policy",
        "--as", "alice",
    )  # fmt: skip
    assert refused.returncode == 4
    assert "Microsoft.Authorization/roleAssignments/write" in str(refused)
    assert Vault.objects.get(name="vault-a").permission_model == "rbac"
    switched = kv(
        "vault", "update", "--name", "vault-a", "--permission-model", "access-policy",
        "--as", "bob",
    )  # fmt: skip
    assert switched["properties"]["enableRbacAuthorization"] is False


# --- kv vault show-access ------------------------------------------------------------------------


@pytest.fixture
def granted(deployment: None) -> None:
    kv(
        "role", "assignment", "create", "--assignee", "ops", "--role", "Key Vault Reader",
        "--scope", RG,
    )  # fmt: skip
    kv(
        "role", "assignment", "create", "--assignee", "alice", "--role",
        "Key Vault Crypto User", "--scope", KEY_1,
    )  # fmt: skip
    kv("vault", "set-policy", "--name", "vault-a", "--upn", "alice", "--key-permissions", "all")


def test_show_access_json(granted: None) -> None:
    alice = User.objects.get(username="alice")
    shown = kv("vault", "show-access", "--name", "vault-a", "--assignee", "alice", "--key", "key1")
    assert shown["principal"] == {
        "principalId": str(alice.oid),
        "principalType": "User",
        "principalName": "alice",
    }
    assert (shown["scope"], shown["permissionModel"]) == (KEY_1, "rbac")
    # Key reads appear twice (as the access-policy permissions get and list); on a key the
    # management rights shown are the three over its role assignments.
    assert len(shown["rights"]) == 23
    rights = {(item["action"], item["permission"]): item for item in shown["rights"]}
    assert len(rights) == 23
    sign = rights["Microsoft.KeyVault/vaults/keys/sign/action", "sign"]
    assert (sign["permission"], sign["allowed"]) == ("sign", True)
    assignment = RoleAssignment.objects.get(scope=KEY_1)
    assert sign["grantedBy"] == [
        {
            "source": "role assignment",
            "role": "Key Vault Crypto User",
            "scope": KEY_1,
            "assignment": str(assignment.uid),
        }
    ]
    assert sign["ignored"] == [{"source": "access policy"}]
    assert ("Microsoft.KeyVault/vaults/read", None) not in rights
    assignments_read = rights["Microsoft.Authorization/roleAssignments/read", None]
    assert assignments_read["allowed"] is True
    assert assignments_read["permission"] is None
    assert [(grant["role"], grant["via"]) for grant in assignments_read["grantedBy"]] == [
        ("Key Vault Reader", "ops")
    ]
    purge = rights["Microsoft.KeyVault/vaults/keys/purge/action", "purge"]
    assert (purge["allowed"], purge["grantedBy"]) == (False, [])


def test_show_access_table(granted: None) -> None:
    table = kv(
        "vault", "show-access", "--name", "vault-a", "--assignee", "alice", "--key", "key1",
        "-o", "table",
    )  # fmt: skip
    assert "Key Vault Crypto User at " + KEY_1 in table
    assert f"Key Vault Reader at {RG} (via group ops)" in table
    sign_row = next(line for line in table.splitlines() if "keys/sign/action" in line)
    assert "True" in sign_row
    purge_row = next(line for line in table.splitlines() if "keys/purge/action" in line)
    assert "False" in purge_row


def test_show_access_of_the_vault_without_the_key_grant(granted: None) -> None:
    shown = kv("vault", "show-access", "--name", "vault-a", "--assignee", "alice")
    assert shown["scope"] == VAULT_A
    rights = {(item["action"], item["permission"]): item for item in shown["rights"]}
    assert rights["Microsoft.KeyVault/vaults/keys/sign/action", "sign"]["allowed"] is False
    assert rights["Microsoft.KeyVault/vaults/keys/read", "get"]["allowed"] is True


def test_show_access_as_oneself_and_of_others(granted: None) -> None:
    # Bob holds nothing here, so even asking about himself is refused, as it is for anyone
    # with no right on the vault (that keeps vaults' models and keys unprobeable).
    own = kv_fails(
        "vault", "show-access", "--name", "vault-a", "--assignee", "bob", "--as", "bob",
    )  # fmt: skip
    assert str(own).startswith("(Forbidden) ")
    mine = kv(
        "vault", "show-access", "--name", "vault-a", "--assignee", "alice", "--as", "alice",
    )  # fmt: skip
    assert any(item["allowed"] for item in mine["rights"])
    refused = kv_fails(
        "vault", "show-access", "--name", "vault-a", "--assignee", "alice", "--as", "bob"
    )
    assert str(refused).startswith("(Forbidden) ")
    assert "Microsoft.Authorization/roleAssignments/read" in str(refused)
    # Alice reads assignments through ops' Reader role, so she may ask about Bob.
    about_bob = kv(
        "vault", "show-access", "--name", "vault-a", "--assignee", "bob", "--as", "alice"
    )
    assert about_bob["principal"]["principalName"] == "bob"
