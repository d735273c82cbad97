"""The built-in role catalogue: Azure's role definitions for Key Vault, as data.

Names, ids, actions and data actions are Azure's (MicrosoftDocs built-in-roles/security.md
and general.md). Actions govern the management plane (resource groups, vaults, access
policies, role assignments); data actions govern keys. A role grants an action when one of
its patterns matches it and none of its "not" patterns does; `*` is a wildcard, and
`/*/` also matches a single `/`, so `Microsoft.KeyVault/vaults/*/read` covers reading the
vault itself, as Azure's Key Vault Reader does.
"""

import functools
import re
from dataclasses import dataclass, field

_READ_KEY_VAULTS = (
    "Microsoft.Authorization/*/read",
    "Microsoft.Insights/alertRules/*",
    "Microsoft.Resources/deployments/*",
    "Microsoft.Resources/subscriptions/resourceGroups/read",
    "Microsoft.Support/*",
    "Microsoft.KeyVault/checkNameAvailability/read",
    "Microsoft.KeyVault/deletedVaults/read",
    "Microsoft.KeyVault/locations/*/read",
    "Microsoft.KeyVault/vaults/*/read",
    "Microsoft.KeyVault/operations/read",
)
_KEYS = "Microsoft.KeyVault/vaults/keys"


@dataclass(frozen=True)
class RoleDefinition:
    id: str
    name: str
    description: str
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    data_actions: tuple[str, ...] = ()
    not_data_actions: tuple[str, ...] = ()
    # Azure attaches an ABAC condition to Key Vault Data Access Administrator: it may
    # assign and remove only these roles. None means any role.
    assignable_role_ids: frozenset[str] | None = field(default=None, compare=False)

    def codename(self, model_name: str) -> str:
        """The django-guardian permission that an assignment of this role at a scope of the
        model `model_name` is stored as: `<role>_<model>`, unique within the app, since
        guardian's lookups by app label cannot tell apart one codename on two models."""
        return re.sub(r"\W+", "_", self.name.lower()) + f"_{model_name}"

    def grants(self, action: str, *, data: bool) -> bool:
        """Whether this role allows `action` (a data action when `data`)."""
        return _grants(self, action, data)

    def may_assign(self, role: "RoleDefinition") -> bool:
        return self.assignable_role_ids is None or role.id in self.assignable_role_ids

    def as_dict(self) -> dict[str, object]:
        """The definition as `az role definition list` shows it."""
        return {
            "id": f"/providers/Microsoft.Authorization/roleDefinitions/{self.id}",
            "name": self.id,
            "roleName": self.name,
            "roleType": "BuiltInRole",
            "description": self.description,
            "type": "Microsoft.Authorization/roleDefinitions",
            "permissions": [
                {
                    "actions": list(self.actions),
                    "notActions": list(self.not_actions),
                    "dataActions": list(self.data_actions),
                    "notDataActions": list(self.not_data_actions),
                }
            ],
        }


@functools.cache
def _pattern(pattern: str) -> re.Pattern[str]:
    escaped = re.escape(pattern).replace(r"/\*/", "/(?:.*/)?").replace(r"\*", ".*")
    return re.compile(escaped, re.IGNORECASE)


def _matches(pattern: str, action: str) -> bool:
    return _pattern(pattern).fullmatch(action) is not None


@functools.cache
def _grants(role: RoleDefinition, action: str, data: bool) -> bool:
    # Cached: every authorization asks this of each role the caller holds, and the
    # catalogue and the actions are fixed.
    allowed, denied = (
        (role.data_actions, role.not_data_actions) if data else (role.actions, role.not_actions)
    )
    return any(_matches(p, action) for p in allowed) and not any(
        _matches(p, action) for p in denied
    )


KEY_VAULT_ADMINISTRATOR = "00482a5a-887f-4fb3-b363-3b7fe8e74483"
KEY_VAULT_READER = "21090545-7ca7-4776-b22c-e363652d74d2"
KEY_VAULT_CRYPTO_OFFICER = "14b46e9e-c2b7-41b4-b07b-48a6ebf60603"
KEY_VAULT_CRYPTO_USER = "12338af0-0e69-4776-bea7-57ae8d297424"
KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER = "e147488a-f6f5-4113-8e2d-b22465e65bf6"
KEY_VAULT_CRYPTO_SERVICE_RELEASE_USER = "08bbd89e-9f13-488c-ac41-acfcb10c90ab"

