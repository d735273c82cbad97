"""Key protection: private material is only ever stored sealed.

Each version's material is sealed with AES-256-GCM under a fresh data key, with the
version's identity (vault, key name, version) as associated data; the data key is in turn
sealed under the deployment master key. Master keys live in a keyring file, so a rotation
can add a new primary key, re-wrap every data key in batches and only then drop the old one;
until then both are readable, and a rotation killed half-way resumes where it stopped.

Backups are sealed under a separate deployment backup key, which master-key rotation never
touches, so a backup stays restorable for as long as the deployment keeps that key.
"""

import base64
import json
import os
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from kvconsole import secretfiles
from kvconsole.errors import BadParameter

from . import crypto

_NONCE_BYTES = 12
_KEYRING_FORMAT = 1


class ProtectedMaterial(NamedTuple):
    master_key_id: str
    # memoryview when read back from PostgreSQL's bytea.
    wrapped_data_key: bytes | memoryview
    sealed_material: bytes | memoryview

    def __repr__(self) -> str:
        return f"ProtectedMaterial(master_key_id={self.master_key_id!r})"


@dataclass(frozen=True)
class Keyring:
    primary: str
    keys: dict[str, bytes] = field(repr=False)

    @property
    def retired(self) -> list[str]:
        return [key_id for key_id in self.keys if key_id != self.primary]


class _KeyringFile:
    """The master keyring, re-read whenever its file changes so every process follows a rotation."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded: tuple[Path, tuple[int, int, int], Keyring] | None = None

    def get(self) -> Keyring:
        path = Path(settings.KVCONSOLE_MASTER_KEY_FILE)
        with self._lock:
            try:
                stamp = secretfiles.stamp(path)
            except FileNotFoundError:
                _refuse_to_replace_a_lost_keyring(path)
                secretfiles.create_development_file(path, _new_keyring_document())
                stamp = secretfiles.stamp(path)
            if self._loaded is None or self._loaded[:2] != (path, stamp):
                self._loaded = (path, stamp, _parse_keyring(path))
            return self._loaded[2]

    def write(self, keyring: Keyring) -> None:
        path = Path(settings.KVCONSOLE_MASTER_KEY_FILE)
        document = {
            "format": _KEYRING_FORMAT,
            "primary": keyring.primary,
            "keys": {key_id: _b64(key) for key_id, key in keyring.keys.items()},
        }
        with self._lock:
            secretfiles.write_secret_file(path, json.dumps(document, indent=2))
            self._loaded = None


master_keyring = _KeyringFile()


def _refuse_to_replace_a_lost_keyring(path: Path) -> None:
    """A missing keyring is only made anew for an empty store: with stored versions it was
    lost, and a fresh one would seal new material beside old material nothing can open."""
    from .models import KeyVersion

    if KeyVersion.objects.exists():
        raise ImproperlyConfigured(
            f"The master key file {path} is missing, but key material is stored under it. "
            "Restore the file from its backup."
        )


@contextmanager
def rotation_lock() -> Iterator[None]:
    """Held for a whole master-key rotation: two at once would each add a primary key and
    the second write would drop the first one's, orphaning what it had re-wrapped."""
    with secretfiles.exclusive(
        Path(settings.KVCONSOLE_MASTER_KEY_FILE),
        "Another master-key rotation is running; let it finish.",
    ):
        yield


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _new_key_id() -> str:
    return secrets.token_hex(8)


def _new_keyring_document() -> str:
    key_id = _new_key_id()
    return json.dumps(
        {"format": _KEYRING_FORMAT, "primary": key_id, "keys": {key_id: _b64(os.urandom(32))}},
        indent=2,
    )


def _parse_keyring(path: Path) -> Keyring:
    try:
        document = json.loads(path.read_text())
        keys = {key_id: base64.b64decode(value) for key_id, value in document["keys"].items()}
        keyring = Keyring(primary=document["primary"], keys=keys)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ImproperlyConfigured(f"The master key file {path} is unreadable.") from error
    if keyring.primary not in keys or any(len(key) != 32 for key in keys.values()):
        raise ImproperlyConfigured(f"The master key file {path} is malformed.")
    return keyring


def _wrap_aad(master_key_id: str, aad: bytes) -> bytes:
    return b"kvconsole-data-key\x00" + master_key_id.encode() + b"\x00" + aad


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(_NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _open(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    return AESGCM(key).decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], aad)


def protect(material: crypto.Material, *, aad: bytes) -> ProtectedMaterial:
    """Seal private material under a fresh data key wrapped by the primary master key."""
    keyring = master_keyring.get()
    data_key = AESGCM.generate_key(bit_length=256)
    sealed = _seal(data_key, crypto.private_bytes(material), aad)
    wrapped = _seal(keyring.keys[keyring.primary], data_key, _wrap_aad(keyring.primary, aad))
    return ProtectedMaterial(keyring.primary, wrapped, sealed)


