"""keys.protection: sealed storage of private material, master-key rotation, the key cache.

The private material a test compares against is opened with keys.protection.unprotect from
the stored row; signatures are verified with `cryptography` against the public JWK.
"""

import base64
import hashlib
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, keywrap, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from django.core.exceptions import ImproperlyConfigured

from accounts.models import User
from keys import protection, services, shapes
from keys.crypto import Material
from keys.models import Key, KeyVersion
from keys.protection import MaterialCache, ProtectedMaterial, material_cache
from kvconsole.errors import BadParameter, Conflict, KeyDisabled
from tests.factories import VaultFactory
from tests.material import b64url, encodings, secret_parts
from vaults import services as vault_services
from vaults.models import ActivityEntry, Vault

DIGEST = hashlib.sha256(b"signed after the rotation").digest()
ES256 = ec.ECDSA(utils.Prehashed(hashes.SHA256()))
RS256 = (padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))


# --- helpers -------------------------------------------------------------------------------


def b64url_int(text: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


def stored_row(version: KeyVersion) -> KeyVersion:
    return KeyVersion.objects.select_related("key__vault__resource_group").get(pk=version.pk)


def protected_of(row: KeyVersion) -> ProtectedMaterial:
    return ProtectedMaterial(
        row.master_key_id, bytes(row.wrapped_data_key), bytes(row.sealed_material)
    )


def stored_material(version: KeyVersion) -> Material:
    row = stored_row(version)
    return protection.unprotect(row.kty, protected_of(row), aad=row.storage_aad)


def row_bytes(row: KeyVersion) -> list[bytes]:
    """Every stored column of the row, as bytes (binary columns raw, others as text)."""
    values = KeyVersion.objects.filter(pk=row.pk).values().get()
    key_values = Key.objects.filter(pk=row.key_id).values().get()
    result = []
    for value in [*values.values(), *key_values.values()]:
        if isinstance(value, bytes | memoryview):
            result.append(bytes(value))
        else:
            result.append(json.dumps(value, default=str).encode())
    return result


def public_key(version: KeyVersion) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
    jwk = shapes.key_bundle(version, version.key.vault.uri)["key"]
    if jwk["kty"] == "RSA":
        return rsa.RSAPublicNumbers(b64url_int(jwk["e"]), b64url_int(jwk["n"])).public_key()
    curve = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1()}[jwk["crv"]]
    return ec.EllipticCurvePublicNumbers(
        b64url_int(jwk["x"]), b64url_int(jwk["y"]), curve
    ).public_key()


def verify_signature(version: KeyVersion, signature: bytes) -> None:
    """Raise InvalidSignature unless `signature` over DIGEST is the version's."""
    key = public_key(version)
    if isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, DIGEST, *RS256)
        return
    r, s = int.from_bytes(signature[:32]), int.from_bytes(signature[32:])
    key.verify(utils.encode_dss_signature(r, s), DIGEST, ES256)


def sign(actor: User, version: KeyVersion) -> bytes:
    algorithm = "RS256" if version.kty == "RSA" else "ES256"
    return services.key_sign(
        actor=actor,
        vault_name=version.key.vault.name,
        name=version.key.name,
        version=version.version,
        algorithm=algorithm,
        digest=DIGEST,
    ).value


def assert_version_works(actor: User, version: KeyVersion) -> None:
    """The version's stored material loads and does what its public half says it does."""
    if version.kty == "oct":
        content_key = os.urandom(32)
        wrapped = services.key_wrap(
            actor=actor,
            vault_name=version.key.vault.name,
            name=version.key.name,
            version=version.version,
            algorithm="A256KW",
            key=content_key,
        ).value
        wrapping_key = stored_material(version).key
        assert isinstance(wrapping_key, bytes)
        assert keywrap.aes_key_unwrap(wrapping_key, wrapped) == content_key
        return
    verify_signature(version, sign(actor, version))


def flip_byte(data: bytes, position: int) -> bytes:
    flipped = bytearray(data)
    flipped[position] ^= 0x01
    return bytes(flipped)