BUILT_IN_ROLES: tuple[RoleDefinition, ...] = (
    RoleDefinition(
        id="8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
        name="Owner",
        description="Grants full access to manage all resources, including the ability to "
        "assign roles in Azure RBAC.",
        actions=("*",),
    ),
    RoleDefinition(
        id="18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
        name="User Access Administrator",
        description="Lets you manage user access to Azure resources.",
        actions=("*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"),
    ),
    RoleDefinition(
        id=KEY_VAULT_ADMINISTRATOR,
        name="Key Vault Administrator",
        description="Perform all data plane operations on a key vault and all objects in it, "
        "including certificates, keys, and secrets. Cannot manage key vault resources or "
        "manage role assignments.",
        actions=_READ_KEY_VAULTS,
        data_actions=("Microsoft.KeyVault/vaults/*",),
    ),
    RoleDefinition(
        id="f25e0fa2-a7c8-4377-a976-54943a77a395",
        name="Key Vault Contributor",
        description="Manage key vaults, but does not allow you to assign roles in Azure RBAC, "
        "and does not allow you to access secrets, keys, or certificates.",
        actions=(
            "Microsoft.Authorization/*/read",
            "Microsoft.Insights/alertRules/*",
            "Microsoft.Resources/deployments/*",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            "Microsoft.Support/*",
            "Microsoft.KeyVault/*",
        ),
        not_actions=(
            "Microsoft.KeyVault/locations/deletedVaults/purge/action",
            "Microsoft.KeyVault/hsmPools/*",
            "Microsoft.KeyVault/managedHsms/*",
        ),
    ),
    RoleDefinition(
        id=KEY_VAULT_READER,
        name="Key Vault Reader",
        description="Read metadata of key vaults and its certificates, keys, and secrets. "
        "Cannot read sensitive values such as secret contents or key material.",
        actions=_READ_KEY_VAULTS,
        data_actions=(
            "Microsoft.KeyVault/vaults/*/read",
            "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
        ),
    ),
    RoleDefinition(
        id=KEY_VAULT_CRYPTO_OFFICER,
        name="Key Vault Crypto Officer",
        description="Perform any action on the keys of a key vault, except manage permissions.",
        actions=_READ_KEY_VAULTS,
        data_actions=(f"{_KEYS}/*", "Microsoft.KeyVault/vaults/keyrotationpolicies/*"),
    ),
    RoleDefinition(
        id=KEY_VAULT_CRYPTO_USER,
        name="Key Vault Crypto User",
        description="Perform cryptographic operations using keys.",
        data_actions=(
            f"{_KEYS}/read",
            f"{_KEYS}/update/action",
            f"{_KEYS}/backup/action",
            f"{_KEYS}/encrypt/action",
            f"{_KEYS}/decrypt/action",
            f"{_KEYS}/wrap/action",
            f"{_KEYS}/unwrap/action",
            f"{_KEYS}/sign/action",
            f"{_KEYS}/verify/action",
        ),
    ),
    RoleDefinition(
        id=KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER,
        name="Key Vault Crypto Service Encryption User",
        description="Read metadata of keys and perform wrap/unwrap operations.",
        actions=(
            "Microsoft.EventGrid/eventSubscriptions/write",
            "Microsoft.EventGrid/eventSubscriptions/read",
            "Microsoft.EventGrid/eventSubscriptions/delete",
        ),
        data_actions=(f"{_KEYS}/read", f"{_KEYS}/wrap/action", f"{_KEYS}/unwrap/action"),
    ),
    RoleDefinition(
        id=KEY_VAULT_CRYPTO_SERVICE_RELEASE_USER,
        name="Key Vault Crypto Service Release User",
        description="Release keys.",
        data_actions=(f"{_KEYS}/release/action",),
    ),
    RoleDefinition(
        id="8b54135c-b56d-4d72-a534-26097cfdc8d8",
        name="Key Vault Data Access Administrator",
        description="Manage access to Azure Key Vault by adding or removing role assignments "
        "for the Key Vault Administrator, Key Vault Crypto Officer, Key Vault Crypto Service "
        "Encryption User, Key Vault Crypto User and Key Vault Reader roles.",
        actions=(
            "Microsoft.Authorization/roleAssignments/write",
            "Microsoft.Authorization/roleAssignments/delete",
            "*/read",
            "Microsoft.Support/*",
        ),
        assignable_role_ids=frozenset(
            {
                KEY_VAULT_ADMINISTRATOR,
                KEY_VAULT_CRYPTO_OFFICER,
                KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER,
                KEY_VAULT_CRYPTO_USER,
                KEY_VAULT_READER,
            }
        ),
    ),
)

ROLES_BY_ID = {role.id: role for role in BUILT_IN_ROLES}


def role_named(name_or_id: str) -> RoleDefinition | None:
    """A built-in role by its name (ignoring case), its id, or its full definition id."""
    wanted = name_or_id.strip().rsplit("/", 1)[-1].lower()
    for role in BUILT_IN_ROLES:
        if wanted in (role.id, role.name.lower()):
            return role
    return None


def guardian_permissions(model_name: str) -> tuple[tuple[str, str], ...]:
    """The permissions a securable model declares so that roles can be assigned on it."""
    return tuple(
        (role.codename(model_name), f"Role assignment: {role.name}") for role in BUILT_IN_ROLES
    )
