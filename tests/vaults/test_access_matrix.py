"""The access matrix: every service operation for every built-in role, at every scope, under
both permission models, granted directly or through a group; and every access-policy key
permission, directly or through a group, under both models.

The expectations are written by hand from the reference (akv-keys-api.md §8: Azure's built-in
role definitions, scope inheritance, one permission model per vault) and the issue's mapping
of operations to actions. They are never computed from accounts/roles.py or
vaults/permissions.py, so that a mistake in the role catalogue or in `authorize` shows up here
as a mismatch instead of being copied into the expectation.

Grants are made through the real services (`role_assignment_create`, `access_policy_set`), so
the matrix also shows that what those services write is what authorization reads.
"""

import base64
import contextlib
import functools
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypedDict

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from django.contrib.auth.models import Group
from django.db import connection, transaction
from pytest_django import DjangoDbBlocker

from accounts.models import User
from keys import services as key_services
from keys.models import Key
from keys.protection import material_cache
from kvconsole.errors import Forbidden, ServiceError
from tests.factories import SystemPrincipalFactory, UserFactory
from vaults import services as vault_services
from vaults.models import (
    ActivityEntry,
    Vault,
)

pytestmark = pytest.mark.django_db

# --- the estate every case runs against ------------------------------------------------------

GROUP_NAME = "rg-matrix"
VAULT_NAME = "kv-matrix"
TARGET_KEY = "target-key"  # RSA, two versions: the key a key-scope assignment is made on
OTHER_KEY = "other-key"  # oct: another key in the same vault
DELETED_KEY = "deleted-key"  # oct, soft-deleted
RESTORED_KEY = "restored-key"  # only in a backup: the restore operation brings it in
NEW_KEY = "new-key"  # does not exist: created or imported by the operations
ACTOR = "matrix-user"  # the principal every case tries the operations as
TEAM = "matrix-team"  # a group the actor belongs to
BYSTANDER = "bystander"  # the principal that access-policy and role-assignment calls name

SCOPES = {
    "resource group": f"/resourceGroups/{GROUP_NAME}",
    "vault": f"/resourceGroups/{GROUP_NAME}/providers/Microsoft.KeyVault/vaults/{VAULT_NAME}",
    "key": f"/resourceGroups/{GROUP_NAME}/providers/Microsoft.KeyVault/vaults/{VAULT_NAME}"
    f"/keys/{TARGET_KEY}",
}
RBAC, ACCESS_POLICY = "rbac", "access_policy"

# The built-in roles, by the names Azure gives them.
OWNER = "Owner"
USER_ACCESS_ADMINISTRATOR = "User Access Administrator"
ADMINISTRATOR = "Key Vault Administrator"
CONTRIBUTOR = "Key Vault Contributor"
READER = "Key Vault Reader"
CRYPTO_OFFICER = "Key Vault Crypto Officer"
CRYPTO_USER = "Key Vault Crypto User"
ENCRYPTION_USER = "Key Vault Crypto Service Encryption User"
RELEASE_USER = "Key Vault Crypto Service Release User"
DATA_ACCESS_ADMINISTRATOR = "Key Vault Data Access Administrator"
ROLES = (
    OWNER,
    USER_ACCESS_ADMINISTRATOR,
    ADMINISTRATOR,
    CONTRIBUTOR,
    READER,
    CRYPTO_OFFICER,
    CRYPTO_USER,
    ENCRYPTION_USER,
    RELEASE_USER,
    DATA_ACCESS_ADMINISTRATOR,
)

PLAINTEXT = b"matrix plaintext"
DIGEST = hashlib.sha256(b"matrix message").digest()
CONTENT_KEY = bytes(range(32))
OCT_JWK = {"kty": "oct", "k": base64.urlsafe_b64encode(bytes(32)).rstrip(b"=").decode()}


class _Rollback(Exception):
    """Raised at the end of a savepoint to undo everything done inside it."""


