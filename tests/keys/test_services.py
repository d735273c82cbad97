"""keys.services: Azure's key operations, their refusals and their activity records.

Crypto results are checked with `cryptography` called directly: public keys are rebuilt from
the bundle's public JWK, keys imported here are held by the test, and oct material is read
back from the stored row with keys.protection.unprotect.
"""

import base64
import hashlib
import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, keywrap, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import User
from keys import protection, services, shapes
from keys.crypto import Material
from keys.models import Key, KeyVersion
from keys.protection import ProtectedMaterial, material_cache
from keys.services import lifecycle
from kvconsole.errors import (
    BadParameter,
    Conflict,
    Forbidden,
    KeyDisabled,
    KeyNotActive,
    NotFound,
    OperationNotAllowed,
    ServiceError,
)
from tests.factories import VaultFactory
from vaults.models import ActivityEntry, Vault

RSA_OPS = ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"]
CURVES: dict[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(),
    "P-256K": ec.SECP256K1(),
    "P-384": ec.SECP384R1(),
    "P-521": ec.SECP521R1(),
}
DIGEST = hashlib.sha256(b"the message the client hashed").digest()
OAEP_256 = padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)
RS256 = (padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
ES256 = ec.ECDSA(utils.Prehashed(hashes.SHA256()))
# Counted under transactional_db, so that any transaction the activity entry opens (BEGIN,
# COMMIT) is counted as it would be in production.
CRYPTO_QUERY_BUDGET = 4


# --- helpers -------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def int_b64url(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8))


def jwk_int(jwk: dict[str, Any], name: str) -> int:
    return int.from_bytes(b64url_decode(jwk[name]))


def bundle_jwk(version: KeyVersion) -> dict[str, Any]:
    return shapes.key_bundle(version, version.key.vault.uri)["key"]


def public_key(version: KeyVersion) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
    """The version's public key, built by `cryptography` from the bundle's JWK numbers."""
    jwk = bundle_jwk(version)
    if jwk["kty"] == "RSA":
        return rsa.RSAPublicNumbers(jwk_int(jwk, "e"), jwk_int(jwk, "n")).public_key()
    curve = CURVES[jwk["crv"]]
    return ec.EllipticCurvePublicNumbers(jwk_int(jwk, "x"), jwk_int(jwk, "y"), curve).public_key()


def rsa_public(version: KeyVersion) -> rsa.RSAPublicKey:
    key = public_key(version)
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def ec_public(version: KeyVersion) -> ec.EllipticCurvePublicKey:
    key = public_key(version)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


def verify_es256(key: ec.EllipticCurvePublicKey, digest: bytes, signature: bytes) -> None:
    """Raise InvalidSignature unless the raw r||s signature is valid."""
    assert len(signature) == 64
    der = utils.encode_dss_signature(int.from_bytes(signature[:32]), int.from_bytes(signature[32:]))
    key.verify(der, digest, ES256)


def es256_signature(key: ec.EllipticCurvePrivateKey, digest: bytes) -> bytes:
    r, s = utils.decode_dss_signature(key.sign(digest, ES256))
    return r.to_bytes(32) + s.to_bytes(32)


def stored_row(version: KeyVersion) -> KeyVersion:
    return KeyVersion.objects.select_related("key__vault__resource_group").get(pk=version.pk)


def stored_material(version: KeyVersion) -> Material:
    """The private material, opened from the stored row as the service would."""
    row = stored_row(version)
    protected = ProtectedMaterial(
        row.master_key_id, bytes(row.wrapped_data_key), bytes(row.sealed_material)
    )
    return protection.unprotect(row.kty, protected, aad=row.storage_aad)


def oct_bytes(version: KeyVersion) -> bytes:
    key = stored_material(version).key
    assert isinstance(key, bytes)
    return key


def last_entry() -> ActivityEntry:
    entry = ActivityEntry.objects.order_by("-seq").first()
    assert entry is not None
    return entry


def head_seq() -> int:
    entry = ActivityEntry.objects.order_by("-seq").first()
    return entry.seq if entry else 0


def assert_refusal_recorded(
    actor: User,
    operation: str,
    error: ServiceError,
    *,
    target: str,
    vault_name: str,
) -> ActivityEntry:
    entry = last_entry()
    assert entry.operation == operation
    assert entry.actor_name == actor.username
    assert entry.result == error.result
    assert entry.status_code == error.status
    assert entry.message == error.message
    assert entry.target == target
    assert entry.vault_name == vault_name
    return entry


def key_target(vault: Vault, name: str, version: str | None = None) -> str:
    return f"vaults/{vault.name}/keys/{name}" + (f"/{version}" if version else "")


def snapshot() -> list[Any]:
    """Every key and version row, to prove a refused call changed nothing."""
    return [
        list(Key.objects.order_by("pk").values()),
        list(KeyVersion.objects.order_by("pk").values()),
    ]


def rsa_private_jwk(key: rsa.RSAPrivateKey) -> dict[str, Any]:
    numbers = key.private_numbers()
    return {
        "kty": "RSA",
        "n": int_b64url(numbers.public_numbers.n),
        "e": int_b64url(numbers.public_numbers.e),
        "d": int_b64url(numbers.d),
        "p": int_b64url(numbers.p),
        "q": int_b64url(numbers.q),
        "dp": int_b64url(numbers.dmp1),
        "dq": int_b64url(numbers.dmq1),
        "qi": int_b64url(numbers.iqmp),
    }


def ec_private_jwk(key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    numbers = key.private_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": b64url(numbers.public_numbers.x.to_bytes(32)),
        "y": b64url(numbers.public_numbers.y.to_bytes(32)),
        "d": b64url(numbers.private_value.to_bytes(32)),
    }


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_private() -> rsa.RSAPrivateKey:
    """One RSA key for the module: generating RSA dominates the runtime."""
    return rsa.generate_private_key(65537, 2048)


@pytest.fixture(scope="module")
def ec_private() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def import_rsa(
    system: User, vault: Vault, rsa_private: rsa.RSAPrivateKey
) -> Callable[..., KeyVersion]:
    """Import the module's RSA key (whose private half the test holds) as `name`."""

    def run(name: str = "rsa", *, in_vault: Vault | None = None, **options: Any) -> KeyVersion:
        return services.key_import(
            actor=system,
            vault_name=(in_vault or vault).name,
            name=name,
            jwk=rsa_private_jwk(rsa_private),
            **options,
        )

    return run


@pytest.fixture
def import_ec(
    system: User, vault: Vault, ec_private: ec.EllipticCurvePrivateKey
) -> Callable[..., KeyVersion]:
    def run(name: str = "ec", **options: Any) -> KeyVersion:
        jwk = ec_private_jwk(ec_private)
        return services.key_import(
            actor=system, vault_name=vault.name, name=name, jwk=jwk, **options
        )

    return run


# --- key_create ------------------------------------------------------------------------------


def test_create_defaults_to_rsa_2048_with_exponent_65537_and_all_six_ops(make_key):
    version = make_key("k")

    jwk = bundle_jwk(version)
    assert jwk["kty"] == "RSA"
    assert jwk["e"] == "AQAB"
    assert jwk_int(jwk, "e") == 65537
    assert jwk_int(jwk, "n").bit_length() == 2048
    assert len(b64url_decode(jwk["n"])) == 256
    assert jwk["key_ops"] == RSA_OPS
    assert "d" not in jwk
    assert (version.kty, version.size, version.curve, version.origin) == (
        "RSA",
        2048,
        "",
        KeyVersion.Origin.GENERATED,
    )


def test_create_ec_defaults_to_p256_with_sign_and_verify(make_key):
    version = make_key("k", kty="EC")

    jwk = bundle_jwk(version)
    assert (jwk["kty"], jwk["crv"]) == ("EC", "P-256")
    assert jwk["key_ops"] == ["sign", "verify"]
    assert len(b64url_decode(jwk["x"])) == len(b64url_decode(jwk["y"])) == 32
    assert "d" not in jwk
    # cryptography refuses a point that is not on the curve.
    assert isinstance(ec_public(version).curve, ec.SECP256R1)


def test_create_oct_defaults_to_256_bits_with_encryption_and_wrap_ops(make_key):
    version = make_key("k", kty="oct")

    jwk = bundle_jwk(version)
    assert jwk["kty"] == "oct"
    assert jwk["key_ops"] == ["encrypt", "decrypt", "wrapKey", "unwrapKey"]
    assert "k" not in jwk
    assert version.size == 256
    assert len(oct_bytes(version)) == 32


@pytest.mark.parametrize(
    ("kty", "options"),
    [
        ("RSA", {"size": 3072}),
        ("RSA", {"size": 4096}),
        ("EC", {"curve": "P-256K"}),
        ("EC", {"curve": "P-384"}),
        ("EC", {"curve": "P-521"}),
        ("oct", {"size": 128}),
        ("oct", {"size": 192}),
    ],
)
def test_create_honours_size_and_curve(make_key, kty, options):
    version = make_key("k", kty=kty, **options)

    if kty == "RSA":
        assert rsa_public(version).key_size == options["size"]
        assert version.size == options["size"]
    elif kty == "EC":
        assert bundle_jwk(version)["crv"] == options["curve"]
        assert ec_public(version).curve.name == CURVES[options["curve"]].name
        assert version.curve == options["curve"]
    else:
        assert len(oct_bytes(version)) * 8 == options["size"]
        assert version.size == options["size"]


def test_create_honours_key_ops_and_tags(make_key):
    version = make_key("k", kty="RSA", key_ops=["sign", "verify"], tags={"team": "payments"})

    assert bundle_jwk(version)["key_ops"] == ["sign", "verify"]
    assert stored_row(version).tags == {"team": "payments"}


def test_create_ec_with_wrap_ops_is_refused_with_azures_message(make_key, vault):
    with pytest.raises(BadParameter) as refused:
        make_key("k", kty="EC", key_ops=["sign", "verify", "wrapKey", "unwrapKey"])

    assert refused.value.message == (
        'Unsupported key operation(s): "wrapKey", "unwrapKey". '
        'Supported values are "sign", "verify".'
    )
    assert refused.value.code == "BadParameter"
    assert refused.value.status == 400
    assert not Key.objects.exists()


@pytest.mark.parametrize("kty", ["RSA-HSM", "EC-HSM", "oct-HSM"])
def test_create_hsm_key_type_is_refused(make_key, kty):
    with pytest.raises(BadParameter):
        make_key("k", kty=kty)

    assert not Key.objects.exists()


def test_create_unknown_key_type_is_refused(make_key):
    with pytest.raises(BadParameter):
        make_key("k", kty="DSA")

    assert not Key.objects.exists()


@pytest.mark.parametrize(
    ("kty", "options"),
    [
        ("RSA", {"size": 1024}),
        ("EC", {"curve": "P-192"}),
        ("EC", {"size": 256}),
        ("oct", {"size": 512}),
    ],
)
def test_create_unsupported_size_or_curve_is_refused(make_key, kty, options):
    with pytest.raises(BadParameter):
        make_key("k", kty=kty, **options)

    assert not Key.objects.exists()


@pytest.mark.parametrize("name", ["", "a" * 128, "my_key", "key.one", "kéy", "key one"])
def test_create_invalid_name_is_refused(make_key, name):
    with pytest.raises(BadParameter):
        make_key(name, kty="EC")

    assert not Key.objects.exists()


def test_create_accepts_a_127_character_name(make_key):
    version = make_key("a" * 127, kty="EC")

    assert version.key.name == "a" * 127


@pytest.mark.parametrize("exp_offset", [timedelta(0), timedelta(hours=-1)])
def test_create_with_nbf_not_before_exp_is_refused(make_key, exp_offset):
    not_before = timezone.now() + timedelta(days=1)

    with pytest.raises(BadParameter):
        make_key("k", kty="EC", not_before=not_before, expires=not_before + exp_offset)

    assert not Key.objects.exists()


def test_create_stores_nbf_and_exp(make_key):
    not_before = timezone.now() - timedelta(days=1)
    expires = timezone.now() + timedelta(days=30)

    version = make_key("k", kty="EC", not_before=not_before, expires=expires)

    row = stored_row(version)
    assert (row.not_before, row.expires) == (not_before, expires)
    attributes = shapes.key_bundle(version, version.key.vault.uri)["attributes"]
    assert attributes["nbf"] == int(not_before.timestamp())
    assert attributes["exp"] == int(expires.timestamp())


def test_create_with_naive_dates_is_refused(make_key):
    with pytest.raises(BadParameter, match="time zone"):
        make_key("k", kty="EC", expires=timezone.now().replace(tzinfo=None) + timedelta(days=1))

    assert not Key.objects.exists()


def test_create_with_too_many_tags_is_refused(make_key):
    with pytest.raises(BadParameter):
        make_key("k", kty="EC", tags={f"tag{number}": "x" for number in range(16)})

    assert not Key.objects.exists()


@pytest.mark.parametrize("exponent", [3, 17, 65539])
def test_create_with_other_public_exponent_is_refused(make_key, exponent):
    with pytest.raises(BadParameter):
        make_key("k", kty="RSA", public_exponent=exponent)

    assert not Key.objects.exists()


def test_create_on_existing_name_adds_a_new_current_version(make_key, system, vault):
    first = make_key("k", kty="EC")

    second = make_key("k", kty="EC")

    key = Key.objects.get()
    assert key.versions.count() == 2
    assert key.current_version_id == second.pk != first.pk
    assert bundle_jwk(second)["x"] != bundle_jwk(first)["x"]
    current = services.key_get(actor=system, vault_name=vault.name, name="k")
    assert current.version == second.version


def test_key_names_are_case_insensitive(make_key, system, vault):
    make_key("MyKey", kty="EC")

    second = make_key("mykey", kty="EC")

    key = Key.objects.get()
    assert key.name == "MyKey"
    assert key.versions.count() == 2
    fetched = services.key_get(actor=system, vault_name=vault.name, name="MYKEY")
    assert fetched.version == second.version


def test_same_name_in_two_vaults_is_two_keys(make_key, vault):
    other = VaultFactory.create()

    make_key("k", kty="EC")
    make_key("k", kty="EC", in_vault=other)

    assert Key.objects.filter(name="k").count() == 2


# --- key_import ------------------------------------------------------------------------------


def test_import_rsa_jwk_stores_the_public_numbers(system, vault, rsa_private):
    version = services.key_import(
        actor=system, vault_name=vault.name, name="k", jwk=rsa_private_jwk(rsa_private)
    )

    assert rsa_public(version).public_numbers() == rsa_private.public_key().public_numbers()
    assert version.origin == KeyVersion.Origin.IMPORTED
    assert bundle_jwk(version)["key_ops"] == RSA_OPS
    assert "d" not in bundle_jwk(version)


def test_import_rsa_jwk_signs_with_the_imported_key(import_rsa, system, vault, rsa_private):
    import_rsa("k")

    signed = services.key_sign(
        actor=system, vault_name=vault.name, name="k", algorithm="RS256", digest=DIGEST
    )

    rsa_private.public_key().verify(signed.value, DIGEST, *RS256)


def test_import_ec_jwk_stores_the_public_numbers(system, vault, ec_private):
    version = services.key_import(
        actor=system, vault_name=vault.name, name="k", jwk=ec_private_jwk(ec_private)
    )

    assert ec_public(version).public_numbers() == ec_private.public_key().public_numbers()
    assert bundle_jwk(version)["key_ops"] == ["sign", "verify"]


def test_import_oct_jwk_stores_the_key_and_encrypts_with_it(system, vault):
    secret = os.urandom(32)

    version = services.key_import(
        actor=system, vault_name=vault.name, name="k", jwk={"kty": "oct", "k": b64url(secret)}
    )
    result = services.key_encrypt(
        actor=system, vault_name=vault.name, name="k", algorithm="A256GCM", plaintext=b"hello"
    )

    assert oct_bytes(version) == secret
    assert "k" not in bundle_jwk(version)
    assert result.iv is not None and result.tag is not None
    assert AESGCM(secret).decrypt(result.iv, result.value + result.tag, None) == b"hello"


@pytest.mark.parametrize(
    ("kind", "private_format"),
    [
        ("rsa", serialization.PrivateFormat.TraditionalOpenSSL),  # PKCS#1
        ("rsa", serialization.PrivateFormat.PKCS8),
        ("ec", serialization.PrivateFormat.TraditionalOpenSSL),  # SEC1
        ("ec", serialization.PrivateFormat.PKCS8),
    ],
)
def test_import_pem_stores_the_public_numbers(
    system, vault, rsa_private, ec_private, kind, private_format
):
    private = rsa_private if kind == "rsa" else ec_private
    pem = private.private_bytes(
        serialization.Encoding.PEM, private_format, serialization.NoEncryption()
    )

    version = services.key_import(actor=system, vault_name=vault.name, name="k", pem=pem)

    assert public_key(version).public_numbers() == private.public_key().public_numbers()


def test_import_encrypted_pkcs8_pem_with_password(system, vault, ec_private):
    pem = ec_private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"hunter2"),
    )

    version = services.key_import(
        actor=system, vault_name=vault.name, name="k", pem=pem, pem_password=b"hunter2"
    )

    assert ec_public(version).public_numbers() == ec_private.public_key().public_numbers()