def unprotect(kty: str, protected: ProtectedMaterial, *, aad: bytes) -> crypto.Material:
    """Open sealed material; any change to it, its data key or its AAD is an error."""
    master_key = master_keyring.get().keys.get(protected.master_key_id)
    if master_key is None:
        raise ImproperlyConfigured(
            f"Master key {protected.master_key_id} is not in the keyring; "
            "key material sealed under it cannot be opened."
        )
    try:
        data_key = _open(
            master_key,
            bytes(protected.wrapped_data_key),
            _wrap_aad(protected.master_key_id, aad),
        )
        return crypto.load_private_bytes(
            kty, _open(data_key, bytes(protected.sealed_material), aad)
        )
    except InvalidTag:
        raise ImproperlyConfigured(
            "Stored key material failed its integrity check: it was modified or moved."
        ) from None


def rewrap_data_key(protected: ProtectedMaterial, *, aad: bytes, keyring: Keyring) -> bytes:
    """The data key re-wrapped under the primary master key; the sealed material is untouched."""
    old_key = keyring.keys[protected.master_key_id]
    data_key = _open(
        old_key, bytes(protected.wrapped_data_key), _wrap_aad(protected.master_key_id, aad)
    )
    return _seal(keyring.keys[keyring.primary], data_key, _wrap_aad(keyring.primary, aad))


def start_master_key_rotation() -> tuple[Keyring, bool]:
    """Make a new primary master key, or find the rotation already in progress.

    Returns the keyring and whether an interrupted rotation is being resumed.
    """
    keyring = master_keyring.get()
    if keyring.retired:
        return keyring, True
    new_id = _new_key_id()
    rotated = Keyring(primary=new_id, keys={**keyring.keys, new_id: os.urandom(32)})
    master_keyring.write(rotated)
    return master_keyring.get(), False


def finish_master_key_rotation(keyring: Keyring) -> None:
    """Drop the retired master keys once nothing is sealed under them."""
    master_keyring.write(
        Keyring(primary=keyring.primary, keys={keyring.primary: keyring.keys[keyring.primary]})
    )


# --- backups -----------------------------------------------------------------------------

_BACKUP_MAGIC = b"KVCB"
_BACKUP_FORMAT = 1
_BACKUP_HEADER_BYTES = len(_BACKUP_MAGIC) + 1 + 8


def _backup_key() -> tuple[bytes, bytes]:
    """(key id, key) of this deployment's backup key."""
    path = Path(settings.KVCONSOLE_BACKUP_KEY_FILE)
    if not path.exists():
        secretfiles.create_development_file(
            path,
            json.dumps({"format": 1, "id": _new_key_id(), "key": _b64(os.urandom(32))}),
        )
    try:
        document = json.loads(path.read_text())
        key_id, key = bytes.fromhex(document["id"]), base64.b64decode(document["key"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ImproperlyConfigured(f"The backup key file {path} is unreadable.") from error
    if len(key_id) != 8 or len(key) != 32:
        raise ImproperlyConfigured(f"The backup key file {path} is malformed.")
    return key_id, key


def load_backup_key() -> None:
    """Read the backup key now (creating its file where that is allowed), not at the first
    backup."""
    _backup_key()


def seal_backup(payload: bytes) -> bytes:
    """An opaque, versioned, authenticated backup blob of `payload`."""
    key_id, key = _backup_key()
    header = _BACKUP_MAGIC + bytes([_BACKUP_FORMAT]) + key_id
    # Not compressed: the payload mixes caller-chosen text (tags) with key material, and
    # compression would turn the blob's length into an oracle on that material.
    return header + _seal(key, payload, header)


def open_backup(blob: bytes) -> bytes:
    """The payload of a backup blob made by this deployment; BadParameter for anything else."""
    header = blob[:_BACKUP_HEADER_BYTES]
    if len(blob) < _BACKUP_HEADER_BYTES + _NONCE_BYTES + 16 or not header.startswith(_BACKUP_MAGIC):
        raise BadParameter("The value is not a kvconsole key backup, or it is truncated.")
    if header[len(_BACKUP_MAGIC)] != _BACKUP_FORMAT:
        raise BadParameter(f"Unsupported key backup format version {header[len(_BACKUP_MAGIC)]}.")
    key_id, key = _backup_key()
    if header[-8:] != key_id:
        raise BadParameter(
            "The backup was made by another kvconsole deployment; it can only be restored "
            "where that deployment's backup key is installed."
        )
    try:
        return _open(key, blob[_BACKUP_HEADER_BYTES:], header)
    except InvalidTag:
        raise BadParameter("The key backup is corrupt: it was modified or truncated.") from None


# --- loaded key cache --------------------------------------------------------------------


class MaterialCache:
    """A bounded LRU of loaded private keys, keyed by version row.

    Loading an RSA key costs milliseconds; a signature costs a fraction of one. The cache
    holds material only: whether a version may be used is read from the database on every
    call, so a stale entry can never let a disabled or deleted version work.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[int, crypto.Material] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, version_pk: int) -> crypto.Material | None:
        with self._lock:
            material = self._entries.get(version_pk)
            if material is not None:
                self._entries.move_to_end(version_pk)
            return material

    def put(self, version_pk: int, material: crypto.Material) -> None:
        with self._lock:
            self._entries[version_pk] = material
            self._entries.move_to_end(version_pk)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def forget(self, version_pks: list[int]) -> None:
        with self._lock:
            for version_pk in version_pks:
                self._entries.pop(version_pk, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, version_pk: int) -> bool:
        return version_pk in self._entries


material_cache = MaterialCache(settings.KVCONSOLE_KEY_CACHE_SIZE)
