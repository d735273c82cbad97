"""The vault endpoint, driven only through the official Azure SDK for Python.

Every result is checked against `cryptography` called here with the key's own public (or,
for imported keys, private) material, never only by a round trip through the server.
CryptographyClient runs in its usual mode (public-key operations local) and with every
operation forced to the server; the request log shows which requests reached it.
"""

import hashlib
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.keyvault.keys import (
    JsonWebKey,
    KeyClient,
    KeyRotationLifetimeAction,
    KeyRotationPolicy,
    KeyRotationPolicyAction,
    KeyVaultKey,
)
from azure.keyvault.keys.crypto import (
    CryptographyClient,
    EncryptionAlgorithm,
    KeyWrapAlgorithm,
    SignatureAlgorithm,
)
from cryptography.hazmat.primitives import hashes, keywrap
from cryptography.hazmat.primitives import padding as symmetric_padding
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from accounts.models import User
from keys.models import Key, KeyVersion
from keys.services import key_create
from tests.factories import VaultFactory
from tests.live import SUFFIX, LiveDeployment
from tests.sdk import RegisteredApp, Sdk
from vaults.models import ActivityEntry, Face, Vault

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("one_entry_per_request"),
]


def error_code(error: HttpResponseError) -> str:
    assert error.error is not None
    return str(error.error.code)


def posts(deployment: LiveDeployment, mark: int, operation: str) -> int:
    return sum(
        1
        for host, method, path in deployment.log.since(mark)
        if method == "POST" and path.endswith("/" + operation)
    )


# --- independent implementations --------------------------------------------------------------


def jwk(key: KeyVaultKey | JsonWebKey) -> Any:
    """The key's JSON Web Key; the SDK's JsonWebKey sets its fields dynamically."""
    return key.key if isinstance(key, KeyVaultKey) else key


def rsa_public(key: KeyVaultKey) -> rsa.RSAPublicKey:
    material = jwk(key)
    return rsa.RSAPublicNumbers(
        int.from_bytes(material.e, "big"), int.from_bytes(material.n, "big")
    ).public_key()


def ec_public(key: KeyVaultKey) -> ec.EllipticCurvePublicKey:
    material = jwk(key)
    curves: dict[str, type[ec.EllipticCurve]] = {
        "P-256": ec.SECP256R1,
        "P-256K": ec.SECP256K1,
        "P-384": ec.SECP384R1,
        "P-521": ec.SECP521R1,
    }
    curve = curves[material.crv]()
    return ec.EllipticCurvePublicNumbers(
        int.from_bytes(material.x, "big"), int.from_bytes(material.y, "big"), curve
    ).public_key()


HASHES = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}
OAEP = {
    "RSA1_5": padding.PKCS1v15(),
    # RSA-OAEP is defined with SHA-1, as Azure and RFC 8017 define it.
    "RSA-OAEP": padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(), None),  # noqa: S303
    "RSA-OAEP-256": padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None),
}


def rsa_padding(algorithm: str) -> padding.AsymmetricPadding:
    digest = HASHES[algorithm[2:]]
    if algorithm.startswith("PS"):
        return padding.PSS(padding.MGF1(digest), digest.digest_size)
    return padding.PKCS1v15()