@pytest.mark.parametrize("password", [None, b"wrong"])
def test_import_encrypted_pem_without_the_right_password_is_refused(
    system, vault, ec_private, password
):
    pem = ec_private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"hunter2"),
    )

    with pytest.raises(BadParameter):
        services.key_import(
            actor=system, vault_name=vault.name, name="k", pem=pem, pem_password=password
        )

    assert not Key.objects.exists()


def test_import_on_existing_name_adds_a_new_current_version(make_key, import_ec, ec_private):
    first = make_key("ec", kty="EC")

    second = import_ec("ec")

    key = Key.objects.get()
    assert key.versions.count() == 2
    assert key.current_version_id == second.pk != first.pk
    assert ec_public(second).public_numbers() == ec_private.public_key().public_numbers()


def test_import_honours_jwk_key_ops(system, vault, rsa_private):
    jwk = {**rsa_private_jwk(rsa_private), "key_ops": ["sign", "verify"]}

    version = services.key_import(actor=system, vault_name=vault.name, name="k", jwk=jwk)

    assert bundle_jwk(version)["key_ops"] == ["sign", "verify"]
    with pytest.raises(OperationNotAllowed):
        services.key_encrypt(
            actor=system, vault_name=vault.name, name="k", algorithm="RSA-OAEP", plaintext=b"x"
        )