def _b64url_int(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@functools.cache
def rsa_private_key() -> rsa.RSAPrivateKey:
    """The target key's material. RSA because the target must allow every operation (sign
    and encrypt alike), so that a key-scope assignment can be tried against all of them."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def rsa_jwk() -> dict[str, str]:
    numbers = rsa_private_key().private_numbers()
    parts = {
        "n": numbers.public_numbers.n,
        "e": numbers.public_numbers.e,
        "d": numbers.d,
        "p": numbers.p,
        "q": numbers.q,
        "dp": numbers.dmp1,
        "dq": numbers.dmq1,
        "qi": numbers.iqmp,
    }
    return {"kty": "RSA", **{name: _b64url_int(value) for name, value in parts.items()}}


@dataclass(frozen=True)
class RsaInputs:
    """What decrypt, verify and unwrap are given, made with `cryptography` directly so that
    an allowed call is also shown to compute the right thing."""

    ciphertext: bytes  # PLAINTEXT under RSA-OAEP-256
    signature: bytes  # RS256 over DIGEST
    wrapped_key: bytes  # CONTENT_KEY under RSA-OAEP-256


OAEP_256 = padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)
RS256 = (padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))


@functools.cache
def rsa_inputs() -> RsaInputs:
    key = rsa_private_key()
    return RsaInputs(
        ciphertext=key.public_key().encrypt(PLAINTEXT, OAEP_256),
        signature=key.sign(DIGEST, *RS256),
        wrapped_key=key.public_key().encrypt(CONTENT_KEY, OAEP_256),
    )


def rs256_valid(signature: bytes) -> bool:
    try:
        rsa_private_key().public_key().verify(signature, DIGEST, *RS256)
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True)
class Backups:
    target: bytes  # the target key, with both its versions
    restorable: bytes  # the key that the restore operation brings back
    first_version: str
    current_version: str


@pytest.fixture(scope="module")
def backups(django_db_setup: None, django_db_blocker: DjangoDbBlocker) -> Backups:
    """Backups made once and restored into each case's vault. Importing the RSA key
    validates it (about 45 ms a version); restoring a backup does not, which keeps the 200
    cases within a minute. Everything made here is rolled back."""
    made: list[Backups] = []
    with django_db_blocker.unblock(), contextlib.suppress(_Rollback), transaction.atomic():
        system = SystemPrincipalFactory.create()
        vault_services.resource_group_create(actor=system, name=GROUP_NAME, location="westeurope")
        vault_services.vault_create(actor=system, name=VAULT_NAME, resource_group=GROUP_NAME)
        first = key_services.key_import(
            actor=system, vault_name=VAULT_NAME, name=TARGET_KEY, jwk=rsa_jwk()
        )
        current = key_services.key_import(
            actor=system, vault_name=VAULT_NAME, name=TARGET_KEY, jwk=rsa_jwk()
        )
        key_services.key_create(
            actor=system, vault_name=VAULT_NAME, name=RESTORED_KEY, kty="oct", size=256
        )
        made.append(
            Backups(
                target=key_services.key_backup(
                    actor=system, vault_name=VAULT_NAME, name=TARGET_KEY
                ),
                restorable=key_services.key_backup(
                    actor=system, vault_name=VAULT_NAME, name=RESTORED_KEY
                ),
                first_version=first.version,
                current_version=current.version,
            )
        )
        raise _Rollback
    return made[0]


class KeyArguments(TypedDict):
    actor: User
    vault_name: str
    name: str


@dataclass(frozen=True)
class Estate:
    system: User
    actor: User
    model: str
    backups: Backups


def build_estate(system: User, model: str, backups: Backups) -> Estate:
    """A resource group, a vault under `model` holding the target key, another key and a
    soft-deleted one, all made by the system principal; and the actor (a member of TEAM) and
    a bystander, neither holding anything yet."""
    vault_services.resource_group_create(actor=system, name=GROUP_NAME, location="westeurope")
    vault_services.vault_create(
        actor=system, name=VAULT_NAME, resource_group=GROUP_NAME, permission_model=model
    )
    key_services.key_restore(actor=system, vault_name=VAULT_NAME, blob=backups.target)
    for name in (OTHER_KEY, DELETED_KEY):
        key_services.key_create(actor=system, vault_name=VAULT_NAME, name=name, kty="oct", size=256)
    key_services.key_delete(actor=system, vault_name=VAULT_NAME, name=DELETED_KEY)
    actor = UserFactory.create(username=ACTOR)
    actor.groups.add(Group.objects.create(name=TEAM))
    UserFactory.create(username=BYSTANDER)
    return Estate(system=system, actor=actor, model=model, backups=backups)


# --- the operations ----------------------------------------------------------------------------
# Each returns None, or for a list the names it shows, and asserts what it can of the result:
# an allowed call must also work, not merely get past authorization.


def _key(estate: Estate, name: str = TARGET_KEY) -> KeyArguments:
    return {"actor": estate.actor, "vault_name": VAULT_NAME, "name": name}


def key_create_new(estate: Estate) -> None:
    created = key_services.key_create(**_key(estate, NEW_KEY), kty="oct", size=256)
    assert created.key.name == NEW_KEY


def key_create_version(estate: Estate) -> None:
    # EC: a new version of any type is cheap, and RSA generation is not.
    created = key_services.key_create(**_key(estate), kty="EC")
    assert created.version not in (estate.backups.first_version, estate.backups.current_version)


def key_import_new(estate: Estate) -> None:
    imported = key_services.key_import(**_key(estate, NEW_KEY), jwk=OCT_JWK)
    assert imported.kty == "oct"


def key_get(estate: Estate) -> None:
    assert key_services.key_get(**_key(estate)).version == estate.backups.current_version


def key_get_other(estate: Estate) -> None:
    assert key_services.key_get(**_key(estate, OTHER_KEY)).kty == "oct"


def key_list(estate: Estate) -> list[str]:
    keys = key_services.key_list(actor=estate.actor, vault_name=VAULT_NAME)
    return sorted(key.name for key in keys)


def key_list_versions(estate: Estate) -> None:
    versions = key_services.key_list_versions(**_key(estate))
    assert {version.version for version in versions} == {
        estate.backups.first_version,
        estate.backups.current_version,
    }


def key_update(estate: Estate, name: str = TARGET_KEY) -> None:
    updated = key_services.key_update(**_key(estate, name), tags={"touched": "yes"})
    assert updated.tags == {"touched": "yes"}


def key_rotate(estate: Estate) -> None:
    rotated = key_services.key_rotate(**_key(estate))
    assert (rotated.kty, rotated.size) == ("RSA", 2048)


def key_revert(estate: Estate) -> None:
    reverted = key_services.key_revert(**_key(estate), version=estate.backups.first_version)
    assert reverted.source_version == estate.backups.first_version


def key_delete(estate: Estate, name: str = TARGET_KEY) -> None:
    assert key_services.key_delete(**_key(estate, name)).deleted_at is not None


def key_get_deleted(estate: Estate, name: str = DELETED_KEY) -> None:
    assert key_services.key_get_deleted(**_key(estate, name)).name == name


def key_list_deleted(estate: Estate) -> list[str]:
    keys = key_services.key_list_deleted(actor=estate.actor, vault_name=VAULT_NAME)
    return sorted(key.name for key in keys)


def key_recover(estate: Estate, name: str = DELETED_KEY) -> None:
    recovered = key_services.key_recover(**_key(estate, name))
    assert recovered.key.deleted_at is None


def key_purge(estate: Estate, name: str = DELETED_KEY) -> None:
    key_services.key_purge(**_key(estate, name))
    assert not Key.objects.filter(vault__name=VAULT_NAME, name=name).exists()


def key_backup(estate: Estate) -> None:
    assert key_services.key_backup(**_key(estate))


def key_rotation_policy_get(estate: Estate) -> None:
    shown = key_services.key_rotation_policy_get(**_key(estate))
    assert [action.action for action in shown.policy.actions] == ["Notify"]


def key_rotation_policy_set(estate: Estate) -> None:
    shown = key_services.key_rotation_policy_set(
        **_key(estate),
        lifetime_actions=[{"trigger": {"timeAfterCreate": "P30D"}, "action": {"type": "Rotate"}}],
        expiry_time="P90D",
    )
    assert shown.policy.expiry_time == "P90D"


def random_bytes(estate: Estate) -> None:
    assert len(key_services.random_bytes(actor=estate.actor, vault_name=VAULT_NAME, count=16)) == 16


def key_restore(estate: Estate) -> None:
    restored = key_services.key_restore(
        actor=estate.actor, vault_name=VAULT_NAME, blob=estate.backups.restorable
    )
    assert restored.key.name == RESTORED_KEY


def key_encrypt(estate: Estate) -> None:
    result = key_services.key_encrypt(**_key(estate), algorithm="RSA-OAEP-256", plaintext=PLAINTEXT)
    assert rsa_private_key().decrypt(result.value, OAEP_256) == PLAINTEXT


def key_encrypt_other(estate: Estate) -> None:
    result = key_services.key_encrypt(
        **_key(estate, OTHER_KEY), algorithm="A256GCM", plaintext=PLAINTEXT
    )
    assert result.iv and result.tag


def key_decrypt(estate: Estate) -> None:
    result = key_services.key_decrypt(
        **_key(estate),
        algorithm="RSA-OAEP-256",
        ciphertext=rsa_inputs().ciphertext,
    )
    assert result.value == PLAINTEXT


def key_sign(estate: Estate) -> None:
    assert rs256_valid(
        key_services.key_sign(**_key(estate), algorithm="RS256", digest=DIGEST).value
    )


def key_verify(estate: Estate) -> None:
    result = key_services.key_verify(
        **_key(estate),
        algorithm="RS256",
        digest=DIGEST,
        signature=rsa_inputs().signature,
    )
    assert result.valid


def key_wrap(estate: Estate) -> None:
    result = key_services.key_wrap(**_key(estate), algorithm="RSA-OAEP-256", key=CONTENT_KEY)
    assert rsa_private_key().decrypt(result.value, OAEP_256) == CONTENT_KEY


def key_unwrap(estate: Estate) -> None:
    result = key_services.key_unwrap(
        **_key(estate),
        algorithm="RSA-OAEP-256",
        encrypted_key=rsa_inputs().wrapped_key,
    )
    assert result.value == CONTENT_KEY


def delete_target_key(estate: Estate) -> None:
    key_services.key_delete(actor=estate.system, vault_name=VAULT_NAME, name=TARGET_KEY)


def delete_vault(estate: Estate) -> None:
    vault_services.vault_delete(actor=estate.system, name=VAULT_NAME, force=True)


def resource_group_get(estate: Estate) -> None:
    assert vault_services.resource_group_get(actor=estate.actor, name=GROUP_NAME).pk


def resource_group_update(estate: Estate) -> None:
    group = vault_services.resource_group_update(
        actor=estate.actor, name=GROUP_NAME, tags={"touched": "yes"}
    )
    assert group.tags == {"touched": "yes"}


def vault_get(estate: Estate) -> None:
    assert vault_services.vault_get(actor=estate.actor, name=VAULT_NAME).name == VAULT_NAME


def vault_update(estate: Estate) -> None:
    vault = vault_services.vault_update(
        actor=estate.actor, name=VAULT_NAME, tags={"touched": "yes"}
    )
    assert vault.tags == {"touched": "yes"}


def vault_delete(estate: Estate) -> None:
    # Forced: the vault holds keys, and an unforced delete would stop at a Conflict.
    vault = vault_services.vault_delete(actor=estate.actor, name=VAULT_NAME, force=True)
    assert vault.deleted_at is not None


def vault_recover(estate: Estate) -> None:
    assert vault_services.vault_recover(actor=estate.actor, name=VAULT_NAME).deleted_at is None


def vault_purge(estate: Estate) -> None:
    vault_services.vault_purge(actor=estate.actor, name=VAULT_NAME)
    assert not Vault.objects.filter(name=VAULT_NAME).exists()


def vault_list_deleted(estate: Estate) -> list[str]:
    return sorted(vault.name for vault in vault_services.vault_list_deleted(actor=estate.actor))


def access_policy_set(estate: Estate) -> None:
    entry = vault_services.access_policy_set(
        actor=estate.actor,
        vault_name=VAULT_NAME,
        principal=BYSTANDER,
        principal_kind="user",
        key_permissions=["get"],
    )
    assert entry.permissions == ("get",)


def assign(role: str, scope: str) -> Callable[[Estate], None]:
    def call(estate: Estate) -> None:
        assignment = vault_services.role_assignment_create(
            actor=estate.actor,
            assignee=BYSTANDER,
            assignee_kind="user",
            role=role,
            scope=SCOPES[scope],
        )
        assert assignment.pk

    return call


def assign_bystander_at_vault(estate: Estate) -> None:
    vault_services.role_assignment_create(
        actor=estate.system,
        assignee=BYSTANDER,
        assignee_kind="user",
        role=READER,
        scope=SCOPES["vault"],
    )


def role_assignment_list(estate: Estate) -> None:
    assignments = vault_services.role_assignment_list(actor=estate.actor, scope=SCOPES["vault"])
    assert BYSTANDER in {assignment.user.username for assignment in assignments if assignment.user}


def permission_model_switch(estate: Estate) -> None:
    other = ACCESS_POLICY if estate.model == RBAC else RBAC
    vault = vault_services.vault_permission_model_set(
        actor=estate.actor, name=VAULT_NAME, permission_model=other
    )
    assert vault.permission_model == other


# --- the expectation table, by hand -------------------------------------------------------------

# Data actions (Microsoft.KeyVault/vaults/keys/...). Owner (actions `*`), User Access
# Administrator, Key Vault Contributor and Data Access Administrator hold none: under RBAC
# they cannot touch a key.
#   keys/read: Administrator (`*`), Reader (`*/read`), Crypto Officer (`keys/*`), Crypto User
#   and Crypto Service Encryption User (`keys/read`).
READS_KEYS = frozenset({ADMINISTRATOR, READER, CRYPTO_OFFICER, CRYPTO_USER, ENCRYPTION_USER})
#   create, import, rotate, delete, recover, purge, restore: only `*` and `keys/*`.
MANAGES_KEYS = frozenset({ADMINISTRATOR, CRYPTO_OFFICER})
#   update, backup, encrypt, decrypt, sign, verify: the Crypto User's list adds these.
USES_KEYS = MANAGES_KEYS | {CRYPTO_USER}
#   wrap, unwrap: the Crypto Service Encryption User's list adds these.
WRAPS_KEYS = USES_KEYS | {ENCRYPTION_USER}
# The Release User holds only keys/release/action, which no service here performs: it may
# do nothing at all.
# Rotation policies (Microsoft.KeyVault/vaults/keyrotationpolicies/...): read by `*`, `*/read`
# and the Crypto Officer's `keyrotationpolicies/*`; written by `*` and the Crypto Officer.
READS_POLICIES = frozenset({ADMINISTRATOR, READER, CRYPTO_OFFICER})
WRITES_POLICIES = frozenset({ADMINISTRATOR, CRYPTO_OFFICER})

# Management actions.
#   Reading vaults, deleted vaults and resource groups: `*` (Owner), `*/read` (User Access
#   Administrator, Data Access Administrator), Microsoft.KeyVault/* and resourceGroups/read
#   (Contributor), and the Key Vault readers' action list (Administrator, Reader, Crypto
#   Officer: vaults/*/read, deletedVaults/read, resourceGroups/read). The Crypto User and the
#   two service users have no management actions (the Encryption User's are Event Grid's).
READS_VAULTS = frozenset(
    {
        OWNER,
        USER_ACCESS_ADMINISTRATOR,
        ADMINISTRATOR,
        CONTRIBUTOR,
        READER,
        CRYPTO_OFFICER,
        DATA_ACCESS_ADMINISTRATOR,
    }
)
#   Reading role assignments: Microsoft.Authorization/*/read is in every one of those lists.
READS_ASSIGNMENTS = READS_VAULTS
#   Writing, deleting and recovering a vault, and its access policies: `*` and
#   Microsoft.KeyVault/*.
WRITES_VAULTS = frozenset({OWNER, CONTRIBUTOR})
#   Purging a deleted vault: the Contributor's notActions take deletedVaults/purge away.
PURGES_VAULTS = frozenset({OWNER})
#   Writing a resource group: only `*`; Microsoft.KeyVault/* does not reach Microsoft.Resources.
WRITES_GROUPS = frozenset({OWNER})
#   roleAssignments/write: `*`, Microsoft.Authorization/*, and the Data Access Administrator,
#   whose condition limits it to the Key Vault data roles.
ASSIGNS_DATA_ROLES = frozenset({OWNER, USER_ACCESS_ADMINISTRATOR, DATA_ACCESS_ADMINISTRATOR})
ASSIGNS_ANY_ROLE = frozenset({OWNER, USER_ACCESS_ADMINISTRATOR})
#   The permission model is a property of the vault (vaults/write) whose change also needs
#   roleAssignments/write (§8); only Owner holds both.
SWITCHES_MODEL = frozenset({OWNER})

# What an operation acts on, which decides the scopes whose assignments reach it: an
# assignment applies at its scope and everything below it (§8, "Assignments inherit
# downward").
ON_GROUP, ON_VAULT, ON_TARGET, ON_OTHER = "resource group", "vault", "target key", "other key"
REACHES = {
    "resource group": frozenset({ON_GROUP, ON_VAULT, ON_TARGET, ON_OTHER}),
    "vault": frozenset({ON_VAULT, ON_TARGET, ON_OTHER}),
    "key": frozenset({ON_TARGET}),
}
# An access policy is an entry on the vault: it covers the vault's keys.
POLICY_REACH = frozenset({ON_VAULT, ON_TARGET, ON_OTHER})
NOTHING: frozenset[str] = frozenset()

ALLOWED = "allowed"


def denied(inner_code: str) -> str:
    return f"denied ({inner_code})"


def listed(names: list[str]) -> str:
    return f"lists [{', '.join(names)}]"


@dataclass(frozen=True)
class Op:
    name: str
    # The activity log's operation name for the call (Azure's operationName).
    log: str
    call: Callable[[Estate], list[str] | None]
    on: str
    roles: frozenset[str]
    # The access-policy key permission for a data operation; None for management ones,
    # which roles decide under either model.
    policy: str | None = None
    # Run by the system principal before the call, e.g. deleting what is to be recovered.
    prepare: Callable[[Estate], None] | None = None
    # For a list: each name it can show, with what a grant must reach to show it.
    shows: tuple[tuple[str, str], ...] = ()
    # A key list in a vault where the caller can see nothing is refused, as Azure refuses
    # it; the deleted-vault list spans the deployment and is only filtered.
    refused_when_empty: bool = True

    def expect(self, reached: frozenset[str], inner_code: str) -> str:
        if self.shows:
            visible = [name for name, on in self.shows if on in reached]
            if visible or not self.refused_when_empty:
                return listed(visible)
            return denied(inner_code)
        return ALLOWED if self.on in reached else denied(inner_code)


def _on(name: str, call: Callable[[Estate, str], None]) -> Callable[[Estate], None]:
    return lambda estate: call(estate, name)


OPERATIONS = (
    # Keys. The policy column is the mapping: get for reading one key (also a
    # deleted one), list for every list, rotate for rotate and revert.
    Op("key create", "KeyCreate", key_create_new, ON_VAULT, MANAGES_KEYS, "create"),
    Op(
        "key create (new version of the target)",
        "KeyCreate",
        key_create_version,
        ON_TARGET,
        MANAGES_KEYS,
        "create",
    ),
    Op("key import", "KeyImport", key_import_new, ON_VAULT, MANAGES_KEYS, "import"),
    Op("key get", "KeyGet", key_get, ON_TARGET, READS_KEYS, "get"),
    Op("key get (other key)", "KeyGet", key_get_other, ON_OTHER, READS_KEYS, "get"),
    Op(
        "key list",
        "KeyList",
        key_list,
        ON_VAULT,
        READS_KEYS,
        "list",
        # A reader at one key's scope sees that key and no other. The reference does not
        # say whether Azure would rather refuse the list; this is the project's choice.
        shows=((OTHER_KEY, ON_OTHER), (TARGET_KEY, ON_TARGET)),
    ),
    Op("key list versions", "KeyListVersions", key_list_versions, ON_TARGET, READS_KEYS, "list"),
    Op("key update", "KeyUpdate", key_update, ON_TARGET, USES_KEYS, "update"),
    Op(
        "key update (other key)",
        "KeyUpdate",
        _on(OTHER_KEY, key_update),
        ON_OTHER,
        USES_KEYS,
        "update",
    ),
    Op("key rotate", "KeyRotate", key_rotate, ON_TARGET, MANAGES_KEYS, "rotate"),
    Op("key revert", "KeyRevert", key_revert, ON_TARGET, MANAGES_KEYS, "rotate"),
    Op("key delete", "KeyDelete", key_delete, ON_TARGET, MANAGES_KEYS, "delete"),
    Op(
        "key delete (other key)",
        "KeyDelete",
        _on(OTHER_KEY, key_delete),
        ON_OTHER,
        MANAGES_KEYS,
        "delete",
    ),
    Op("key get deleted", "KeyGetDeleted", key_get_deleted, ON_OTHER, READS_KEYS, "get"),
    Op(
        "key get deleted (the target, deleted)",
        "KeyGetDeleted",
        _on(TARGET_KEY, key_get_deleted),
        ON_TARGET,
        READS_KEYS,
        "get",
        prepare=delete_target_key,
    ),
    Op(
        "key list deleted",
        "KeyListDeleted",
        key_list_deleted,
        ON_VAULT,
        READS_KEYS,
        "list",
        shows=((DELETED_KEY, ON_OTHER),),
    ),
    Op("key recover", "KeyRecover", key_recover, ON_OTHER, MANAGES_KEYS, "recover"),
    Op(
        "key recover (the target, deleted)",
        "KeyRecover",
        _on(TARGET_KEY, key_recover),
        ON_TARGET,
        MANAGES_KEYS,
        "recover",
        prepare=delete_target_key,
    ),
    Op("key purge", "KeyPurge", key_purge, ON_OTHER, MANAGES_KEYS, "purge"),
    Op(
        "key purge (the target, deleted)",
        "KeyPurge",
        _on(TARGET_KEY, key_purge),
        ON_TARGET,
        MANAGES_KEYS,
        "purge",
        prepare=delete_target_key,
    ),
    Op("key backup", "KeyBackup", key_backup, ON_TARGET, USES_KEYS, "backup"),
    Op("key restore", "KeyRestore", key_restore, ON_VAULT, MANAGES_KEYS, "restore"),
    Op("key encrypt", "KeyEncrypt", key_encrypt, ON_TARGET, USES_KEYS, "encrypt"),
    Op(
        "key encrypt (other key)",
        "KeyEncrypt",
        key_encrypt_other,
        ON_OTHER,
        USES_KEYS,
        "encrypt",
    ),
    Op("key decrypt", "KeyDecrypt", key_decrypt, ON_TARGET, USES_KEYS, "decrypt"),
    Op("key sign", "KeySign", key_sign, ON_TARGET, USES_KEYS, "sign"),
    Op("key verify", "KeyVerify", key_verify, ON_TARGET, USES_KEYS, "verify"),
    Op("key wrap", "KeyWrap", key_wrap, ON_TARGET, WRAPS_KEYS, "wrapKey"),
    Op("key unwrap", "KeyUnwrap", key_unwrap, ON_TARGET, WRAPS_KEYS, "unwrapKey"),
    Op(
        "key rotation policy get",
        "KeyRotationPolicyGet",
        key_rotation_policy_get,
        ON_TARGET,
        READS_POLICIES,
        "getrotationpolicy",
    ),
    Op(
        "key rotation policy set",
        "KeyRotationPolicySet",
        key_rotation_policy_set,
        ON_TARGET,
        WRITES_POLICIES,
        "setrotationpolicy",
    ),
    # Azure offers random bytes on Managed HSM only; here whoever may read the vault's keys
    # (keys/read, or the access-policy get permission) may have them.
    Op("random bytes", "GetRandomBytes", random_bytes, ON_VAULT, READS_KEYS, "get"),
    # Resource group and vault: management, decided by roles under either model.
    Op("resource group get", "ResourceGroupGet", resource_group_get, ON_GROUP, READS_VAULTS),
    Op(
        "resource group update",
        "ResourceGroupPatch",
        resource_group_update,
        ON_GROUP,
        WRITES_GROUPS,
    ),
    Op("vault get", "VaultGet", vault_get, ON_VAULT, READS_VAULTS),
    Op("vault update (tags)", "VaultPatch", vault_update, ON_VAULT, WRITES_VAULTS),
    Op("vault delete", "VaultDelete", vault_delete, ON_VAULT, WRITES_VAULTS),
    Op(
        "vault recover",
        "VaultRecover",
        vault_recover,
        ON_VAULT,
        WRITES_VAULTS,
        prepare=delete_vault,
    ),
    Op("vault purge", "VaultPurge", vault_purge, ON_VAULT, PURGES_VAULTS, prepare=delete_vault),
    Op(
        "vault list deleted",
        "VaultListDeleted",
        vault_list_deleted,
        ON_VAULT,
        READS_VAULTS,
        prepare=delete_vault,
        shows=((VAULT_NAME, ON_VAULT),),
        refused_when_empty=False,
    ),
    Op(
        "access policy set",
        "VaultAccessPolicySet",
        access_policy_set,
        ON_VAULT,
        WRITES_VAULTS,
    ),
    Op(
        "role assignment create (Key Vault Reader at the vault)",
        "RoleAssignmentCreate",
        assign(READER, "vault"),
        ON_VAULT,
        ASSIGNS_DATA_ROLES,
    ),
    Op(
        "role assignment create (Owner at the vault)",
        "RoleAssignmentCreate",
        assign(OWNER, "vault"),
        ON_VAULT,
        ASSIGNS_ANY_ROLE,
    ),
    Op(
        "role assignment create (Key Vault Reader at the target key)",
        "RoleAssignmentCreate",
        assign(READER, "key"),
        ON_TARGET,
        ASSIGNS_DATA_ROLES,
    ),
    Op(
        "role assignment list (at the vault)",
        "RoleAssignmentList",
        role_assignment_list,
        ON_VAULT,
        READS_ASSIGNMENTS,
        prepare=assign_bystander_at_vault,
    ),
    Op(
        "vault permission model switch",
        "VaultAccessPolicyChanged",
        permission_model_switch,
        ON_VAULT,
        SWITCHES_MODEL,
    ),
)

# Azure's access-policy key permissions (§8, without `all`, which stands for all of them).
KEY_PERMISSIONS = (
    "get",
    "list",
    "update",
    "create",
    "import",
    "delete",
    "recover",
    "backup",
    "restore",
    "decrypt",
    "encrypt",
    "unwrapKey",
    "wrapKey",
    "verify",
    "sign",
    "purge",
    "release",
    "rotate",
    "getrotationpolicy",
    "setrotationpolicy",
)


def expected_for_role(op: Op, role: str, scope: str, model: str) -> str:
    if op.policy is not None and model == ACCESS_POLICY:
        # Under access policies a role assignment gives no data access at all.
        return op.expect(NOTHING, "AccessDenied")
    reached = REACHES[scope] if role in op.roles else NOTHING
    return op.expect(reached, "ForbiddenByRbac")


def expected_for_policy(op: Op, permission: str, model: str) -> str:
    if op.policy is None or model == RBAC:
        # Management goes by roles, and this principal holds none; under RBAC the access
        # policy is kept but ignored.
        return op.expect(NOTHING, "ForbiddenByRbac")
    return op.expect(POLICY_REACH if op.policy == permission else NOTHING, "AccessDenied")


# --- running the matrix ---------------------------------------------------------------------


def rows_written() -> int:
    """Rows inserted, updated or deleted on this connection so far, in every table.

    The database keeps the count (SQLite for the connection, PostgreSQL for the running
    transaction, in which each test runs, savepoints rolled back included), so a refused
    call can be shown to have written nothing but its activity entry without reading every
    table before and after it.
    """
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT COALESCE(SUM(n_tup_ins + n_tup_upd + n_tup_del), 0) "
                "FROM pg_stat_xact_user_tables"
            )
        else:
            cursor.execute("SELECT total_changes()")
        (count,) = cursor.fetchone()
    return int(count)


def outcome(op: Op, estate: Estate) -> str:
    try:
        shown = op.call(estate)
    except Forbidden as error:
        if type(error) is not Forbidden:
            # KeyDisabled and the like refuse for the key's state, not the caller's rights.
            return f"failed: {type(error).__name__}: {error.message}"
        return denied(error.inner_code or "no inner code")
    except ServiceError as error:
        return f"failed: {type(error).__name__}: {error.message}"
    except AssertionError as error:
        return f"allowed, but the result is wrong: {error}"
    return ALLOWED if shown is None else listed(shown)


def check_denial_recorded(op: Op, estate: Estate) -> str | None:
    recorded = (
        ActivityEntry.objects.order_by("-seq")
        .values_list("operation", "actor_name", "result", "status_code")
        .first()
    )
    wanted = (op.log, estate.actor.username, "Forbidden", 403)
    if recorded != wanted:
        return f"{op.name}: the refusal was not logged as {wanted}; the last entry is {recorded}"
    return None


@contextlib.contextmanager
def rolled_back() -> Iterator[None]:
    """A savepoint whose changes are undone when the block ends."""
    with contextlib.suppress(_Rollback), transaction.atomic():
        yield
        raise _Rollback


def by_preparation() -> dict[Callable[[Estate], None] | None, list[Op]]:
    """The operations grouped by what has to happen before them, so that each preparation
    (deleting the vault, say) is done once for all the operations that need it."""
    groups: dict[Callable[[Estate], None] | None, list[Op]] = {}
    for op in OPERATIONS:
        groups.setdefault(op.prepare, []).append(op)
    return groups


def run_matrix(estate: Estate, expectations: dict[str, str]) -> None:
    """Run every operation as the actor, each in a savepoint rolled back afterwards so that
    destructive ones do not affect the next, and fail with every operation whose outcome
    differs from the table."""
    problems: list[str] = []
    outcomes: dict[str, str] = {}
    denials = 0
    for prepare, ops in by_preparation().items():
        with rolled_back():
            if prepare is not None:
                prepare(estate)
            for op in ops:
                with rolled_back():
                    written = rows_written()
                    outcomes[op.name] = got = outcome(op, estate)
                    if got.startswith("denied"):
                        denials += 1
                        problem = check_denial_recorded(op, estate)
                        if problem:
                            problems.append(problem)
                        # One row: the refusal's activity entry.
                        if rows_written() - written != 1:
                            problems.append(f"{op.name}: refused, yet it wrote more than its log")
                # Rolled-back versions' ids are reused by the next savepoint; their cached
                # material must not be.
                material_cache.clear()
    problems += [
        f"{op.name}: expected {expectations[op.name]}, got {outcomes[op.name]}"
        for op in OPERATIONS
        if outcomes[op.name] != expectations[op.name]
    ]
    assert not problems, "\n".join(["", *problems])
    # Every case refuses something, so every case checks the log of a refusal.
    assert denials


def holder(grant: str) -> tuple[str, str]:
    """Who a grant goes to, and what kind of principal that is: the actor, or its group."""
    return (TEAM, "group") if grant == "group" else (ACTOR, "user")


ROLE_CASES = [
    pytest.param(
        role,
        scope,
        model,
        grant,
        id=f"{role.replace(' ', '')}-{scope.replace(' ', '')}-{model}-{grant}",
    )
    for role in ROLES
    for scope in SCOPES
    for model in (RBAC, ACCESS_POLICY)
    for grant in ("direct", "group")
]


@pytest.mark.parametrize(("role", "scope", "model", "grant"), ROLE_CASES)
def test_role_matrix(
    system: User, backups: Backups, role: str, scope: str, model: str, grant: str
) -> None:
    estate = build_estate(system, model, backups)
    assignee, kind = holder(grant)
    vault_services.role_assignment_create(
        actor=system,
        assignee=assignee,
        assignee_kind=kind,
        role=role,
        scope=SCOPES[scope],
    )
    run_matrix(estate, {op.name: expected_for_role(op, role, scope, model) for op in OPERATIONS})


POLICY_CASES = [
    pytest.param(permission, model, grant, id=f"{permission}-{model}-{grant}")
    for permission in KEY_PERMISSIONS
    for model in (ACCESS_POLICY, RBAC)
    for grant in ("direct", "group")
]


@pytest.mark.parametrize(("permission", "model", "grant"), POLICY_CASES)
def test_access_policy_matrix(
    system: User, backups: Backups, permission: str, model: str, grant: str
) -> None:
    estate = build_estate(system, model, backups)
    principal, kind = holder(grant)
    vault_services.access_policy_set(
        actor=system,
        vault_name=VAULT_NAME,
        principal=principal,
        principal_kind=kind,
        key_permissions=[permission],
    )
    run_matrix(estate, {op.name: expected_for_policy(op, permission, model) for op in OPERATIONS})