def jwk_of(private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> JsonWebKey:
    def raw(number: int, length: int | None = None) -> bytes:
        return number.to_bytes(length or (number.bit_length() + 7) // 8, "big")

    if isinstance(private_key, rsa.RSAPrivateKey):
        numbers = private_key.private_numbers()
        public = numbers.public_numbers
        size = (public.n.bit_length() + 7) // 8
        return JsonWebKey(
            kty="RSA",
            n=raw(public.n, size),
            e=raw(public.e),
            d=raw(numbers.d, size),
            p=raw(numbers.p),
            q=raw(numbers.q),
            dp=raw(numbers.dmp1),
            dq=raw(numbers.dmq1),
            qi=raw(numbers.iqmp),
        )
    ec_numbers = private_key.private_numbers()
    length = (private_key.curve.key_size + 7) // 8
    crv = {"secp256r1": "P-256", "secp256k1": "P-256K", "secp384r1": "P-384", "secp521r1": "P-521"}[
        private_key.curve.name
    ]
    return JsonWebKey(
        kty="EC",
        crv=crv,
        x=raw(ec_numbers.public_numbers.x, length),
        y=raw(ec_numbers.public_numbers.y, length),
        d=raw(ec_numbers.private_value, length),
    )


# --- creating, reading and changing keys ------------------------------------------------------


RSA_SIZES, EC_CURVES, OCT_SIZES = (
    (2048, 3072, 4096),
    ("P-256", "P-256K", "P-384", "P-521"),
    (
        128,
        192,
        256,
    ),
)


def test_create_every_key_type_and_size(keys: KeyClient) -> None:
    created = {}
    for size in RSA_SIZES:
        key = created[size] = keys.create_rsa_key(f"rsa-{size}", size=size)
        assert (
            key.key_type == "RSA" and len(jwk(key).n) * 8 == size and jwk(key).e == b"\x01\x00\x01"
        )
        assert key.key_operations == [
            "encrypt",
            "decrypt",
            "sign",
            "verify",
            "wrapKey",
            "unwrapKey",
        ]
        assert rsa_public(key).key_size == size
    for curve in EC_CURVES:
        key = keys.create_ec_key(f"ec-{curve.replace('-', '')}", curve=curve)
        length = {"P-256": 32, "P-256K": 32, "P-384": 48, "P-521": 66}[curve]
        assert jwk(key).crv == curve and len(jwk(key).x) == len(jwk(key).y) == length
        assert key.key_operations == ["sign", "verify"]
        ec_public(key)  # a point on the curve, or cryptography refuses it
    for size in OCT_SIZES:
        key = keys.create_oct_key(f"oct-{size}", size=size)
        assert key.key_type == "oct" and jwk(key).k is None
    listed = {item.name for item in keys.list_properties_of_keys()}
    assert len(listed) == len(RSA_SIZES) + len(EC_CURVES) + len(OCT_SIZES)
    # The public material read back is the material created.
    assert jwk(keys.get_key("rsa-4096")).n == jwk(created[4096]).n
    with pytest.raises(HttpResponseError) as refused:
        keys.create_rsa_key("hsm", hardware_protected=True)
    assert refused.value.status_code == 400 and error_code(refused.value) == "BadParameter"


def test_get_latest_and_named_versions_update_and_rotate(keys: KeyClient) -> None:
    first = keys.create_ec_key("signer", curve="P-256", tags={"team": "a"})
    second = keys.create_ec_key("signer", curve="P-256")
    assert keys.get_key("signer").properties.version == second.properties.version
    assert jwk(keys.get_key("signer", first.properties.version)).x == jwk(first).x
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    updated = keys.update_key_properties(
        "signer", first.properties.version, enabled=False, expires_on=expires, tags={"t": "1"}
    )
    assert updated.properties.enabled is False
    assert updated.properties.expires_on == expires and updated.properties.tags == {"t": "1"}
    # Only what the update names changes: the latest version keeps its attributes.
    latest = keys.update_key_properties("signer", tags={"t": "2"})
    assert (
        latest.properties.enabled is True and latest.properties.version == second.properties.version
    )
    rotated = keys.rotate_key("signer")
    assert rotated.properties.version not in (first.properties.version, second.properties.version)
    assert jwk(rotated).x != jwk(second).x and jwk(rotated).crv == "P-256"
    versions = [item.version for item in keys.list_properties_of_key_versions("signer")]
    assert versions == [
        first.properties.version,
        second.properties.version,
        rotated.properties.version,
    ]


def test_imported_keys_sign_and_decrypt_for_their_holder(
    keys: KeyClient, remote: Callable[[KeyVaultKey], CryptographyClient]
) -> None:
    private_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    imported = keys.import_key("imported-rsa", jwk_of(private_rsa))
    assert jwk(imported).n == jwk(jwk_of(private_rsa)).n and jwk(imported).d is None
    digest = hashlib.sha256(b"imported").digest()
    signature = remote(imported).sign(SignatureAlgorithm.rs256, digest).signature
    private_rsa.public_key().verify(
        signature, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256())
    )
    ciphertext = private_rsa.public_key().encrypt(b"for the vault", OAEP["RSA-OAEP-256"])
    assert (
        remote(imported).decrypt(EncryptionAlgorithm.rsa_oaep_256, ciphertext).plaintext
        == b"for the vault"
    )

    private_ec = ec.generate_private_key(ec.SECP384R1())
    imported_ec = keys.import_key("imported-ec", jwk_of(private_ec))
    digest = hashlib.sha384(b"imported").digest()
    raw = remote(imported_ec).sign(SignatureAlgorithm.es384, digest).signature
    der = utils.encode_dss_signature(
        int.from_bytes(raw[:48], "big"), int.from_bytes(raw[48:], "big")
    )
    private_ec.public_key().verify(der, digest, ec.ECDSA(utils.Prehashed(hashes.SHA384())))

    secret = os.urandom(32)
    imported_oct = keys.import_key("imported-oct", JsonWebKey(kty="oct", k=secret))
    result = remote(imported_oct).encrypt(
        EncryptionAlgorithm.a256_gcm, b"sealed", additional_authenticated_data=b"ctx"
    )
    assert AESGCM(secret).decrypt(result.iv, result.ciphertext + result.tag, b"ctx") == b"sealed"


# --- every algorithm, against cryptography ----------------------------------------------------


@pytest.mark.parametrize("mode", ["mixed", "remote"])
def test_rsa_algorithms(
    mode: str,
    deployment: LiveDeployment,
    keys: KeyClient,
    request: pytest.FixtureRequest,
) -> None:
    client_for = request.getfixturevalue(mode)
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key = keys.import_key("rsa", jwk_of(private))
    client = client_for(key)
    mark = deployment.log.mark()
    for name in ("RSA1_5", "RSA-OAEP", "RSA-OAEP-256"):
        algorithm = EncryptionAlgorithm(name)
        encrypted = client.encrypt(algorithm, b"plaintext").ciphertext
        assert private.decrypt(encrypted, OAEP[name]) == b"plaintext"
        theirs = private.public_key().encrypt(b"theirs", OAEP[name])
        assert client.decrypt(algorithm, theirs).plaintext == b"theirs"
        wrapped = client.wrap_key(KeyWrapAlgorithm(name), b"k" * 32).encrypted_key
        assert private.decrypt(wrapped, OAEP[name]) == b"k" * 32
        assert client.unwrap_key(KeyWrapAlgorithm(name), theirs).key == b"theirs"
    for name in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"):
        digest_algorithm = HASHES[name[2:]]
        digest = hashlib.new(digest_algorithm.name, b"message").digest()
        signature = client.sign(SignatureAlgorithm(name), digest).signature
        private.public_key().verify(
            signature, digest, rsa_padding(name), utils.Prehashed(digest_algorithm)
        )
        theirs = private.sign(digest, rsa_padding(name), utils.Prehashed(digest_algorithm))
        assert client.verify(SignatureAlgorithm(name), digest, theirs).is_valid
        assert not client.verify(SignatureAlgorithm(name), digest, bytes(len(theirs))).is_valid
    # Decrypt, unwrap and sign always reach the server; encrypt, wrap and verify only when
    # the client is made to send them.
    expected_local = 0 if mode == "remote" else None
    assert posts(deployment, mark, "decrypt") == 3 and posts(deployment, mark, "unwrapkey") == 3
    assert posts(deployment, mark, "sign") == 6
    if expected_local == 0:
        assert posts(deployment, mark, "encrypt") == 3 and posts(deployment, mark, "wrapkey") == 3
        assert posts(deployment, mark, "verify") == 12
    else:
        assert posts(deployment, mark, "encrypt") == posts(deployment, mark, "wrapkey") == 0
        assert posts(deployment, mark, "verify") == 0


@pytest.mark.parametrize("mode", ["mixed", "remote"])
def test_ec_algorithms(
    mode: str, deployment: LiveDeployment, keys: KeyClient, request: pytest.FixtureRequest
) -> None:
    client_for = request.getfixturevalue(mode)
    mark = deployment.log.mark()
    for curve, name, size in (
        ("P-256", "ES256", 32),
        ("P-256K", "ES256K", 32),
        ("P-384", "ES384", 48),
        ("P-521", "ES512", 66),
    ):
        key = keys.create_ec_key(f"ec-{size}-{name}", curve=curve)
        client = client_for(key)
        digest_algorithm = {32: hashes.SHA256(), 48: hashes.SHA384(), 66: hashes.SHA512()}[size]
        digest = hashlib.new(digest_algorithm.name, b"message").digest()
        raw = client.sign(SignatureAlgorithm(name), digest).signature
        assert len(raw) == 2 * size
        der = utils.encode_dss_signature(
            int.from_bytes(raw[:size], "big"), int.from_bytes(raw[size:], "big")
        )
        ec_public(key).verify(der, digest, ec.ECDSA(utils.Prehashed(digest_algorithm)))
        assert client.verify(SignatureAlgorithm(name), digest, raw).is_valid
        assert not client.verify(SignatureAlgorithm(name), digest, raw[::-1]).is_valid
    assert posts(deployment, mark, "sign") == 4
    assert posts(deployment, mark, "verify") == (8 if mode == "remote" else 0)


def test_oct_algorithms_against_cryptography(
    keys: KeyClient, remote: Callable[[KeyVaultKey], CryptographyClient]
) -> None:
    for size in OCT_SIZES:
        secret = os.urandom(size // 8)
        key = keys.import_key(f"oct-{size}", JsonWebKey(kty="oct", k=secret))
        # Remote only: given an oct key without `k` (none is ever returned), the SDK's local
        # provider wraps and CBC-encrypts with a random key of its own (see the README).
        client = remote(key)
        gcm = EncryptionAlgorithm(f"A{size}GCM")
        sealed = client.encrypt(gcm, b"gcm text", additional_authenticated_data=b"aad")
        assert len(sealed.iv) == 12 and len(sealed.tag) == 16
        assert (
            AESGCM(secret).decrypt(sealed.iv, sealed.ciphertext + sealed.tag, b"aad") == b"gcm text"
        )
        nonce = os.urandom(12)
        theirs = AESGCM(secret).encrypt(nonce, b"their gcm", None)
        opened = client.decrypt(gcm, theirs[:-16], iv=nonce, authentication_tag=theirs[-16:])
        assert opened.plaintext == b"their gcm"
        iv = os.urandom(16)
        cbc = client.encrypt(
            EncryptionAlgorithm(f"A{size}CBC"), b"sixteen byte blk", iv=iv
        ).ciphertext
        decryptor = Cipher(algorithms.AES(secret), modes.CBC(iv)).decryptor()
        assert decryptor.update(cbc) + decryptor.finalize() == b"sixteen byte blk"
        padded = client.encrypt(
            EncryptionAlgorithm(f"A{size}CBCPAD"), b"any length", iv=iv
        ).ciphertext
        decryptor = Cipher(algorithms.AES(secret), modes.CBC(iv)).decryptor()
        unpadder = symmetric_padding.PKCS7(128).unpadder()
        plain = (
            unpadder.update(decryptor.update(padded) + decryptor.finalize()) + unpadder.finalize()
        )
        assert plain == b"any length"
        assert (
            client.decrypt(EncryptionAlgorithm(f"A{size}CBCPAD"), padded, iv=iv).plaintext
            == b"any length"
        )
        wrapped = client.wrap_key(KeyWrapAlgorithm(f"A{size}KW"), b"w" * 32).encrypted_key
        assert keywrap.aes_key_unwrap(secret, wrapped) == b"w" * 32
        theirs_wrapped = keywrap.aes_key_wrap(secret, b"t" * 24)
        assert client.unwrap_key(KeyWrapAlgorithm(f"A{size}KW"), theirs_wrapped).key == b"t" * 24


# --- paging, deletion, backup, rotation policy, random bytes ------------------------------------


def test_paging_over_more_than_sixty_keys_and_versions(
    keys: KeyClient, system: User, vault: Vault
) -> None:
    names = [f"page-{number:03d}" for number in range(65)]
    for name in names:
        key_create(actor=system, vault_name=vault.name, name=name, kty="oct", size=128)
    for _ in range(61):
        key_create(actor=system, vault_name=vault.name, name="page-000", kty="oct", size=128)
    pages = list(keys.list_properties_of_keys(max_page_size=7).by_page())
    assert [len(list(page)) for page in pages][:-1] == [7] * 9
    assert sorted(item.name for item in keys.list_properties_of_keys(max_page_size=7)) == names
    versions = list(keys.list_properties_of_key_versions("page-000", max_page_size=6))
    stored = KeyVersion.objects.filter(key__name="page-000").order_by("created_at", "version")
    assert [item.version for item in versions] == [version.version for version in stored]
    assert len(versions) == 62
    for name in names[:30]:
        keys.begin_delete_key(name).result()
    deleted = list(keys.list_deleted_keys(max_page_size=4))
    assert sorted(item.name for item in deleted) == names[:30]
    assert all(str(item.recovery_id).endswith(f"/deletedkeys/{item.name}") for item in deleted)


def test_delete_and_recover_with_the_pollers(keys: KeyClient) -> None:
    created = keys.create_rsa_key("doomed")
    deleted = keys.begin_delete_key("doomed", _polling_interval=0.05).result()
    assert str(deleted.recovery_id).endswith("/deletedkeys/doomed")
    assert deleted.scheduled_purge_date and deleted.deleted_date
    assert deleted.scheduled_purge_date - deleted.deleted_date == timedelta(days=90)
    assert keys.get_deleted_key("doomed").properties.version == created.properties.version
    with pytest.raises(HttpResponseError) as gone:
        keys.get_key("doomed")
    assert gone.value.status_code == 404
    recovered = keys.begin_recover_deleted_key("doomed", _polling_interval=0.05).result()
    assert jwk(recovered).n == jwk(created).n
    keys.begin_delete_key("doomed", _polling_interval=0.05).wait()
    keys.purge_deleted_key("doomed")
    assert not Key.objects.filter(name="doomed").exists()


def test_backup_then_restore_into_another_vault(
    sdk: Sdk, vault: Vault, remote: Callable[[KeyVaultKey], CryptographyClient]
) -> None:
    other = VaultFactory.create(name="restore-here", resource_group=vault.resource_group)
    app = sdk.app("Key Vault Crypto Officer", scope=f"/resourceGroups/{vault.resource_group.name}")
    credential = sdk.credential(app)
    source, target = sdk.keys(vault.name, credential), sdk.keys(other.name, credential)
    first = source.create_ec_key("moving", curve="P-256")
    second = source.rotate_key("moving")
    blob = source.backup_key("moving")
    restored = target.restore_key_backup(blob)
    assert (
        restored.id.startswith(f"https://{other.name}.{SUFFIX}:")
        and jwk(restored).x == jwk(second).x
    )
    versions = [item.version for item in target.list_properties_of_key_versions("moving")]
    assert versions == [first.properties.version, second.properties.version]
    digest = hashlib.sha256(b"after the move").digest()
    raw = sdk.crypto(restored.id, credential).sign(SignatureAlgorithm.es256, digest).signature
    der = utils.encode_dss_signature(
        int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    )
    ec_public(second).verify(der, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    with pytest.raises(HttpResponseError) as conflict:
        target.restore_key_backup(blob)
    assert conflict.value.status_code == 409


def test_rotation_policy_and_rotation_under_it(keys: KeyClient) -> None:
    keys.create_ec_key("rotating")
    default = keys.get_key_rotation_policy("rotating")
    assert [(action.action, action.time_before_expiry) for action in default.lifetime_actions] == [
        (KeyRotationPolicyAction.notify, "P30D")
    ]
    policy = keys.update_key_rotation_policy(
        "rotating",
        KeyRotationPolicy(),
        lifetime_actions=[
            KeyRotationLifetimeAction(KeyRotationPolicyAction.rotate, time_after_create="P60D"),
            KeyRotationLifetimeAction(KeyRotationPolicyAction.notify, time_before_expiry="P10D"),
        ],
        expires_in="P90D",
    )
    assert policy.expires_in == "P90D"
    assert str(policy.id).endswith("/keys/rotating/rotationpolicy")
    assert {
        (action.action, action.time_after_create, action.time_before_expiry)
        for action in policy.lifetime_actions
    } == {
        (KeyRotationPolicyAction.rotate, "P60D", None),
        (KeyRotationPolicyAction.notify, None, "P10D"),
    }
    assert keys.get_key_rotation_policy("rotating").expires_in == "P90D"
    rotated = keys.rotate_key("rotating")
    assert rotated.properties.expires_on is not None
    left = rotated.properties.expires_on - datetime.now(UTC)
    assert timedelta(days=89, hours=23) < left <= timedelta(days=90)
    with pytest.raises(HttpResponseError) as refused:
        keys.update_key_rotation_policy("rotating", KeyRotationPolicy(), expires_in="P20D")
    assert refused.value.status_code == 400 and "28 days" in refused.value.message


def test_random_bytes(keys: KeyClient) -> None:
    values = {keys.get_random_bytes(32) for _ in range(3)}
    assert len(values) == 3 and all(len(value) == 32 for value in values)
    assert len(keys.get_random_bytes(128)) == 128
    with pytest.raises(HttpResponseError) as refused:
        keys.get_random_bytes(129)
    assert refused.value.status_code == 400 and "128" in refused.value.message


def test_every_supported_api_version(sdk: Sdk, vault: Vault, officer: RegisteredApp) -> None:
    credential = sdk.credential(officer)
    for version in ("7.4", "7.5", "7.6", "2025-07-01"):
        client = sdk.keys(vault.name, credential, api_version=version)
        key = client.create_ec_key(f"v-{version.replace('.', '-')}")
        assert client.get_key(key.name).id == key.id
    stored = set(
        ActivityEntry.objects.filter(operation="KeyCreate").values_list("api_version", flat=True)
    )
    assert stored == {"7.4", "7.5", "7.6", "2025-07-01"}


def test_the_activity_entry_of_a_request_names_the_application_and_the_request(
    keys: KeyClient, officer: RegisteredApp
) -> None:
    key = keys.create_ec_key("traced")
    entry = ActivityEntry.objects.filter(operation="KeyCreate", result="Success").get()
    assert entry.actor_name == officer.principal.username and entry.face == Face.API
    assert entry.client_ip == "127.0.0.1" and entry.api_version == "2025-07-01"
    assert len(entry.request_id) == 36 and entry.correlation_id
    assert entry.target.endswith(f"/keys/traced/{key.properties.version}")