def test_import_refuses_jwk_key_ops_the_key_type_cannot_do(system, vault, ec_private):
    jwk = {**ec_private_jwk(ec_private), "key_ops": ["sign", "wrapKey"]}

    with pytest.raises(BadParameter, match="wrapKey"):
        services.key_import(actor=system, vault_name=vault.name, name="k", jwk=jwk)

    assert not Key.objects.exists()


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_import_public_only_jwk_is_refused(system, vault, rsa_private, ec_private, kind):
    jwk = rsa_private_jwk(rsa_private) if kind == "rsa" else ec_private_jwk(ec_private)
    public_only = {
        name: value for name, value in jwk.items() if name not in ("d", "p", "q", "dp", "dq", "qi")
    }

    with pytest.raises(BadParameter):
        services.key_import(actor=system, vault_name=vault.name, name="k", jwk=public_only)

    assert not Key.objects.exists()


def test_import_public_only_oct_jwk_is_refused(system, vault):
    with pytest.raises(BadParameter):
        services.key_import(actor=system, vault_name=vault.name, name="k", jwk={"kty": "oct"})

    assert not Key.objects.exists()


def test_import_public_key_pem_is_refused(system, vault, ec_private):
    pem = ec_private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    with pytest.raises(BadParameter, match="private key"):
        services.key_import(actor=system, vault_name=vault.name, name="k", pem=pem)

    assert not Key.objects.exists()


@pytest.mark.parametrize("kty", ["RSA-HSM", "EC-HSM", "oct-HSM"])
def test_import_hsm_jwk_is_refused(system, vault, rsa_private, kty):
    jwk = {**rsa_private_jwk(rsa_private), "kty": kty}

    with pytest.raises(BadParameter):
        services.key_import(actor=system, vault_name=vault.name, name="k", jwk=jwk)

    assert not Key.objects.exists()


@pytest.mark.parametrize("as_pem", [False, True])
def test_import_with_hsm_flag_is_refused(system, vault, ec_private, as_pem):
    source: dict[str, Any] = (
        {
            "pem": ec_private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        }
        if as_pem
        else {"jwk": ec_private_jwk(ec_private)}
    )

    with pytest.raises(BadParameter):
        services.key_import(actor=system, vault_name=vault.name, name="k", hsm=True, **source)

    assert not Key.objects.exists()


def test_import_needs_exactly_one_of_jwk_and_pem(system, vault, ec_private):
    pem = ec_private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )

    with pytest.raises(BadParameter):
        services.key_import(actor=system, vault_name=vault.name, name="k")
    with pytest.raises(BadParameter):
        services.key_import(
            actor=system, vault_name=vault.name, name="k", jwk=ec_private_jwk(ec_private), pem=pem
        )

    assert not Key.objects.exists()


# --- key_get, key_list, key_list_versions ------------------------------------------------------


def test_get_returns_the_current_version_unless_one_is_named(make_key, system, vault):
    first = make_key("k", kty="EC")
    second = make_key("k", kty="EC")

    current = services.key_get(actor=system, vault_name=vault.name, name="k")
    named = services.key_get(actor=system, vault_name=vault.name, name="k", version=first.version)

    assert current.version == second.version
    assert named.version == first.version
    assert bundle_jwk(named) == bundle_jwk(first)


def test_get_unknown_version_is_key_not_found(make_key, system, vault):
    make_key("k", kty="EC")

    with pytest.raises(NotFound) as refused:
        services.key_get(actor=system, vault_name=vault.name, name="k", version="0" * 32)

    assert refused.value.code == "KeyNotFound"
    assert refused.value.status == 404


def test_get_version_of_another_key_is_key_not_found(make_key, system, vault):
    other = make_key("other", kty="EC")
    make_key("k", kty="EC")

    with pytest.raises(NotFound) as refused:
        services.key_get(actor=system, vault_name=vault.name, name="k", version=other.version)

    assert refused.value.code == "KeyNotFound"


def test_get_unknown_key_is_key_not_found_and_recorded(system, vault):
    with pytest.raises(NotFound) as refused:
        services.key_get(actor=system, vault_name=vault.name, name="nope")

    assert refused.value.code == "KeyNotFound"
    assert_refusal_recorded(
        system, "KeyGet", refused.value, target=key_target(vault, "nope"), vault_name=vault.name
    )


def test_list_holds_only_live_keys_in_name_order(make_key, system, vault):
    for name in ("charlie", "alpha", "delta", "bravo"):
        make_key(name, kty="EC")
    make_key("elsewhere", kty="EC", in_vault=VaultFactory.create())
    services.key_delete(actor=system, vault_name=vault.name, name="delta")

    keys = services.key_list(actor=system, vault_name=vault.name)

    assert [key.name for key in keys] == ["alpha", "bravo", "charlie"]
    assert all(key.current_version is not None for key in keys)


def test_list_versions_holds_every_version_oldest_first(make_key, system, vault):
    made = [make_key("k", kty="EC").version for _ in range(3)]
    make_key("other", kty="EC")

    versions = services.key_list_versions(actor=system, vault_name=vault.name, name="k")

    assert [version.version for version in versions] == made


# --- key_update ------------------------------------------------------------------------------


def test_update_changes_only_the_named_version(make_key, system, vault):
    first = make_key("k", kty="EC", tags={"a": "1"})
    second = make_key("k", kty="EC", tags={"b": "2"})
    untouched = stored_row(second)
    not_before = timezone.now() - timedelta(days=1)
    expires = timezone.now() + timedelta(days=10)

    services.key_update(
        actor=system,
        vault_name=vault.name,
        name="k",
        version=first.version,
        enabled=False,
        not_before=not_before,
        expires=expires,
        key_ops=["verify"],
        tags={"c": "3"},
    )

    updated = stored_row(first)
    assert updated.enabled is False
    assert (updated.not_before, updated.expires) == (not_before, expires)
    assert updated.key_ops == ["verify"]
    assert updated.tags == {"c": "3"}
    other = stored_row(second)
    assert (other.enabled, other.not_before, other.expires) == (True, None, None)
    assert (other.key_ops, other.tags) == (untouched.key_ops, untouched.tags)
    assert other.updated_at == untouched.updated_at


def test_update_without_version_changes_the_current_version(make_key, system, vault):
    first = make_key("k", kty="EC")
    second = make_key("k", kty="EC")

    services.key_update(actor=system, vault_name=vault.name, name="k", tags={"x": "y"})

    assert stored_row(second).tags == {"x": "y"}
    assert stored_row(first).tags == {}


def test_update_never_changes_material(make_key, system, vault):
    version = make_key("k", kty="EC")
    before = stored_row(version)

    services.key_update(
        actor=system, vault_name=vault.name, name="k", key_ops=["sign"], tags={"x": "y"}
    )

    after = stored_row(version)
    assert after.public_jwk == before.public_jwk
    assert bytes(after.sealed_material) == bytes(before.sealed_material)
    assert bytes(after.wrapped_data_key) == bytes(before.wrapped_data_key)


def test_update_is_recorded_against_the_version(make_key, system, vault):
    version = make_key("k", kty="EC")

    services.key_update(actor=system, vault_name=vault.name, name="k", tags={"x": "y"})

    entry = last_entry()
    assert (entry.operation, entry.result) == ("KeyUpdate", "Success")
    assert entry.target == key_target(vault, "k", version.version)


def test_update_of_a_deleted_key_is_not_found(make_key, system, vault):
    version = make_key("k", kty="EC")
    services.key_delete(actor=system, vault_name=vault.name, name="k")

    with pytest.raises(NotFound):
        services.key_update(
            actor=system, vault_name=vault.name, name="k", version=version.version, enabled=False
        )

    assert stored_row(version).enabled is True


def test_update_refuses_key_ops_the_key_type_cannot_do(make_key, system, vault):
    version = make_key("k", kty="EC")

    with pytest.raises(BadParameter):
        services.key_update(actor=system, vault_name=vault.name, name="k", key_ops=["encrypt"])

    assert stored_row(version).key_ops == ["sign", "verify"]


def test_update_refuses_nbf_after_the_stored_exp(make_key, system, vault):
    expires = timezone.now() + timedelta(days=1)
    version = make_key("k", kty="EC", expires=expires)

    with pytest.raises(BadParameter):
        services.key_update(
            actor=system,
            vault_name=vault.name,
            name="k",
            not_before=expires + timedelta(days=1),
            tags={"x": "y"},
        )

    row = stored_row(version)
    assert (row.not_before, row.expires, row.tags) == (None, expires, {})


def test_update_leaves_dates_alone_unless_given(make_key, system, vault):
    not_before = timezone.now() - timedelta(days=1)
    expires = timezone.now() + timedelta(days=1)
    version = make_key("k", kty="EC", not_before=not_before, expires=expires)

    services.key_update(actor=system, vault_name=vault.name, name="k", tags={"x": "y"})

    row = stored_row(version)
    assert (row.not_before, row.expires) == (not_before, expires)