def keyring_document(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_jwk() -> dict[str, Any]:
    """One RSA key for the module, as an importable JWK: generating RSA is slow."""
    numbers = rsa.generate_private_key(65537, 2048).private_numbers()
    return {
        "kty": "RSA",
        "n": b64url(numbers.public_numbers.n.to_bytes(256)),
        "e": "AQAB",
        "d": b64url(numbers.d.to_bytes(256)),
        "p": b64url(numbers.p.to_bytes(128)),
        "q": b64url(numbers.q.to_bytes(128)),
    }


@pytest.fixture
def make_rsa(system: User, vault: Vault, rsa_jwk: dict[str, Any]) -> Callable[..., KeyVersion]:
    def make(name: str = "rsa") -> KeyVersion:
        return services.key_import(actor=system, vault_name=vault.name, name=name, jwk=rsa_jwk)

    return make


@pytest.fixture
def versions_of_each_type(make_key, make_rsa) -> list[KeyVersion]:
    return [make_rsa("rsa"), make_key("ec", kty="EC"), make_key("sym", kty="oct")]


@pytest.fixture
def unprotect_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts calls to protection.unprotect (each one is a load of stored material)."""
    calls: list[int] = []
    real = protection.unprotect

    def spy(*args: Any, **kwargs: Any) -> Material:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(protection, "unprotect", spy)
    return calls


# --- what is stored ----------------------------------------------------------------------------


def test_stored_rows_hold_no_private_material(versions_of_each_type):
    for version in versions_of_each_type:
        row = stored_row(version)
        columns = row_bytes(row)
        parts = secret_parts(stored_material(version))
        assert parts
        for secret in parts:
            for form in encodings(secret):
                assert form not in bytes(row.sealed_material)
                assert form not in bytes(row.wrapped_data_key)
                assert form.decode("latin-1") not in json.dumps(row.public_jwk)
                for column in columns:
                    assert form not in column, f"{version.kty} private material in a column"


def test_stored_material_is_not_the_plain_storage_form(versions_of_each_type):
    for version in versions_of_each_type:
        material = stored_material(version)
        key = material.key
        plain = (
            key
            if isinstance(key, bytes)
            else key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        sealed = bytes(stored_row(version).sealed_material)
        # nonce + ciphertext + GCM tag
        assert len(sealed) == 12 + len(plain) + 16
        assert plain[-16:] not in sealed


def test_oct_public_jwk_holds_only_the_key_type(make_key):
    version = make_key("sym", kty="oct")

    assert stored_row(version).public_jwk == {"kty": "oct"}
    assert "k" not in shapes.key_bundle(version, version.key.vault.uri)["key"]


def test_each_version_has_its_own_data_key(make_key):
    first = stored_row(make_key("k", kty="EC"))
    second = stored_row(make_key("k", kty="EC"))

    assert first.master_key_id == second.master_key_id
    assert bytes(first.wrapped_data_key) != bytes(second.wrapped_data_key)
    # 12-byte nonce + 32-byte AES-256 data key + 16-byte tag.
    assert len(bytes(first.wrapped_data_key)) == 12 + 32 + 16


# --- tampering ----------------------------------------------------------------------------------


@pytest.mark.parametrize("column", ["sealed_material", "wrapped_data_key"])
@pytest.mark.parametrize("where", ["nonce", "middle", "tag"])
def test_flipped_byte_in_protected_columns_fails_to_load(make_key, column, where):
    version = make_key("k", kty="EC")
    row = stored_row(version)
    original = stored_material(version)
    data = bytes(getattr(row, column))
    position = {"nonce": 0, "middle": len(data) // 2, "tag": len(data) - 1}[where]
    KeyVersion.objects.filter(pk=row.pk).update(**{column: flip_byte(data, position)})
    tampered = stored_row(version)

    with pytest.raises(ImproperlyConfigured) as failed:
        protection.unprotect(tampered.kty, protected_of(tampered), aad=tampered.storage_aad)

    message = str(failed.value)
    for secret in [*secret_parts(original), data]:
        for form in encodings(secret):
            assert form.decode("latin-1") not in message


def test_protected_columns_copied_onto_another_version_fail_to_load(make_key, system, vault):
    source = stored_row(make_key("a", kty="EC"))
    target = make_key("b", kty="EC")
    KeyVersion.objects.filter(pk=target.pk).update(
        master_key_id=source.master_key_id,
        wrapped_data_key=bytes(source.wrapped_data_key),
        sealed_material=bytes(source.sealed_material),
    )
    moved = stored_row(target)

    with pytest.raises(ImproperlyConfigured, match="modified or moved"):
        protection.unprotect(moved.kty, protected_of(moved), aad=moved.storage_aad)


def test_data_key_swapped_between_versions_of_one_key_fails_to_load(make_key):
    first = stored_row(make_key("k", kty="EC"))
    second = make_key("k", kty="EC")
    KeyVersion.objects.filter(pk=second.pk).update(wrapped_data_key=bytes(first.wrapped_data_key))
    swapped = stored_row(second)

    with pytest.raises(ImproperlyConfigured):
        protection.unprotect(swapped.kty, protected_of(swapped), aad=swapped.storage_aad)


def test_swapped_public_key_fails_to_load(make_key):
    """Clients encrypt and verify locally with the stored public key: swapping it for one
    whose private half an attacker holds must break the version, not serve it."""
    version = make_key("k", kty="EC")
    other = stored_row(make_key("other", kty="EC"))
    KeyVersion.objects.filter(pk=version.pk).update(public_jwk=other.public_jwk)
    swapped = stored_row(version)

    with pytest.raises(ImproperlyConfigured, match="modified or moved"):
        protection.unprotect(swapped.kty, protected_of(swapped), aad=swapped.storage_aad)


def test_a_second_master_key_rotation_at_once_is_refused(make_key, system, fresh_keyring):
    make_key("k", kty="EC")
    before = fresh_keyring.read_text()
    with protection.rotation_lock(), pytest.raises(Conflict, match="rotation is running"):
        services.master_key_rotate(actor=system)
    assert fresh_keyring.read_text() == before


def test_material_does_not_open_for_another_identity(make_key):
    row = stored_row(make_key("k", kty="EC"))

    with pytest.raises(ImproperlyConfigured):
        protection.unprotect(row.kty, protected_of(row), aad=row.storage_aad + b"x")


@pytest.mark.parametrize(("made_as", "stored_as"), [("EC", "RSA"), ("EC", "oct"), ("oct", "EC")])
def test_changed_key_type_fails_to_load_as_a_server_error(
    make_key, system, vault, made_as, stored_as
):
    version = make_key("k", kty=made_as)
    KeyVersion.objects.filter(pk=version.pk).update(kty=stored_as)
    row = stored_row(version)

    with pytest.raises(ImproperlyConfigured, match="integrity"):
        protection.unprotect(row.kty, protected_of(row), aad=row.storage_aad)
    # Through a service it is an internal failure, not the caller's bad request.
    service: Callable[..., Any]
    arguments: dict[str, Any]
    if made_as == "EC":
        service, arguments = services.key_sign, {"algorithm": "ES256", "digest": DIGEST}
    else:
        service, arguments = services.key_wrap, {"algorithm": "A256KW", "key": bytes(32)}
    with pytest.raises(ImproperlyConfigured):
        service(actor=system, vault_name=vault.name, name="k", **arguments)
    entry = ActivityEntry.objects.order_by("-seq").first()
    assert entry is not None
    assert (entry.result, entry.status_code) == ("Failure", 500)


def test_unknown_master_key_id_fails_to_load(make_key):
    version = make_key("k", kty="EC")
    KeyVersion.objects.filter(pk=version.pk).update(master_key_id="00" * 8)
    row = stored_row(version)

    with pytest.raises(ImproperlyConfigured, match="not in the keyring"):
        protection.unprotect(row.kty, protected_of(row), aad=row.storage_aad)


def test_tampered_version_fails_the_operation_without_leaking(make_key, system, vault):
    version = make_key("k", kty="EC")
    row = stored_row(version)
    original = stored_material(version)
    KeyVersion.objects.filter(pk=row.pk).update(
        sealed_material=flip_byte(bytes(row.sealed_material), 20)
    )

    with pytest.raises(ImproperlyConfigured) as failed:
        services.key_sign(
            actor=system, vault_name=vault.name, name="k", algorithm="ES256", digest=DIGEST
        )

    entry = ActivityEntry.objects.order_by("-seq").first()
    assert entry is not None
    assert (entry.operation, entry.result, entry.status_code) == ("KeySign", "Failure", 500)
    for text in (str(failed.value), entry.message):
        for secret in secret_parts(original):
            for form in encodings(secret):
                assert form.decode("latin-1") not in text
    assert version.pk not in material_cache


# --- master-key rotation ---------------------------------------------------------------------


@pytest.fixture
def rotation_estate(fresh_keyring, make_key, make_rsa) -> list[KeyVersion]:
    """Five versions sealed under this test's own keyring, with their signatures' keys."""
    return [
        make_rsa("rsa"),
        make_key("ec", kty="EC"),
        make_key("ec", kty="EC"),
        make_key("ec2", kty="EC"),
        make_key("sym", kty="oct"),
    ]


def test_master_key_rotation_rewraps_every_version_and_drops_the_old_key(
    rotation_estate, fresh_keyring, system
):
    old_primary = keyring_document(fresh_keyring)["primary"]
    assert {stored_row(version).master_key_id for version in rotation_estate} == {old_primary}
    sealed_before = {v.pk: bytes(stored_row(v).sealed_material) for v in rotation_estate}
    progress: list[tuple[int, int]] = []

    result = services.master_key_rotate(
        actor=system, batch_size=2, progress=lambda done, total: progress.append((done, total))
    )

    assert result.primary != old_primary
    assert (result.rewrapped, result.resumed) == (5, False)
    assert progress == [(2, 5), (4, 5), (5, 5)]
    assert set(KeyVersion.objects.values_list("master_key_id", flat=True)) == {result.primary}
    document = keyring_document(fresh_keyring)
    assert document["primary"] == result.primary
    assert set(document["keys"]) == {result.primary}
    assert stat.S_IMODE(fresh_keyring.stat().st_mode) == 0o600
    # Only the data keys were re-wrapped; the sealed material is untouched.
    assert {v.pk: bytes(stored_row(v).sealed_material) for v in rotation_estate} == sealed_before


def test_every_version_works_after_master_key_rotation(rotation_estate, system):
    services.master_key_rotate(actor=system, batch_size=2)
    material_cache.clear()

    for version in rotation_estate:
        assert_version_works(system, version)


def test_master_key_rotation_is_recorded(rotation_estate, system):
    result = services.master_key_rotate(actor=system, batch_size=2)

    entry = ActivityEntry.objects.order_by("-seq").first()
    assert entry is not None
    assert (entry.operation, entry.result, entry.status_code) == (
        "MasterKeyRotate",
        "Success",
        200,
    )
    assert entry.target == f"masterKeys/{result.primary}"
    assert entry.actor_name == system.username


def test_master_key_rotation_rewraps_soft_deleted_keys_and_vaults(
    fresh_keyring, make_key, system, vault
):
    deleted_key = make_key("gone", kty="EC")
    services.key_delete(actor=system, vault_name=vault.name, name="gone")
    other = VaultFactory.create()
    in_deleted_vault = make_key("k", kty="EC", in_vault=other)
    vault_services.vault_delete(actor=system, name=other.name, force=True)

    result = services.master_key_rotate(actor=system, batch_size=1)

    assert result.rewrapped == 2
    material_cache.clear()
    services.key_recover(actor=system, vault_name=vault.name, name="gone")
    vault_services.vault_recover(actor=system, name=other.name)
    for version in (deleted_key, in_deleted_vault):
        assert stored_row(version).master_key_id == result.primary
        assert_version_works(system, version)


def test_master_key_rotation_refuses_a_batch_size_below_one(rotation_estate, fresh_keyring, system):
    before = fresh_keyring.read_bytes()

    with pytest.raises(BadParameter):
        services.master_key_rotate(actor=system, batch_size=0)

    assert fresh_keyring.read_bytes() == before


def test_interrupted_master_key_rotation_leaves_everything_usable_and_resumes(
    transactional_db, rotation_estate, fresh_keyring, system, monkeypatch
):
    # transactional_db: each batch really commits, as when the process is killed.
    old_primary = keyring_document(fresh_keyring)["primary"]
    real_rewrap = protection.rewrap_data_key
    calls: list[int] = []

    def failing_rewrap(*args: Any, **kwargs: Any) -> bytes:
        calls.append(1)
        if len(calls) > 3:
            raise RuntimeError("killed mid-rotation")
        return real_rewrap(*args, **kwargs)

    monkeypatch.setattr(protection, "rewrap_data_key", failing_rewrap)

    with pytest.raises(RuntimeError):
        services.master_key_rotate(actor=system, batch_size=2)

    # The first batch was committed, the second rolled back with its failure.
    document = keyring_document(fresh_keyring)
    new_primary = document["primary"]
    assert new_primary != old_primary
    assert set(document["keys"]) == {old_primary, new_primary}
    master_key_ids = list(KeyVersion.objects.values_list("master_key_id", flat=True))
    assert sorted(master_key_ids) == sorted([new_primary] * 2 + [old_primary] * 3)
    failure = ActivityEntry.objects.order_by("-seq").first()
    assert failure is not None
    assert (failure.operation, failure.result) == ("MasterKeyRotate", "Failure")
    material_cache.clear()
    for version in rotation_estate:
        assert_version_works(system, version)

    monkeypatch.setattr(protection, "rewrap_data_key", real_rewrap)
    result = services.master_key_rotate(actor=system, batch_size=2)

    assert result.primary == new_primary
    assert (result.rewrapped, result.resumed) == (3, True)
    assert not KeyVersion.objects.exclude(master_key_id=new_primary).exists()
    assert set(keyring_document(fresh_keyring)["keys"]) == {new_primary}
    material_cache.clear()
    for version in rotation_estate:
        assert_version_works(system, version)


def test_versions_created_during_an_interrupted_rotation_use_the_new_primary(
    rotation_estate, fresh_keyring, system, make_key, monkeypatch
):
    def failing_rewrap(*args: Any, **kwargs: Any) -> bytes:
        raise RuntimeError("killed mid-rotation")

    monkeypatch.setattr(protection, "rewrap_data_key", failing_rewrap)
    with pytest.raises(RuntimeError):
        services.master_key_rotate(actor=system, batch_size=2)

    created = make_key("late", kty="EC")

    assert stored_row(created).master_key_id == keyring_document(fresh_keyring)["primary"]


def test_second_master_key_rotation_starts_afresh(rotation_estate, fresh_keyring, system):
    first = services.master_key_rotate(actor=system, batch_size=10)

    second = services.master_key_rotate(actor=system, batch_size=10)

    assert second.primary != first.primary
    assert (second.rewrapped, second.resumed) == (5, False)
    assert set(keyring_document(fresh_keyring)["keys"]) == {second.primary}
    material_cache.clear()
    assert_version_works(system, rotation_estate[1])


def test_fresh_keyring_file_is_created_private(fresh_keyring, make_key):
    make_key("k", kty="EC")

    assert stat.S_IMODE(fresh_keyring.stat().st_mode) == 0o600
    document = keyring_document(fresh_keyring)
    assert len(base64.b64decode(document["keys"][document["primary"]])) == 32


# --- the material cache ------------------------------------------------------------------------


def test_repeated_signs_load_the_material_once(make_key, system, vault, unprotect_calls):
    version = make_key("k", kty="EC")
    material_cache.clear()

    signatures = [sign(system, version) for _ in range(3)]

    assert len(unprotect_calls) == 1
    for signature in signatures:
        verify_signature(version, signature)


def test_cache_hit_still_checks_the_database(make_key, system, vault):
    version = make_key("k", kty="EC")
    sign(system, version)
    assert version.pk in material_cache
    # Disabled behind the service's back: the cached material must not be used.
    KeyVersion.objects.filter(pk=version.pk).update(enabled=False)

    with pytest.raises(KeyDisabled):
        sign(system, version)


def test_material_cache_evicts_the_least_recently_used():
    cache = MaterialCache(size=2)
    first, second, third = (Material("oct", os.urandom(32)) for _ in range(3))
    cache.put(1, first)
    cache.put(2, second)
    assert cache.get(1) is first  # 1 is now the most recently used

    cache.put(3, third)

    assert len(cache) == 2
    assert 2 not in cache
    assert cache.get(1) is first
    assert cache.get(3) is third


def test_material_cache_forget_and_clear():
    cache = MaterialCache(size=4)
    for pk in range(1, 4):
        cache.put(pk, Material("oct", os.urandom(16)))

    cache.forget([1, 3, 99])

    assert (1 in cache, 2 in cache, 3 in cache) == (False, True, False)
    cache.clear()
    assert len(cache) == 0


def test_disabling_a_version_drops_it_from_the_cache(make_key, system, vault):
    version = make_key("k", kty="EC")
    sign(system, version)
    assert version.pk in material_cache

    services.key_update(actor=system, vault_name=vault.name, name="k", enabled=False)

    assert version.pk not in material_cache


def test_reenabled_version_loads_again(make_key, system, vault, unprotect_calls):
    version = make_key("k", kty="EC")
    services.key_update(actor=system, vault_name=vault.name, name="k", enabled=False)
    services.key_update(actor=system, vault_name=vault.name, name="k", enabled=True)

    verify_signature(version, sign(system, version))

    assert len(unprotect_calls) == 1


def test_deleting_a_key_drops_all_its_versions_from_the_cache(make_key, system, vault):
    versions = [make_key("k", kty="EC"), make_key("k", kty="EC")]
    other = make_key("other", kty="EC")
    for version in [*versions, other]:
        sign(system, version)

    services.key_delete(actor=system, vault_name=vault.name, name="k")

    assert all(version.pk not in material_cache for version in versions)
    assert other.pk in material_cache


def test_purging_a_key_drops_its_versions_from_the_cache(make_key, system, vault):
    versions = [make_key("k", kty="EC"), make_key("k", kty="EC")]
    services.key_delete(actor=system, vault_name=vault.name, name="k")
    # As if another request had loaded them between the delete and the purge.
    for version in versions:
        material_cache.put(version.pk, stored_material(version))

    services.key_purge(actor=system, vault_name=vault.name, name="k")

    assert all(version.pk not in material_cache for version in versions)


def test_purging_a_vault_drops_its_versions_from_the_cache(make_key, system, vault):
    inside = [make_key("a", kty="EC"), make_key("b", kty="EC"), make_key("b", kty="EC")]
    elsewhere = VaultFactory.create()
    outside = make_key("a", kty="EC", in_vault=elsewhere)
    for version in [*inside, outside]:
        sign(system, version)

    vault_services.vault_delete(actor=system, name=vault.name, force=True)
    vault_services.vault_purge(actor=system, name=vault.name)

    assert not KeyVersion.objects.filter(pk__in=[version.pk for version in inside]).exists()
    assert all(version.pk not in material_cache for version in inside)
    assert outside.pk in material_cache


def test_a_lost_keyring_is_not_silently_replaced(make_key, fresh_keyring):
    make_key("k", kty="EC")
    fresh_keyring.unlink()
    protection.master_keyring._loaded = None

    with pytest.raises(ImproperlyConfigured, match="missing"):
        protection.master_keyring.get()
    assert not fresh_keyring.exists()


def test_a_keyring_is_created_for_an_empty_store(db, fresh_keyring):
    keyring = protection.master_keyring.get()
    assert fresh_keyring.exists()
    assert stat.S_IMODE(fresh_keyring.stat().st_mode) == 0o600
    assert list(keyring.keys) == [keyring.primary]
