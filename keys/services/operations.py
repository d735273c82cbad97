"""The cryptographic operations: encrypt, decrypt, sign, verify, wrap and unwrap, and random
bytes."""

import secrets
from dataclasses import dataclass

from accounts.models import User
from kvconsole.errors import BadParameter
from vaults.activity import operation
from vaults.models import Operation
from vaults.permissions import Action, authorize
from vaults.services import vault_lookup

from .. import crypto
from ..models import KeyVersion
from ._shared import (
    check_usable,
    loaded_material,
    resolve_version,
)


@dataclass(frozen=True)
class OperationResult:
    """What encrypt, decrypt, sign, wrap and unwrap return: Azure's KeyOperationResult."""

    version: KeyVersion
    value: bytes
    iv: bytes | None = None
    tag: bytes | None = None
    aad: bytes | None = None

    def __repr__(self) -> str:
        return f"OperationResult(version={self.version.version!r})"


@dataclass(frozen=True)
class VerifyResult:
    version: KeyVersion
    valid: bool


def _prepare(
    actor: User, action: Action, key_op: str, vault_name: str, name: str, version: str | None
) -> tuple[KeyVersion, crypto.Material]:
    target = resolve_version(actor, action, vault_name, name, version, shared=True)
    check_usable(target, key_op)
    return target, loaded_material(target)


@operation(Operation.KEY_ENCRYPT)
def key_encrypt(
    *,
    actor: User,
    vault_name: str,
    name: str,
    version: str | None = None,
    algorithm: str,
    plaintext: bytes,
    iv: bytes | None = None,
    aad: bytes | None = None,
) -> OperationResult:
    target, material = _prepare(actor, Action.KEY_ENCRYPT, "encrypt", vault_name, name, version)
    result = crypto.encrypt(material, algorithm, plaintext, iv=iv, aad=aad)
    return OperationResult(target, result.ciphertext, result.iv, result.tag, aad)


@operation(Operation.KEY_DECRYPT)
def key_decrypt(
    *,
    actor: User,
    vault_name: str,
    name: str,
    version: str | None = None,
    algorithm: str,
    ciphertext: bytes,
    iv: bytes | None = None,
    tag: bytes | None = None,
    aad: bytes | None = None,
) -> OperationResult:
    target, material = _prepare(actor, Action.KEY_DECRYPT, "decrypt", vault_name, name, version)
    plaintext = crypto.decrypt(material, algorithm, ciphertext, iv=iv, tag=tag, aad=aad)
    return OperationResult(target, plaintext)


@operation(Operation.KEY_SIGN)
def key_sign(
    *,
    actor: User,
    vault_name: str,
    name: str,
    version: str | None = None,
    algorithm: str,
    digest: bytes,
) -> OperationResult:
    target, material = _prepare(actor, Action.KEY_SIGN, "sign", vault_name, name, version)
    return OperationResult(target, crypto.sign(material, algorithm, digest))


@operation(Operation.KEY_VERIFY)
def key_verify(
    *,
    actor: User,
    vault_name: str,
    name: str,
    version: str | None = None,
    algorithm: str,
    digest: bytes,
    signature: bytes,
) -> VerifyResult:
    target, material = _prepare(actor, Action.KEY_VERIFY, "verify", vault_name, name, version)
    return VerifyResult(target, crypto.verify(material, algorithm, digest, signature))


@operation(Operation.KEY_WRAP)
def key_wrap(
    *,
    actor: User,
    vault_name: str,
    name: str,
    version: str | None = None,
    algorithm: str,
    key: bytes,
) -> OperationResult:
    target, material = _prepare(actor, Action.KEY_WRAP, "wrapKey", vault_name, name, version)
    return OperationResult(target, crypto.wrap_key(material, algorithm, key))


@operation(Operation.KEY_UNWRAP)
def key_unwrap(
    *,
    actor: User,
    vault_name: str,
    name: str,
    version: str | None = None,
    algorithm: str,
    encrypted_key: bytes,
) -> OperationResult:
    target, material = _prepare(actor, Action.KEY_UNWRAP, "unwrapKey", vault_name, name, version)
    return OperationResult(target, crypto.unwrap_key(material, algorithm, encrypted_key))


MAX_RANDOM_BYTES = 128


@operation(Operation.RANDOM_BYTES_GET)
def random_bytes(*, actor: User, vault_name: str, count: object) -> bytes:
    """Up to 128 bytes from the operating system's CSPRNG, for anyone who may read the
    vault's keys (Azure offers this on Managed HSM, with its own rng permission)."""
    vault = vault_lookup(vault_name, actor=actor, action=Action.KEY_GET)
    authorize(actor, Action.KEY_GET, vault)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_RANDOM_BYTES:
        raise BadParameter(
            f"GetRandomBytesRequest: count cannot be greater than {MAX_RANDOM_BYTES} or less than 1"
        )
    return secrets.token_bytes(count)