def test_update_with_none_clears_dates(make_key, system, vault):
    version = make_key(
        "k",
        kty="EC",
        not_before=timezone.now() - timedelta(days=1),
        expires=timezone.now() + timedelta(days=1),
    )

    services.key_update(
        actor=system, vault_name=vault.name, name="k", not_before=None, expires=None
    )

    row = stored_row(version)
    assert (row.not_before, row.expires) == (None, None)


# --- refusals of cryptographic operations ------------------------------------------------------

# Dummy inputs are enough: every refusal below happens before any cryptography runs.
RSA_OPERATION_CALLS: dict[str, tuple[Callable[..., Any], str, dict[str, Any]]] = {
    "encrypt": (
        services.key_encrypt,
        "KeyEncrypt",
        {"algorithm": "RSA-OAEP-256", "plaintext": b"secret"},
    ),
    "decrypt": (
        services.key_decrypt,
        "KeyDecrypt",
        {"algorithm": "RSA-OAEP-256", "ciphertext": bytes(256)},
    ),
    "sign": (services.key_sign, "KeySign", {"algorithm": "RS256", "digest": DIGEST}),
    "verify": (
        services.key_verify,
        "KeyVerify",
        {"algorithm": "RS256", "digest": DIGEST, "signature": bytes(256)},
    ),
    "wrapKey": (services.key_wrap, "KeyWrap", {"algorithm": "RSA-OAEP-256", "key": bytes(32)}),
    "unwrapKey": (
        services.key_unwrap,
        "KeyUnwrap",
        {"algorithm": "RSA-OAEP-256", "encrypted_key": bytes(256)},
    ),
}


@pytest.mark.parametrize("key_op", RSA_OPS)
@pytest.mark.parametrize("named_version", [False, True])
def test_disabled_version_refuses_every_operation(import_rsa, system, vault, key_op, named_version):
    version = import_rsa("k", enabled=False)
    service, operation, arguments = RSA_OPERATION_CALLS[key_op]

    with pytest.raises(KeyDisabled) as refused:
        service(
            actor=system,
            vault_name=vault.name,
            name="k",
            version=version.version if named_version else None,
            **arguments,
        )

    assert refused.value.code == "Forbidden"
    assert refused.value.inner_code == "KeyDisabled"
    assert refused.value.status == 403
    assert_refusal_recorded(
        system,
        operation,
        refused.value,
        target=key_target(vault, "k", version.version),
        vault_name=vault.name,
    )


def test_disabling_an_old_version_leaves_the_current_one_usable(make_key, system, vault):
    old = make_key("k", kty="EC")
    current = make_key("k", kty="EC")
    services.key_update(
        actor=system, vault_name=vault.name, name="k", version=old.version, enabled=False
    )

    signed = services.key_sign(
        actor=system, vault_name=vault.name, name="k", algorithm="ES256", digest=DIGEST
    )

    assert signed.version.version == current.version
    verify_es256(ec_public(current), DIGEST, signed.value)
    with pytest.raises(KeyDisabled):
        services.key_sign(
            actor=system,
            vault_name=vault.name,
            name="k",
            version=old.version,
            algorithm="ES256",
            digest=DIGEST,
        )


INACTIVE_WINDOWS = {
    "nbf in the future": {"not_before": timedelta(days=1)},
    "exp in the past": {"expires": timedelta(days=-1)},
}


def _make_inactive(system: User, vault: Vault, name: str, window: str) -> None:
    now = timezone.now()
    dates: dict[str, Any] = {
        field: now + offset for field, offset in INACTIVE_WINDOWS[window].items()
    }
    services.key_update(actor=system, vault_name=vault.name, name=name, **dates)


@pytest.mark.parametrize("window", INACTIVE_WINDOWS)
@pytest.mark.parametrize("key_op", ["encrypt", "sign", "wrapKey"])
def test_inactive_version_refuses_encrypt_sign_and_wrap(import_rsa, system, vault, window, key_op):
    version = import_rsa("k")
    _make_inactive(system, vault, "k", window)
    service, operation, arguments = RSA_OPERATION_CALLS[key_op]

    with pytest.raises(KeyNotActive) as refused:
        service(actor=system, vault_name=vault.name, name="k", **arguments)

    assert refused.value.inner_code == "KeyNotActive"
    assert refused.value.status == 403
    assert_refusal_recorded(
        system,
        operation,
        refused.value,
        target=key_target(vault, "k", version.version),
        vault_name=vault.name,
    )


@pytest.mark.parametrize("window", INACTIVE_WINDOWS)
def test_inactive_version_still_decrypts(import_rsa, system, vault, rsa_private, window):
    import_rsa("k")
    _make_inactive(system, vault, "k", window)
    ciphertext = rsa_private.public_key().encrypt(b"old secret", OAEP_256)

    result = services.key_decrypt(
        actor=system,
        vault_name=vault.name,
        name="k",
        algorithm="RSA-OAEP-256",
        ciphertext=ciphertext,
    )

    assert result.value == b"old secret"


@pytest.mark.parametrize("window", INACTIVE_WINDOWS)
def test_inactive_version_still_verifies(import_rsa, system, vault, rsa_private, window):
    import_rsa("k")
    _make_inactive(system, vault, "k", window)
    signature = rsa_private.sign(DIGEST, *RS256)

    valid = services.key_verify(
        actor=system,
        vault_name=vault.name,
        name="k",
        algorithm="RS256",
        digest=DIGEST,
        signature=signature,
    )
    forged = services.key_verify(
        actor=system,
        vault_name=vault.name,
        name="k",
        algorithm="RS256",
        digest=hashlib.sha256(b"another message").digest(),
        signature=signature,
    )

    assert valid.valid is True
    assert forged.valid is False


@pytest.mark.parametrize("window", INACTIVE_WINDOWS)
def test_inactive_version_still_unwraps(import_rsa, system, vault, rsa_private, window):
    import_rsa("k")
    _make_inactive(system, vault, "k", window)
    content_key = os.urandom(32)
    wrapped = rsa_private.public_key().encrypt(content_key, OAEP_256)

    result = services.key_unwrap(
        actor=system,
        vault_name=vault.name,
        name="k",
        algorithm="RSA-OAEP-256",
        encrypted_key=wrapped,
    )

    assert result.value == content_key


@pytest.mark.parametrize("key_op", RSA_OPS)
def test_operation_outside_key_ops_is_refused(import_rsa, system, vault, key_op):
    version = import_rsa("k", key_ops=[op for op in RSA_OPS if op != key_op])
    service, operation, arguments = RSA_OPERATION_CALLS[key_op]

    with pytest.raises(OperationNotAllowed) as refused:
        service(actor=system, vault_name=vault.name, name="k", **arguments)

    assert refused.value.code == "Forbidden"
    assert refused.value.inner_code == "KeyOperationForbidden"
    assert refused.value.message == f"Operation {key_op} is not permitted on this key."
    assert_refusal_recorded(
        system,
        operation,
        refused.value,
        target=key_target(vault, "k", version.version),
        vault_name=vault.name,
    )


@pytest.mark.parametrize(
    ("kty", "service", "operation", "arguments"),
    [
        ("RSA", services.key_encrypt, "KeyEncrypt", {"algorithm": "A256GCM", "plaintext": b"x"}),
        ("RSA", services.key_sign, "KeySign", {"algorithm": "ES256", "digest": DIGEST}),
        ("EC", services.key_sign, "KeySign", {"algorithm": "RS256", "digest": DIGEST}),
        ("EC", services.key_sign, "KeySign", {"algorithm": "ES384", "digest": bytes(48)}),
        ("oct", services.key_wrap, "KeyWrap", {"algorithm": "RSA-OAEP", "key": bytes(32)}),
        ("oct", services.key_encrypt, "KeyEncrypt", {"algorithm": "A128GCM", "plaintext": b"x"}),
        ("oct", services.key_encrypt, "KeyEncrypt", {"algorithm": "NOPE", "plaintext": b"x"}),
    ],
)
def test_algorithm_that_does_not_fit_the_key_is_bad_parameter(
    make_key, import_rsa, system, vault, kty, service, operation, arguments
):
    version = import_rsa("k") if kty == "RSA" else make_key("k", kty=kty)

    with pytest.raises(BadParameter) as refused:
        service(actor=system, vault_name=vault.name, name="k", **arguments)

    assert refused.value.status == 400
    assert_refusal_recorded(
        system,
        operation,
        refused.value,
        target=key_target(vault, "k", version.version),
        vault_name=vault.name,
    )


@pytest.mark.parametrize(
    ("kty", "algorithm", "digest_bytes"),
    [("RSA", "RS256", 31), ("RSA", "PS256", 48), ("RSA", "RS512", 32), ("EC", "ES256", 20)],
)
def test_wrong_digest_length_is_bad_parameter(
    make_key, import_rsa, system, vault, kty, algorithm, digest_bytes
):
    import_rsa("k") if kty == "RSA" else make_key("k", kty=kty)

    with pytest.raises(BadParameter, match="digest"):
        services.key_sign(
            actor=system,
            vault_name=vault.name,
            name="k",
            algorithm=algorithm,
            digest=os.urandom(digest_bytes),
        )

    assert last_entry().result == "BadParameter"


@pytest.mark.parametrize("named_version", [False, True])
def test_operations_on_a_deleted_key_are_not_found(make_key, system, vault, named_version):
    version = make_key("k", kty="EC")
    services.key_delete(actor=system, vault_name=vault.name, name="k")

    with pytest.raises(NotFound) as refused:
        services.key_sign(
            actor=system,
            vault_name=vault.name,
            name="k",
            version=version.version if named_version else None,
            algorithm="ES256",
            digest=DIGEST,
        )

    assert refused.value.code == "KeyNotFound"
    entry = last_entry()
    assert (entry.operation, entry.result, entry.status_code) == ("KeySign", "NotFound", 404)


@pytest.mark.parametrize(
    ("service", "operation", "arguments"),
    [
        (services.key_sign, "KeySign", {"name": "k", "algorithm": "ES256", "digest": DIGEST}),
        (services.key_get, "KeyGet", {"name": "k"}),
        (services.key_create, "KeyCreate", {"name": "k", "kty": "EC"}),
        (services.key_delete, "KeyDelete", {"name": "k"}),
    ],
)
def test_unknown_vault_is_vault_not_found(system, service, operation, arguments):
    with pytest.raises(NotFound) as refused:
        service(actor=system, vault_name="no-such-vault", **arguments)

    assert refused.value.code == "VaultNotFound"
    entry = last_entry()
    assert (entry.operation, entry.result, entry.status_code) == (operation, "NotFound", 404)
    assert entry.vault_name == "no-such-vault"
    assert entry.target == "vaults/no-such-vault/keys/k"
    assert not Key.objects.exists()


def test_restore_into_unknown_vault_is_vault_not_found(make_key, system, vault):
    make_key("k", kty="EC")
    blob = services.key_backup(actor=system, vault_name=vault.name, name="k")

    with pytest.raises(NotFound) as refused:
        services.key_restore(actor=system, vault_name="no-such-vault", blob=blob)

    assert refused.value.code == "VaultNotFound"
    entry = last_entry()
    assert (entry.operation, entry.result) == ("KeyRestore", "NotFound")
    assert (entry.vault_name, entry.target) == ("no-such-vault", "vaults/no-such-vault")


# --- personas ---------------------------------------------------------------------------------


@pytest.fixture
def estate(make_key, system, vault, ec_private) -> dict[str, Any]:
    """A live key with two versions, a soft-deleted key and a backup blob."""
    first = make_key("live", kty="EC")
    make_key("live", kty="EC")
    make_key("gone", kty="EC")
    services.key_delete(actor=system, vault_name=vault.name, name="gone")
    blob = services.key_backup(actor=system, vault_name=vault.name, name="live")
    return {"first": first.version, "blob": blob, "jwk": ec_private_jwk(ec_private)}


PERSONA_CALLS: dict[str, Callable[[dict[str, Any]], tuple[Callable[..., Any], dict[str, Any]]]] = {
    "KeyCreate": lambda estate: (services.key_create, {"name": "new", "kty": "EC"}),
    "KeyImport": lambda estate: (services.key_import, {"name": "new", "jwk": estate["jwk"]}),
    "KeyGet": lambda estate: (services.key_get, {"name": "live"}),
    "KeyList": lambda estate: (services.key_list, {}),
    "KeyListVersions": lambda estate: (services.key_list_versions, {"name": "live"}),
    "KeyUpdate": lambda estate: (services.key_update, {"name": "live", "enabled": False}),
    "KeyRotate": lambda estate: (services.key_rotate, {"name": "live"}),
    "KeyRevert": lambda estate: (services.key_revert, {"name": "live", "version": estate["first"]}),
    "KeyDelete": lambda estate: (services.key_delete, {"name": "live"}),
    "KeyListDeleted": lambda estate: (services.key_list_deleted, {}),
    "KeyGetDeleted": lambda estate: (services.key_get_deleted, {"name": "gone"}),
    "KeyRecover": lambda estate: (services.key_recover, {"name": "gone"}),
    "KeyPurge": lambda estate: (services.key_purge, {"name": "gone"}),
    "KeyBackup": lambda estate: (services.key_backup, {"name": "live"}),
    "KeyRestore": lambda estate: (services.key_restore, {"blob": estate["blob"]}),
    "KeySign": lambda estate: (
        services.key_sign,
        {"name": "live", "algorithm": "ES256", "digest": DIGEST},
    ),
    "KeyVerify": lambda estate: (
        services.key_verify,
        {"name": "live", "algorithm": "ES256", "digest": DIGEST, "signature": bytes(64)},
    ),
    "KeyEncrypt": lambda estate: (
        services.key_encrypt,
        {"name": "live", "algorithm": "A256GCM", "plaintext": b"x"},
    ),
}


@pytest.mark.parametrize("persona", ["outsider", "application"])
@pytest.mark.parametrize("operation", PERSONA_CALLS)
def test_principals_without_grants_are_forbidden_and_change_nothing(
    request, estate, vault, persona, operation
):
    actor = request.getfixturevalue(persona)
    service, arguments = PERSONA_CALLS[operation](estate)
    before = snapshot()

    with pytest.raises(Forbidden) as refused:
        service(actor=actor, vault_name=vault.name, **arguments)

    assert snapshot() == before
    entry = last_entry()
    assert (entry.operation, entry.result, entry.status_code) == (operation, "Forbidden", 403)
    assert entry.actor_name == actor.username
    assert entry.message == refused.value.message


@pytest.mark.parametrize("persona", ["outsider", "application"])
def test_principals_without_grants_cannot_rotate_the_master_key(request, persona, make_key):
    make_key("k", kty="EC")
    actor = request.getfixturevalue(persona)
    before = snapshot()

    with pytest.raises(Forbidden):
        services.master_key_rotate(actor=actor)

    assert snapshot() == before
    assert (last_entry().operation, last_entry().result) == ("MasterKeyRotate", "Forbidden")


def test_outsider_asking_for_a_missing_key_is_forbidden_not_told_it_is_missing(outsider, vault):
    with pytest.raises(Forbidden):
        services.key_get(actor=outsider, vault_name=vault.name, name="nope")


def test_superuser_may_use_keys(owner, make_key, vault):
    version = make_key("k", kty="EC")

    signed = services.key_sign(
        actor=owner, vault_name=vault.name, name="k", algorithm="ES256", digest=DIGEST
    )

    verify_es256(ec_public(version), DIGEST, signed.value)
    assert last_entry().actor_name == owner.username


# --- the activity log ----------------------------------------------------------------------------


def test_refused_create_leaves_no_key_but_an_entry(system, vault):
    with pytest.raises(BadParameter) as refused:
        services.key_create(
            actor=system, vault_name=vault.name, name="k", kty="EC", key_ops=["wrapKey"]
        )

    assert not Key.objects.exists()
    assert_refusal_recorded(
        system, "KeyCreate", refused.value, target=key_target(vault, "k"), vault_name=vault.name
    )


@pytest.mark.parametrize(
    "arguments",
    [{"kty": "RSA-HSM"}, {"kty": "EC", "size": 2048}, {"kty": "RSA", "public_exponent": 3}],
)
def test_create_refused_on_its_parameters_records_the_key(system, vault, arguments):
    with pytest.raises(BadParameter) as refused:
        services.key_create(actor=system, vault_name=vault.name, name="k", **arguments)

    assert_refusal_recorded(
        system, "KeyCreate", refused.value, target=key_target(vault, "k"), vault_name=vault.name
    )


def test_import_refused_on_its_parameters_records_the_key(system, vault):
    with pytest.raises(BadParameter) as refused:
        services.key_import(actor=system, vault_name=vault.name, name="k", jwk={"kty": "RSA-HSM"})

    assert_refusal_recorded(
        system, "KeyImport", refused.value, target=key_target(vault, "k"), vault_name=vault.name
    )


def test_failure_inside_the_write_transaction_rolls_back_but_is_recorded(
    transactional_db, system, vault, monkeypatch
):
    def broken_protect(*args: Any, **kwargs: Any) -> ProtectedMaterial:
        raise RuntimeError("storage failed")

    monkeypatch.setattr(protection, "protect", broken_protect)

    with pytest.raises(RuntimeError):
        services.key_create(actor=system, vault_name=vault.name, name="k", kty="EC")

    # The key row was created inside the transaction and must be gone with it.
    assert not Key.objects.exists()
    entry = last_entry()
    assert (entry.operation, entry.result, entry.status_code) == ("KeyCreate", "Failure", 500)
    assert entry.target == key_target(vault, "k")
    assert "storage failed" not in entry.message


def test_success_is_recorded_once_with_the_version_as_target(make_key, system, vault):
    start = head_seq()

    version = make_key("k", kty="EC")

    entries = list(ActivityEntry.objects.filter(seq__gt=start))
    assert len(entries) == 1
    assert (entries[0].operation, entries[0].result, entries[0].status_code) == (
        "KeyCreate",
        "Success",
        200,
    )
    assert entries[0].target == key_target(vault, "k", version.version)
    assert entries[0].resource_group == vault.resource_group.name


def _encodings(value: bytes) -> list[str]:
    standard = base64.b64encode(value).decode()
    return [
        standard,
        standard.rstrip("="),
        b64url(value),
        value.hex(),
        value.hex().upper(),
        value.decode("latin-1"),
    ]


def test_entries_never_hold_plaintext_ciphertext_digest_or_signature(
    make_key, import_rsa, system, vault
):
    start = head_seq()
    oct_version = make_key("sym", kty="oct")
    import_rsa("k")
    plaintext = os.urandom(24)
    secret_values = [plaintext, DIGEST]

    signed = services.key_sign(
        actor=system, vault_name=vault.name, name="k", algorithm="RS256", digest=DIGEST
    )
    services.key_verify(
        actor=system,
        vault_name=vault.name,
        name="k",
        algorithm="RS256",
        digest=DIGEST,
        signature=signed.value,
    )
    rsa_encrypted = services.key_encrypt(
        actor=system, vault_name=vault.name, name="k", algorithm="RSA-OAEP", plaintext=plaintext
    )
    services.key_decrypt(
        actor=system,
        vault_name=vault.name,
        name="k",
        algorithm="RSA-OAEP",
        ciphertext=rsa_encrypted.value,
    )
    aes = services.key_encrypt(
        actor=system,
        vault_name=vault.name,
        name="sym",
        algorithm="A256GCM",
        plaintext=plaintext,
        aad=b"associated",
    )
    assert aes.iv is not None and aes.tag is not None
    services.key_decrypt(
        actor=system,
        vault_name=vault.name,
        name="sym",
        algorithm="A256GCM",
        ciphertext=aes.value,
        iv=aes.iv,
        tag=aes.tag,
        aad=b"associated",
    )
    # Failures carry messages: make sure those do not echo the inputs either.
    with pytest.raises(BadParameter):
        services.key_decrypt(
            actor=system,
            vault_name=vault.name,
            name="sym",
            algorithm="A256GCM",
            ciphertext=aes.value,
            iv=aes.iv,
            tag=bytes(16),
        )
    with pytest.raises(BadParameter):
        services.key_sign(
            actor=system, vault_name=vault.name, name="k", algorithm="RS256", digest=DIGEST[:31]
        )
    secret_values += [
        signed.value,
        rsa_encrypted.value,
        aes.value,
        aes.iv,
        aes.tag,
        DIGEST[:31],
        oct_bytes(oct_version),
    ]

    entries = list(ActivityEntry.objects.filter(seq__gt=start))
    assert len(entries) == 10
    for entry in entries:
        for value in secret_values:
            for encoded in _encodings(value):
                assert encoded not in entry.message
                assert encoded not in entry.target


# --- rotate and revert ------------------------------------------------------------------------


def test_rotate_makes_a_new_current_ec_version_like_the_old_one(make_key, system, vault):
    old = make_key("k", kty="EC", curve="P-384", key_ops=["sign"], tags={"env": "prod"})

    rotated = services.key_rotate(actor=system, vault_name=vault.name, name="k")

    key = Key.objects.get()
    assert key.current_version_id == rotated.pk != old.pk
    assert key.versions.count() == 2
    assert (rotated.kty, rotated.curve) == ("EC", "P-384")
    assert bundle_jwk(rotated)["crv"] == "P-384"
    assert ec_public(rotated).public_numbers() != ec_public(old).public_numbers()
    assert rotated.key_ops == ["sign"]
    assert rotated.tags == {"env": "prod"}
    assert rotated.origin == KeyVersion.Origin.ROTATED


def test_rotate_keeps_the_rsa_size(import_rsa, system, vault, rsa_private):
    import_rsa("k", key_ops=["sign", "verify"])

    rotated = services.key_rotate(actor=system, vault_name=vault.name, name="k")

    assert rsa_public(rotated).key_size == 2048
    assert rsa_public(rotated).public_numbers() != rsa_private.public_key().public_numbers()
    assert rsa_public(rotated).public_numbers().e == 65537
    assert rotated.key_ops == ["sign", "verify"]


def test_rotate_keeps_the_oct_size_with_new_material(make_key, system, vault):
    old = make_key("k", kty="oct", size=128)

    rotated = services.key_rotate(actor=system, vault_name=vault.name, name="k")

    assert rotated.size == 128
    assert len(oct_bytes(rotated)) == 16
    assert oct_bytes(rotated) != oct_bytes(old)


def test_rotated_version_signs_and_old_version_still_verifies(make_key, system, vault):
    old = make_key("k", kty="EC")
    old_signature = services.key_sign(
        actor=system, vault_name=vault.name, name="k", algorithm="ES256", digest=DIGEST
    ).value

    rotated = services.key_rotate(actor=system, vault_name=vault.name, name="k")
    signed = services.key_sign(
        actor=system, vault_name=vault.name, name="k", algorithm="ES256", digest=DIGEST
    )

    assert signed.version.version == rotated.version
    verify_es256(ec_public(rotated), DIGEST, signed.value)
    with pytest.raises(InvalidSignature):
        verify_es256(ec_public(old), DIGEST, signed.value)
    still_valid = services.key_verify(
        actor=system,
        vault_name=vault.name,
        name="k",
        version=old.version,
        algorithm="ES256",
        digest=DIGEST,
        signature=old_signature,
    )
    assert still_valid.valid is True


def test_revert_makes_a_new_current_version_with_the_old_material(make_key, system, vault):
    first = make_key("k", kty="EC", tags={"gen": "1"})
    services.key_rotate(actor=system, vault_name=vault.name, name="k")

    reverted = services.key_revert(
        actor=system, vault_name=vault.name, name="k", version=first.version
    )

    key = Key.objects.get()
    assert key.versions.count() == 3
    assert key.current_version_id == reverted.pk
    assert reverted.version != first.version
    assert reverted.public_jwk == stored_row(first).public_jwk
    assert reverted.origin == KeyVersion.Origin.REVERTED
    assert reverted.source_version == first.version
    assert reverted.tags == {"gen": "1"}
    signed = services.key_sign(
        actor=system, vault_name=vault.name, name="k", algorithm="ES256", digest=DIGEST
    )
    assert signed.version.version == reverted.version
    verify_es256(ec_public(first), DIGEST, signed.value)


def test_revert_to_the_current_version_is_refused(make_key, system, vault):
    make_key("k", kty="EC")
    current = make_key("k", kty="EC")

    with pytest.raises(BadParameter):
        services.key_revert(actor=system, vault_name=vault.name, name="k", version=current.version)

    assert KeyVersion.objects.count() == 2
    assert Key.objects.get().current_version_id == current.pk
    assert last_entry().target == key_target(vault, "k", current.version)


def test_revert_to_a_disabled_version_is_refused(make_key, system, vault):
    first = make_key("k", kty="EC")
    current = make_key("k", kty="EC")
    services.key_update(
        actor=system, vault_name=vault.name, name="k", version=first.version, enabled=False
    )

    with pytest.raises(BadParameter, match="disabled"):
        services.key_revert(actor=system, vault_name=vault.name, name="k", version=first.version)

    assert KeyVersion.objects.count() == 2
    assert Key.objects.get().current_version_id == current.pk


@pytest.mark.parametrize(
    "options",
    [{"kty": "RSA-HSM"}, {"kty": "RSA", "size": 1024}, {"kty": "EC", "key_ops": ["wrapKey"]}],
)
def test_outsider_is_refused_before_parameters_are_checked(outsider, vault, options):
    with pytest.raises(Forbidden):
        services.key_create(actor=outsider, vault_name=vault.name, name="k", **options)
    assert not Key.objects.exists()


def test_key_list_orders_names_ignoring_case(make_key, system, vault):
    for name in ("beta", "Alpha", "Gamma"):
        make_key(name, kty="EC")
    listed = services.key_list(actor=system, vault_name=vault.name)
    assert [key.name for key in listed] == ["Alpha", "beta", "Gamma"]


def test_revert_without_a_version_is_refused(make_key, system, vault):
    make_key("k", kty="EC")

    with pytest.raises(BadParameter) as refused:
        services.key_revert(actor=system, vault_name=vault.name, name="k", version="")

    assert KeyVersion.objects.count() == 1
    assert_refusal_recorded(
        system, "KeyRevert", refused.value, target=key_target(vault, "k"), vault_name=vault.name
    )


# --- delete, recover, purge -----------------------------------------------------------------


@pytest.fixture
def short_vault() -> Vault:
    return VaultFactory.create(soft_delete_retention_days=7)


@pytest.fixture
def protected_vault() -> Vault:
    return VaultFactory.create(soft_delete_retention_days=7, purge_protection=True)


def test_delete_schedules_the_purge_after_the_vaults_retention(make_key, system, short_vault):
    make_key("k", kty="EC", in_vault=short_vault)
    before = timezone.now()

    services.key_delete(actor=system, vault_name=short_vault.name, name="k")

    key = Key.objects.get()
    assert key.deleted_at is not None and key.scheduled_purge_at is not None
    assert before <= key.deleted_at <= timezone.now()
    assert key.scheduled_purge_at - key.deleted_at == timedelta(days=7)
    bundle = shapes.deleted_key_bundle(key, short_vault.uri)
    assert bundle["scheduledPurgeDate"] - bundle["deletedDate"] == 7 * 86400


@pytest.mark.parametrize("name", ["k", "K"])
def test_deleted_name_stays_taken_for_create_and_import(make_key, system, vault, ec_private, name):
    make_key("k", kty="EC")
    services.key_delete(actor=system, vault_name=vault.name, name="k")

    with pytest.raises(Conflict) as on_create:
        make_key(name, kty="EC")
    with pytest.raises(Conflict) as on_import:
        services.key_import(
            actor=system, vault_name=vault.name, name=name, jwk=ec_private_jwk(ec_private)
        )

    for refused in (on_create, on_import):
        assert refused.value.inner_code == "ObjectIsDeletedButRecoverable"
        assert refused.value.status == 409
    assert KeyVersion.objects.count() == 1
    assert last_entry().result == "Conflict"


def test_deleted_key_is_not_found_by_get(make_key, system, vault):
    make_key("k", kty="EC")
    services.key_delete(actor=system, vault_name=vault.name, name="k")

    with pytest.raises(NotFound) as refused:
        services.key_get(actor=system, vault_name=vault.name, name="k")

    assert refused.value.code == "KeyNotFound"


def test_deleting_twice_is_not_found(make_key, system, vault):
    make_key("k", kty="EC")
    services.key_delete(actor=system, vault_name=vault.name, name="k")

    with pytest.raises(NotFound):
        services.key_delete(actor=system, vault_name=vault.name, name="k")


def test_deleted_keys_are_listed_and_got_as_deleted(make_key, system, vault):
    make_key("a", kty="EC")
    current = make_key("b", kty="EC")
    services.key_delete(actor=system, vault_name=vault.name, name="b")

    deleted = services.key_list_deleted(actor=system, vault_name=vault.name)
    got = services.key_get_deleted(actor=system, vault_name=vault.name, name="b")

    assert [key.name for key in deleted] == ["b"]
    assert got.current_version_id == current.pk
    assert got.deleted_at is not None


def test_get_deleted_of_a_live_key_is_not_found(make_key, system, vault):
    make_key("k", kty="EC")

    with pytest.raises(NotFound) as refused:
        services.key_get_deleted(actor=system, vault_name=vault.name, name="k")

    assert refused.value.code == "KeyNotFound"


def test_recover_brings_the_key_back_with_its_current_version(make_key, system, vault):
    make_key("k", kty="EC")
    current = make_key("k", kty="EC")
    services.key_delete(actor=system, vault_name=vault.name, name="k")

    recovered = services.key_recover(actor=system, vault_name=vault.name, name="k")

    assert recovered.version == current.version
    key = Key.objects.get()
    assert (key.deleted_at, key.scheduled_purge_at) == (None, None)
    signed = services.key_sign(
        actor=system, vault_name=vault.name, name="k", algorithm="ES256", digest=DIGEST
    )
    verify_es256(ec_public(current), DIGEST, signed.value)


def test_purge_removes_the_key_and_records_204(make_key, system, vault):
    make_key("k", kty="EC")
    make_key("k", kty="EC")
    make_key("other", kty="EC")
    services.key_delete(actor=system, vault_name=vault.name, name="k")

    services.key_purge(actor=system, vault_name=vault.name, name="k")

    assert list(Key.objects.values_list("name", flat=True)) == ["other"]
    assert KeyVersion.objects.count() == 1
    entry = last_entry()
    assert (entry.operation, entry.result, entry.status_code) == ("KeyPurge", "Success", 204)
    assert entry.target == key_target(vault, "k")


def test_purged_name_can_be_used_again(make_key, system, vault):
    make_key("k", kty="EC")
    services.key_delete(actor=system, vault_name=vault.name, name="k")
    services.key_purge(actor=system, vault_name=vault.name, name="k")

    version = make_key("k", kty="EC")

    assert Key.objects.get().current_version_id == version.pk


def test_purge_of_a_live_key_is_not_found(make_key, system, vault):
    make_key("k", kty="EC")

    with pytest.raises(NotFound):
        services.key_purge(actor=system, vault_name=vault.name, name="k")

    assert Key.objects.get().deleted_at is None


def test_purge_protection_holds_the_key_until_its_scheduled_date(make_key, system, protected_vault):
    make_key("k", kty="EC", in_vault=protected_vault)
    services.key_delete(actor=system, vault_name=protected_vault.name, name="k")

    with pytest.raises(Forbidden) as refused:
        services.key_purge(actor=system, vault_name=protected_vault.name, name="k")

    assert refused.value.status == 403
    assert "purge protection" in refused.value.message
    assert Key.objects.count() == 1
    assert KeyVersion.objects.count() == 1
    entry = last_entry()
    assert (entry.operation, entry.result, entry.status_code) == ("KeyPurge", "Forbidden", 403)


def test_purge_protection_lets_the_key_go_after_its_scheduled_date(
    make_key, system, protected_vault
):
    make_key("k", kty="EC", in_vault=protected_vault)
    services.key_delete(actor=system, vault_name=protected_vault.name, name="k")
    Key.objects.update(scheduled_purge_at=timezone.now() - timedelta(seconds=1))

    services.key_purge(actor=system, vault_name=protected_vault.name, name="k")

    assert not Key.objects.exists()
    assert not KeyVersion.objects.exists()


# --- backup and restore ------------------------------------------------------------------------


@pytest.fixture
def other_vault() -> Vault:
    return VaultFactory.create()


@pytest.fixture
def backed_up(make_key, system, vault) -> tuple[list[KeyVersion], bytes]:
    """An EC key with three versions of differing attributes, its current the middle one."""
    now = timezone.now().replace(microsecond=0)
    first = make_key("k", kty="EC", enabled=False, tags={"gen": "1"})
    second = make_key(
        "k",
        kty="EC",
        key_ops=["sign"],
        not_before=now - timedelta(days=1),
        expires=now + timedelta(days=30),
        tags={"gen": "2"},
    )
    third = make_key("k", kty="EC")
    # Make an older version current, so that "current" is not just "newest".
    Key.objects.update(current_version=second)
    blob = services.key_backup(actor=system, vault_name=vault.name, name="k")
    return [first, second, third], blob


def _attributes(version: KeyVersion) -> tuple[Any, ...]:
    return (
        version.version,
        version.kty,
        version.curve,
        version.public_jwk,
        version.key_ops,
        version.enabled,
        version.not_before,
        version.expires,
        version.tags,
        version.created_at,
        version.updated_at,
    )


def test_restore_into_another_vault_keeps_versions_attributes_and_current(
    backed_up, system, vault, other_vault
):
    originals, blob = backed_up

    restored = services.key_restore(actor=system, vault_name=other_vault.name, blob=blob)

    entry = last_entry()
    assert (entry.operation, entry.result) == ("KeyRestore", "Success")
    assert entry.target == key_target(other_vault, "k", restored.version)
    key = Key.objects.get(vault=other_vault)
    assert key.name == "k"
    assert restored.version == originals[1].version
    assert key.current_version_id == restored.pk
    restored_versions = services.key_list_versions(
        actor=system, vault_name=other_vault.name, name="k"
    )
    assert [_attributes(version) for version in restored_versions] == [
        _attributes(stored_row(version)) for version in originals
    ]
    # The original is untouched.
    assert Key.objects.get(vault=vault).versions.count() == 3


def test_restored_material_signs_for_the_original_public_key(backed_up, system, vault, other_vault):
    originals, blob = backed_up
    services.key_restore(actor=system, vault_name=other_vault.name, blob=blob)

    signed = services.key_sign(
        actor=system, vault_name=other_vault.name, name="k", algorithm="ES256", digest=DIGEST
    )
    by_version = services.key_sign(
        actor=system,
        vault_name=other_vault.name,
        name="k",
        version=originals[2].version,
        algorithm="ES256",
        digest=DIGEST,
    )

    assert signed.version.key.vault == other_vault
    verify_es256(ec_public(originals[1]), DIGEST, signed.value)
    verify_es256(ec_public(originals[2]), DIGEST, by_version.value)


def test_restore_keeps_disabled_versions_disabled(backed_up, system, other_vault):
    originals, blob = backed_up
    services.key_restore(actor=system, vault_name=other_vault.name, blob=blob)

    with pytest.raises(KeyDisabled):
        services.key_sign(
            actor=system,
            vault_name=other_vault.name,
            name="k",
            version=originals[0].version,
            algorithm="ES256",
            digest=DIGEST,
        )


def test_restore_of_an_oct_key_keeps_its_material(make_key, system, vault, other_vault):
    original = make_key("sym", kty="oct")
    blob = services.key_backup(actor=system, vault_name=vault.name, name="sym")

    restored = services.key_restore(actor=system, vault_name=other_vault.name, blob=blob)
    wrapped = services.key_wrap(
        actor=system, vault_name=other_vault.name, name="sym", algorithm="A256KW", key=DIGEST
    )

    assert oct_bytes(restored) == oct_bytes(original)
    assert keywrap.aes_key_unwrap(oct_bytes(original), wrapped.value) == DIGEST


def test_restore_into_the_same_vault_after_purge(backed_up, system, vault):
    originals, blob = backed_up
    services.key_delete(actor=system, vault_name=vault.name, name="k")
    services.key_purge(actor=system, vault_name=vault.name, name="k")

    restored = services.key_restore(actor=system, vault_name=vault.name, blob=blob)

    assert restored.version == originals[1].version
    assert KeyVersion.objects.count() == 3


def test_restore_onto_a_live_name_is_conflict(backed_up, system, vault, make_key, other_vault):
    _, blob = backed_up
    make_key("K", kty="EC", in_vault=other_vault)
    before = snapshot()

    with pytest.raises(Conflict) as refused:
        services.key_restore(actor=system, vault_name=other_vault.name, blob=blob)
    with pytest.raises(Conflict):
        services.key_restore(actor=system, vault_name=vault.name, blob=blob)

    assert refused.value.status == 409
    assert snapshot() == before
    assert last_entry().result == "Conflict"


def test_restore_onto_a_soft_deleted_name_is_conflict(backed_up, system, vault):
    _, blob = backed_up
    services.key_delete(actor=system, vault_name=vault.name, name="k")
    before = snapshot()

    with pytest.raises(Conflict) as refused:
        services.key_restore(actor=system, vault_name=vault.name, blob=blob)

    assert refused.value.inner_code == "ObjectIsDeletedButRecoverable"
    assert snapshot() == before


def _flip_bit(blob: bytes, position: int, bit: int = 0) -> bytes:
    flipped = bytearray(blob)
    flipped[position] ^= 1 << bit
    return bytes(flipped)


def test_any_flipped_bit_in_a_backup_is_refused(backed_up, system, other_vault):
    _, blob = backed_up
    # Every header byte (magic, format, backup key id), then the nonce, the ciphertext's
    # start, middle and end, the GCM tag and the last byte.
    header = 4 + 1 + 8
    positions = sorted(
        set(range(header + 2))
        | {header + 11, header + 12, len(blob) // 3, len(blob) // 2, len(blob) - 17}
        | {len(blob) - 16, len(blob) - 8, len(blob) - 1}
    )

    for position in positions:
        for bit in (0, 7):
            with pytest.raises(BadParameter):
                services.key_restore(
                    actor=system, vault_name=other_vault.name, blob=_flip_bit(blob, position, bit)
                )

    assert not Key.objects.filter(vault=other_vault).exists()
    assert last_entry().result == "BadParameter"


@pytest.mark.parametrize("keep", [0, 5, 13, 40, -1])
def test_truncated_backup_is_refused(backed_up, system, other_vault, keep):
    _, blob = backed_up

    with pytest.raises(BadParameter):
        services.key_restore(
            actor=system, vault_name=other_vault.name, blob=blob[:keep] if keep else b""
        )

    assert not Key.objects.filter(vault=other_vault).exists()
    entry = last_entry()
    assert (entry.operation, entry.result, entry.status_code) == ("KeyRestore", "BadParameter", 400)
    assert entry.target == f"vaults/{other_vault.name}"


def test_backup_from_another_deployment_is_refused(
    backed_up, system, other_vault, settings, tmp_path
):
    _, blob = backed_up
    settings.KVCONSOLE_BACKUP_KEY_FILE = tmp_path / "another-deployment-backup-key.json"

    with pytest.raises(BadParameter, match="another kvconsole deployment"):
        services.key_restore(actor=system, vault_name=other_vault.name, blob=blob)

    assert not Key.objects.filter(vault=other_vault).exists()


def test_backup_does_not_hold_private_material_in_the_clear(import_rsa, system, vault):
    version = import_rsa("k")
    material = stored_material(version).key
    assert isinstance(material, rsa.RSAPrivateKey)
    numbers = material.private_numbers()

    blob = services.key_backup(actor=system, vault_name=vault.name, name="k")

    private_exponent = numbers.d.to_bytes(256)
    for secret in (
        private_exponent,
        private_exponent[:32],
        private_exponent[-32:],
        numbers.p.to_bytes(128)[:32],
        material.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )[-64:],
    ):
        assert secret not in blob
        assert b64url(secret)[:40].encode() not in blob
        assert secret.hex()[:64].encode() not in blob


def test_backup_refuses_more_versions_than_the_limit(make_key, system, vault, settings):
    settings.KVCONSOLE_MAX_BACKUP_VERSIONS = 2
    for _ in range(3):
        make_key("k", kty="EC")

    with pytest.raises(BadParameter, match="3 versions"):
        services.key_backup(actor=system, vault_name=vault.name, name="k")


def test_backup_of_a_deleted_key_is_not_found(make_key, system, vault):
    make_key("k", kty="EC")
    services.key_delete(actor=system, vault_name=vault.name, name="k")

    with pytest.raises(NotFound):
        services.key_backup(actor=system, vault_name=vault.name, name="k")


# --- query budget ----------------------------------------------------------------------------


def _crypto_call(
    operation: str, vault: Vault, version: KeyVersion | None
) -> tuple[Callable[..., Any], dict[str, Any]]:
    arguments: dict[str, Any] = {
        "vault_name": vault.name,
        "name": "k",
        "version": version.version if version else None,
    }
    if operation == "sign":
        return services.key_sign, {**arguments, "algorithm": "RS256", "digest": DIGEST}
    return services.key_encrypt, {**arguments, "algorithm": "RSA-OAEP-256", "plaintext": b"x"}


@pytest.mark.parametrize("cache", ["warm", "cold"])
@pytest.mark.parametrize("named_version", [False, True])
@pytest.mark.parametrize("operation", ["sign", "encrypt"])
def test_rsa_operation_query_budget(
    transactional_db,
    import_rsa,
    system,
    vault,
    django_assert_max_num_queries,
    operation,
    named_version,
    cache,
):
    version = import_rsa("k")
    service, arguments = _crypto_call(operation, vault, version if named_version else None)
    service(actor=system, **arguments)
    if cache == "cold":
        material_cache.clear()

    with (
        CaptureQueriesContext(connection) as captured,
        django_assert_max_num_queries(CRYPTO_QUERY_BUDGET),
    ):
        result = service(actor=system, **arguments)

    assert result.version.version == version.version
    # The activity entry really was written, inside the budget.
    inserts = [query for query in captured.captured_queries if "INSERT" in query["sql"].upper()]
    assert len(inserts) == 1
    assert "activityentry" in inserts[0]["sql"]
    assert version.pk in material_cache


# --- refusals that reveal nothing, and changes racing each other ----------------------------


@pytest.mark.parametrize(
    ("service", "arguments"),
    [
        (services.key_get, {}),
        (services.key_sign, {"algorithm": "ES256", "digest": DIGEST}),
        (services.key_create, {"kty": "EC"}),
        (services.key_delete, {}),
    ],
)
def test_outsiders_get_the_same_refusal_for_present_and_missing_keys(
    make_key, outsider, vault, service, arguments
):
    make_key("present", kty="EC")
    refusals = []
    for name in ("present", "missing"):
        with pytest.raises(Forbidden) as refused:
            service(actor=outsider, vault_name=vault.name, name=name, **arguments)
        refusals.append(refused.value.message)
    assert refusals[0] == refusals[1]
    assert vault.name in refusals[0]


def test_outsiders_get_forbidden_not_not_found_for_a_missing_vault(outsider):
    with pytest.raises(Forbidden):
        services.key_list(actor=outsider, vault_name="no-such-vault")
    with pytest.raises(Forbidden):
        services.key_sign(
            actor=outsider, vault_name="no-such-vault", name="k", algorithm="ES256", digest=DIGEST
        )


def test_update_does_not_undo_a_concurrent_disable(make_key, system, vault, monkeypatch):
    """Changing tags while someone disables the version must leave it disabled."""
    created = make_key("k", kty="EC")
    real_clean_tags = lifecycle.clean_tags

    def disable_meanwhile(tags):
        KeyVersion.objects.filter(pk=created.pk).update(enabled=False)
        return real_clean_tags(tags)

    monkeypatch.setattr(lifecycle, "clean_tags", disable_meanwhile)
    updated = services.key_update(actor=system, vault_name=vault.name, name="k", tags={"a": "b"})

    stored = KeyVersion.objects.get(pk=created.pk)
    assert (stored.enabled, stored.tags) == (False, {"a": "b"})
    assert updated.enabled is False


def test_purge_does_not_destroy_a_key_recovered_meanwhile(make_key, system, vault, monkeypatch):
    make_key("k", kty="EC")
    services.key_delete(actor=system, vault_name=vault.name, name="k")
    real_resolve = lifecycle.resolve_key

    def recover_meanwhile(*args, **kwargs):
        key = real_resolve(*args, **kwargs)
        Key.objects.filter(pk=key.pk).update(deleted_at=None, scheduled_purge_at=None)
        return key

    monkeypatch.setattr(lifecycle, "resolve_key", recover_meanwhile)
    with pytest.raises(NotFound):
        services.key_purge(actor=system, vault_name=vault.name, name="k")
    assert Key.objects.get().deleted_at is None
    assert KeyVersion.objects.count() == 1


def test_rotate_does_not_bring_back_a_key_purged_meanwhile(make_key, system, vault, monkeypatch):
    make_key("k", kty="EC")
    real_generate = lifecycle.crypto.generate

    def purge_meanwhile(spec):
        Key.objects.all().delete()
        return real_generate(spec)

    monkeypatch.setattr(lifecycle.crypto, "generate", purge_meanwhile)
    with pytest.raises(NotFound):
        services.key_rotate(actor=system, vault_name=vault.name, name="k")
    assert not Key.objects.exists()
    assert not KeyVersion.objects.exists()
