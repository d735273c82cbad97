"""keys.crypto checked against `cryptography` primitives called directly, not by round trip."""

import base64
import datetime
import os
import re
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, keywrap, serialization
from cryptography.hazmat.primitives import padding as block_padding
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from cryptography.hazmat.primitives.ciphers import algorithms as ciphers
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keys import crypto
from keys.crypto import EC_CURVES, OCT_SIZES, RSA_SIZES, KeySpec, Material
from kvconsole.errors import BadParameter

CURVE_CLASSES: dict[str, type[ec.EllipticCurve]] = {
    "P-256": ec.SECP256R1,
    "P-256K": ec.SECP256K1,
    "P-384": ec.SECP384R1,
    "P-521": ec.SECP521R1,
}
COORDINATE_BYTES = {"P-256": 32, "P-256K": 32, "P-384": 48, "P-521": 66}
ES_BY_CURVE = {"P-256": "ES256", "P-256K": "ES256K", "P-384": "ES384", "P-521": "ES512"}
HASHES: dict[str, hashes.HashAlgorithm] = {
    "256": hashes.SHA256(),
    "384": hashes.SHA384(),
    "512": hashes.SHA512(),
}
RSA_ENCRYPTION_PADDINGS: dict[str, padding.AsymmetricPadding] = {
    "RSA1_5": padding.PKCS1v15(),
    "RSA-OAEP": padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(), None),  # noqa: S303
    "RSA-OAEP-256": padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None),
}
RSA_SIGNATURES = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]


class KeyCache:
    """Generates each size/curve once per module; RSA generation dominates the runtime."""

    def __init__(self) -> None:
        self._materials: dict[tuple[str, int | str], Material] = {}

    def rsa(self, size: int = 2048) -> Material:
        return self._get("RSA", size)

    def ec(self, curve: str = "P-256") -> Material:
        return self._get("EC", curve)

    def oct(self, size: int = 256) -> Material:
        return self._get("oct", size)

    def _get(self, kty: str, size_or_curve: int | str) -> Material:
        if (kty, size_or_curve) not in self._materials:
            if isinstance(size_or_curve, str):
                spec = KeySpec.parse(kty, curve=size_or_curve)
            else:
                spec = KeySpec.parse(kty, size_or_curve)
            self._materials[kty, size_or_curve] = crypto.generate(spec)
        return self._materials[kty, size_or_curve]


@pytest.fixture(scope="module")
def keys() -> KeyCache:
    return KeyCache()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def int_b64(value: int, length: int | None = None) -> str:
    return b64(value.to_bytes(length or (value.bit_length() + 7) // 8))


def digest_for(algorithm: str) -> bytes:
    return os.urandom(HASHES[algorithm[2:5]].digest_size)


def rsa_signature_padding(algorithm: str) -> padding.AsymmetricPadding:
    digest = HASHES[algorithm[2:5]]
    if algorithm.startswith("RS"):
        return padding.PKCS1v15()
    return padding.PSS(padding.MGF1(digest), salt_length=digest.digest_size)


def rsa_jwk(key: rsa.RSAPrivateKey, *, crt: bool = True) -> dict[str, str]:
    numbers = key.private_numbers()
    jwk = {
        "kty": "RSA",
        "n": int_b64(numbers.public_numbers.n),
        "e": int_b64(numbers.public_numbers.e),
        "d": int_b64(numbers.d),
        "p": int_b64(numbers.p),
        "q": int_b64(numbers.q),
    }
    if crt:
        jwk |= {
            "dp": int_b64(numbers.dmp1),
            "dq": int_b64(numbers.dmq1),
            "qi": int_b64(numbers.iqmp),
        }
    return jwk


def ec_jwk(key: ec.EllipticCurvePrivateKey, curve: str) -> dict[str, str]:
    numbers = key.private_numbers()
    length = COORDINATE_BYTES[curve]
    return {
        "kty": "EC",
        "crv": curve,
        "x": int_b64(numbers.public_numbers.x, length),
        "y": int_b64(numbers.public_numbers.y, length),
        "d": int_b64(numbers.private_value, length),
    }


def pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, private_format: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, private_format, serialization.NoEncryption()
    )


def rsa_key(material: Material) -> rsa.RSAPrivateKey:
    assert isinstance(material.key, rsa.RSAPrivateKey)
    return material.key


def ec_key(material: Material) -> ec.EllipticCurvePrivateKey:
    assert isinstance(material.key, ec.EllipticCurvePrivateKey)
    return material.key


def oct_key(material: Material) -> bytes:
    assert isinstance(material.key, bytes)
    return material.key


def private_numbers(key: object) -> object:
    assert isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey))
    return key.private_numbers()


def assert_same_private_key(material: Material, key: object) -> None:
    assert private_numbers(material.key) == private_numbers(key)


# --- KeySpec and generate ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (("RSA",), KeySpec("RSA", 2048)),
        (("RSA", 4096), KeySpec("RSA", 4096)),
        (("EC",), KeySpec("EC", curve="P-256")),
        (("EC", None, "P-521"), KeySpec("EC", curve="P-521")),
        (("oct",), KeySpec("oct", 256)),
        (("oct", 128), KeySpec("oct", 128)),
    ],
)
def test_keyspec_parse_applies_azure_defaults(
    arguments: tuple[Any, ...], expected: KeySpec
) -> None:
    assert KeySpec.parse(*arguments) == expected


@pytest.mark.parametrize(
    ("kty", "size", "curve"),
    [
        ("RSA-HSM", None, None),
        ("EC-HSM", None, None),
        ("oct-HSM", None, None),
        ("rsa", None, None),
        ("DSA", None, None),
        ("RSA", 1024, None),
        ("RSA", 2049, None),
        ("RSA", True, None),
        ("RSA", None, "P-256"),
        ("EC", 256, None),
        ("EC", None, "P-192"),
        ("EC", None, "secp256r1"),
        ("oct", 512, None),
        ("oct", None, "P-256"),
    ],
)
def test_keyspec_parse_refuses_unsupported(kty: str, size: Any, curve: str | None) -> None:
    with pytest.raises(BadParameter):
        KeySpec.parse(kty, size, curve)


@pytest.mark.parametrize("size", RSA_SIZES)
def test_generate_rsa_has_size_and_exponent_65537(keys: KeyCache, size: int) -> None:
    material = keys.rsa(size)
    assert isinstance(material.key, rsa.RSAPrivateKey)
    assert material.key.key_size == size
    assert material.key.private_numbers().public_numbers.e == 65537
    assert material.spec == KeySpec("RSA", size)


@pytest.mark.parametrize("curve", EC_CURVES)
def test_generate_ec_is_on_the_curve(keys: KeyCache, curve: str) -> None:
    material = keys.ec(curve)
    assert isinstance(material.key, ec.EllipticCurvePrivateKey)
    assert isinstance(material.key.curve, CURVE_CLASSES[curve])
    assert material.spec == KeySpec("EC", curve=curve)


@pytest.mark.parametrize("size", OCT_SIZES)
def test_generate_oct_is_random_bytes_of_the_size(size: int) -> None:
    first = crypto.generate(KeySpec.parse("oct", size))
    second = crypto.generate(KeySpec.parse("oct", size))
    assert isinstance(first.key, bytes)
    assert len(first.key) * 8 == size
    assert first.key != second.key
    assert first.spec == KeySpec("oct", size)


def test_generate_applies_defaults_to_a_bare_spec() -> None:
    assert crypto.generate(KeySpec("EC")).spec == KeySpec("EC", curve="P-256")


def test_material_repr_shows_no_secret(keys: KeyCache) -> None:
    secret = oct_key(keys.oct())
    for text in (repr(keys.oct()), str(keys.oct())):
        assert secret.hex() not in text
        assert b64(secret) not in text
        assert base64.b64encode(secret).decode() not in text
        assert repr(secret) not in text
    private_value = rsa_key(keys.rsa()).private_numbers().d
    for text in (repr(keys.rsa()), str(keys.rsa())):
        assert str(private_value) not in text
        assert f"{private_value:x}" not in text
    assert repr(keys.rsa()) == "Material(kty='RSA')"


def test_material_refuses_key_of_another_type(keys: KeyCache) -> None:
    with pytest.raises(BadParameter):
        Material("EC", keys.rsa().key)
    with pytest.raises(BadParameter):
        Material("RSA", b"\x00" * 32)


# --- public_jwk -------------------------------------------------------------------------


@pytest.mark.parametrize("size", RSA_SIZES)
def test_public_jwk_rsa_matches_public_numbers(keys: KeyCache, size: int) -> None:
    material = keys.rsa(size)
    numbers = rsa_key(material).public_key().public_numbers()
    jwk = crypto.public_jwk(material)
    assert list(jwk) == ["kty", "n", "e"]
    assert jwk["n"] == base64.urlsafe_b64encode(numbers.n.to_bytes(size // 8)).rstrip(b"=").decode()
    assert len(base64.urlsafe_b64decode(jwk["n"] + "==")) == size // 8
    assert jwk["e"] == "AQAB"
    assert not any("=" in value for value in jwk.values())


def test_public_jwk_rsa_exponent_is_minimal() -> None:
    key = rsa.generate_private_key(3, 2048)
    assert crypto.public_jwk(Material("RSA", key))["e"] == "Aw"


def ec_key_with_short_coordinate(curve: str) -> ec.EllipticCurvePrivateKey:
    """A key whose x or y has a leading zero byte, which a naive encoding would drop."""
    length = COORDINATE_BYTES[curve]
    for _ in range(20_000):
        key = ec.generate_private_key(CURVE_CLASSES[curve]())
        numbers = key.public_key().public_numbers()
        if min(numbers.x.bit_length(), numbers.y.bit_length()) <= (length - 1) * 8:
            return key
    raise AssertionError(f"no {curve} key with a short coordinate found")


@pytest.mark.parametrize("curve", EC_CURVES)
def test_public_jwk_ec_coordinates_are_fixed_length(curve: str) -> None:
    key = ec_key_with_short_coordinate(curve)
    numbers = key.public_key().public_numbers()
    length = COORDINATE_BYTES[curve]
    jwk = crypto.public_jwk(Material("EC", key))
    assert jwk == {
        "kty": "EC",
        "crv": curve,
        "x": base64.urlsafe_b64encode(numbers.x.to_bytes(length)).rstrip(b"=").decode(),
        "y": base64.urlsafe_b64encode(numbers.y.to_bytes(length)).rstrip(b"=").decode(),
    }
    for coordinate in ("x", "y"):
        assert len(base64.urlsafe_b64decode(jwk[coordinate] + "==")) == length
        assert "=" not in jwk[coordinate]


@pytest.mark.parametrize("size", OCT_SIZES)
def test_public_jwk_oct_has_no_k(keys: KeyCache, size: int) -> None:
    assert crypto.public_jwk(keys.oct(size)) == {"kty": "oct"}


# --- storage form -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda keys: keys.rsa(2048), id="RSA"),
        pytest.param(lambda keys: keys.ec("P-384"), id="EC"),
        pytest.param(lambda keys: keys.ec("P-256K"), id="EC-secp256k1"),
    ],
)
def test_private_bytes_is_pkcs8_der_and_loads_back(
    keys: KeyCache, make: Callable[[KeyCache], Material]
) -> None:
    material = make(keys)
    stored = crypto.private_bytes(material)
    independent = serialization.load_der_private_key(stored, None)
    assert_same_private_key(material, independent)
    # PKCS#8 re-encoding by cryptography itself must be byte-identical.
    assert stored == independent.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    loaded = crypto.load_private_bytes(material.kty, stored)
    assert loaded.kty == material.kty
    assert_same_private_key(loaded, material.key)


@pytest.mark.parametrize("size", OCT_SIZES)
def test_private_bytes_oct_is_the_raw_key(keys: KeyCache, size: int) -> None:
    material = keys.oct(size)
    assert crypto.private_bytes(material) == material.key
    assert crypto.load_private_bytes("oct", crypto.private_bytes(material)) == material


def test_load_private_bytes_refuses_garbage_and_type_mismatch(keys: KeyCache) -> None:
    with pytest.raises(BadParameter):
        crypto.load_private_bytes("RSA", b"not der")
    with pytest.raises(BadParameter):
        crypto.load_private_bytes("RSA", crypto.private_bytes(keys.ec()))
    with pytest.raises(BadParameter):
        crypto.load_private_bytes("oct", b"\x00" * 20)
    with pytest.raises(BadParameter):
        crypto.load_private_bytes("DSA", b"\x00" * 20)


# --- import_jwk -------------------------------------------------------------------------


@pytest.mark.parametrize("crt", [True, False], ids=["with-crt", "without-crt"])
def test_import_jwk_rsa(keys: KeyCache, crt: bool) -> None:
    key = rsa_key(keys.rsa())
    material = crypto.import_jwk(rsa_jwk(key, crt=crt))
    assert material.kty == "RSA"
    assert_same_private_key(material, key)


def test_import_jwk_accepts_padded_base64url(keys: KeyCache) -> None:
    key = rsa_key(keys.rsa())
    padded = {
        name: value + "=" * (-len(value) % 4) if name != "kty" else value
        for name, value in rsa_jwk(key).items()
    }
    assert_same_private_key(crypto.import_jwk(padded), key)


@pytest.mark.parametrize("curve", EC_CURVES)
def test_import_jwk_ec(curve: str) -> None:
    key = ec.generate_private_key(CURVE_CLASSES[curve]())
    material = crypto.import_jwk(ec_jwk(key, curve))
    assert material.kty == "EC"
    assert_same_private_key(material, key)


@pytest.mark.parametrize("size", OCT_SIZES)
def test_import_jwk_oct(size: int) -> None:
    secret = os.urandom(size // 8)
    assert crypto.import_jwk({"kty": "oct", "k": b64(secret)}) == Material("oct", secret)


@pytest.fixture(scope="module")
def broken_rsa_jwks(keys: KeyCache) -> dict[str, dict[str, Any]]:
    key = rsa_key(keys.rsa())
    good = rsa_jwk(key)
    numbers = key.private_numbers()
    small = rsa.generate_private_key(65537, 1024)  # noqa: S505 - must be refused
    return {
        "missing-d": {name: value for name, value in good.items() if name != "d"},
        "missing-p": {name: value for name, value in good.items() if name != "p"},
        "missing-n": {name: value for name, value in good.items() if name != "n"},
        "wrong-dp": good | {"dp": int_b64(numbers.dmp1 + 2)},
        "wrong-qi": good | {"qi": int_b64(numbers.iqmp + 1)},
        "wrong-d": rsa_jwk(key, crt=False) | {"d": int_b64(numbers.d + 2)},
        "swapped-p": rsa_jwk(key, crt=False) | {"p": int_b64(numbers.q), "q": int_b64(numbers.q)},
        "zero-p": rsa_jwk(key, crt=False) | {"p": "AA"},
        "size-1024": rsa_jwk(small),
        "hsm": good | {"kty": "RSA-HSM"},
        "not-base64": good | {"d": "***"},
        "not-a-string": good | {"d": 12345},
        "empty-d": good | {"d": ""},
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing-d",
        "missing-p",
        "missing-n",
        "wrong-dp",
        "wrong-qi",
        "wrong-d",
        "swapped-p",
        "zero-p",
        "size-1024",
        "hsm",
        "not-base64",
        "not-a-string",
        "empty-d",
    ],
)
def test_import_jwk_rsa_refuses(broken_rsa_jwks: dict[str, dict[str, Any]], case: str) -> None:
    with pytest.raises(BadParameter):
        crypto.import_jwk(broken_rsa_jwks[case])


def test_import_jwk_ec_refuses() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1())
    good = ec_jwk(key, "P-256")
    p192 = ec.generate_private_key(ec.SECP192R1())
    p192_numbers = p192.private_numbers()
    cases = [
        good | {"d": ec_jwk(other, "P-256")["d"]},  # d of another key
        {name: value for name, value in good.items() if name != "d"},
        good | {"crv": "P-384"},
        good | {"kty": "EC-HSM"},
        good | {"d": "AA"},  # zero is no private key
        good | {"d": int_b64(2**300)},  # larger than the group order
        {
            "kty": "EC",
            "crv": "P-192",
            "x": int_b64(p192_numbers.public_numbers.x),
            "y": int_b64(p192_numbers.public_numbers.y),
            "d": int_b64(p192_numbers.private_value),
        },
    ]
    for case in cases:
        with pytest.raises(BadParameter):
            crypto.import_jwk(case)


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "oct", "k": b64(os.urandom(20))},
        {"kty": "oct", "k": b64(os.urandom(64))},
        {"kty": "oct"},
        {"kty": "oct-HSM", "k": b64(os.urandom(32))},
        {"k": b64(os.urandom(32))},
        {"kty": "Oct", "k": b64(os.urandom(32))},
        ["kty", "oct"],
    ],
    ids=["20-bytes", "64-bytes", "no-k", "hsm", "no-kty", "wrong-case", "not-a-mapping"],
)
def test_import_jwk_oct_refuses(jwk: Any) -> None:
    with pytest.raises(BadParameter):
        crypto.import_jwk(jwk)


# --- import_pem -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "private_format",
    [serialization.PrivateFormat.TraditionalOpenSSL, serialization.PrivateFormat.PKCS8],
    ids=["pkcs1", "pkcs8"],
)
def test_import_pem_rsa(keys: KeyCache, private_format: Any) -> None:
    key = rsa_key(keys.rsa())
    data = pem(key, private_format)
    label = (
        b"RSA PRIVATE KEY"
        if private_format is serialization.PrivateFormat.TraditionalOpenSSL
        else b"-----BEGIN PRIVATE KEY"
    )
    assert label in data
    assert_same_private_key(crypto.import_pem(data), key)


def test_import_pem_encrypted_pkcs8_needs_the_password(keys: KeyCache) -> None:
    key = rsa_key(keys.rsa())
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"correct horse"),
    )
    assert b"ENCRYPTED PRIVATE KEY" in data
    assert_same_private_key(crypto.import_pem(data, b"correct horse"), key)
    with pytest.raises(BadParameter, match="password"):
        crypto.import_pem(data)
    with pytest.raises(BadParameter, match="password"):
        crypto.import_pem(data, b"wrong")


def test_import_pem_refuses_password_for_unencrypted_key(keys: KeyCache) -> None:
    key = ec_key(keys.ec())
    with pytest.raises(BadParameter, match="not encrypted"):
        crypto.import_pem(pem(key, serialization.PrivateFormat.PKCS8), b"secret")


@pytest.mark.parametrize(
    "private_format",
    [serialization.PrivateFormat.TraditionalOpenSSL, serialization.PrivateFormat.PKCS8],
    ids=["sec1", "pkcs8"],
)
@pytest.mark.parametrize("curve", EC_CURVES)
def test_import_pem_ec(curve: str, private_format: Any) -> None:
    key = ec.generate_private_key(CURVE_CLASSES[curve]())
    data = pem(key, private_format)
    if private_format is serialization.PrivateFormat.TraditionalOpenSSL:
        assert b"EC PRIVATE KEY" in data
    material = crypto.import_pem(data)
    assert material.spec == KeySpec("EC", curve=curve)
    assert_same_private_key(material, key)


def _self_signed_certificate(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "kvconsole test")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime.datetime(2020, 1, 1))
        .not_valid_after(datetime.datetime(2030, 1, 1))
        .sign(key, hashes.SHA256())
    )


def test_import_pem_refuses_public_keys_and_certificates(keys: KeyCache) -> None:
    ec_private = ec_key(keys.ec())
    public_pems = [
        ec_private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        rsa_key(keys.rsa())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1),
        _self_signed_certificate(ec_private).public_bytes(serialization.Encoding.PEM),
    ]
    for data in public_pems:
        with pytest.raises(BadParameter, match="must contain a private key"):
            crypto.import_pem(data)


def test_import_pem_accepts_certificate_bundled_with_its_key(keys: KeyCache) -> None:
    key = ec_key(keys.ec())
    certificate = _self_signed_certificate(key).public_bytes(serialization.Encoding.PEM)
    bundle = certificate + pem(key, serialization.PrivateFormat.PKCS8)
    assert_same_private_key(crypto.import_pem(bundle), key)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: rsa.generate_private_key(65537, 1024), id="rsa-1024"),  # noqa: S505
        pytest.param(lambda: ec.generate_private_key(ec.SECP192R1()), id="P-192"),
        pytest.param(lambda: ec.generate_private_key(ec.BrainpoolP256R1()), id="brainpool"),
        pytest.param(ed25519.Ed25519PrivateKey.generate, id="ed25519"),
    ],
)
def test_import_pem_refuses_unsupported_keys(make: Callable[[], Any]) -> None:
    with pytest.raises(BadParameter):
        crypto.import_pem(pem(make(), serialization.PrivateFormat.PKCS8))


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"],
)
def test_import_pem_refuses_malformed(data: bytes) -> None:
    with pytest.raises(BadParameter):
        crypto.import_pem(data)


# --- algorithms() -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kty", "operation", "fit", "expected"),
    [
        ("RSA", "encrypt", {"size": 2048}, ("RSA1_5", "RSA-OAEP", "RSA-OAEP-256")),
        ("RSA", "wrapKey", {"size": 4096}, ("RSA1_5", "RSA-OAEP", "RSA-OAEP-256")),
        ("RSA", "sign", {"size": 3072}, tuple(RSA_SIGNATURES)),
        ("RSA", "verify", {}, tuple(RSA_SIGNATURES)),
        ("EC", "sign", {"curve": "P-256"}, ("ES256",)),
        ("EC", "sign", {"curve": "P-256K"}, ("ES256K",)),
        ("EC", "sign", {"curve": "P-384"}, ("ES384",)),
        ("EC", "sign", {"curve": "P-521"}, ("ES512",)),
        ("EC", "sign", {}, ("ES256", "ES256K", "ES384", "ES512")),
        ("EC", "encrypt", {"curve": "P-256"}, ()),
        ("EC", "wrapKey", {"curve": "P-384"}, ()),
        ("oct", "encrypt", {"size": 128}, ("A128GCM", "A128CBC", "A128CBCPAD")),
        ("oct", "encrypt", {"size": 192}, ("A192GCM", "A192CBC", "A192CBCPAD")),
        ("oct", "decrypt", {"size": 256}, ("A256GCM", "A256CBC", "A256CBCPAD")),
        ("oct", "wrapKey", {"size": 128}, ("A128KW",)),
        ("oct", "unwrapKey", {"size": 256}, ("A256KW",)),
        ("oct", "wrapKey", {}, ("A128KW", "A192KW", "A256KW")),
        ("oct", "sign", {"size": 256}, ()),
    ],
)
def test_algorithms_lists_exactly_the_fitting_ones(
    kty: str, operation: str, fit: dict[str, Any], expected: tuple[str, ...]
) -> None:
    assert crypto.algorithms(kty, operation, **fit) == expected


@pytest.mark.parametrize(
    ("kty", "operation", "fit"),
    [
        ("RSA", "export", {}),
        ("RSA-HSM", "sign", {}),
        ("RSA", "sign", {"size": 1024}),
        ("EC", "sign", {"curve": "P-192"}),
        ("oct", "encrypt", {"size": 512}),
    ],
)
def test_algorithms_refuses_unknown_inputs(kty: str, operation: str, fit: dict[str, Any]) -> None:
    with pytest.raises(BadParameter):
        crypto.algorithms(kty, operation, **fit)


def _every_key(keys: KeyCache) -> list[Material]:
    return (
        [keys.rsa(2048)]
        + [keys.ec(curve) for curve in EC_CURVES]
        + [keys.oct(size) for size in OCT_SIZES]
    )


def test_every_listed_algorithm_works_on_a_fitting_key(keys: KeyCache) -> None:
    for material in _every_key(keys):
        spec = material.spec
        for algorithm in crypto.algorithms(spec.kty, "sign", size=spec.size, curve=spec.curve):
            digest = digest_for(algorithm)
            signature = crypto.sign(material, algorithm, digest)
            assert crypto.verify(material, algorithm, digest, signature)
        for algorithm in crypto.algorithms(spec.kty, "encrypt", size=spec.size):
            iv = None if algorithm.endswith("GCM") or spec.kty == "RSA" else os.urandom(16)
            result = crypto.encrypt(material, algorithm, b"0123456789abcdef", iv=iv)
            recovered = crypto.decrypt(
                material, algorithm, result.ciphertext, iv=result.iv, tag=result.tag
            )
            assert recovered == b"0123456789abcdef"
        for algorithm in crypto.algorithms(spec.kty, "wrapKey", size=spec.size):
            wrapped = crypto.wrap_key(material, algorithm, b"k" * 32)
            assert crypto.unwrap_key(material, algorithm, wrapped) == b"k" * 32


ALL_ALGORITHMS = [
    *RSA_SIGNATURES,
    *ES_BY_CURVE.values(),
    *RSA_ENCRYPTION_PADDINGS,
    *(f"A{bits}{mode}" for bits in OCT_SIZES for mode in ("GCM", "CBC", "CBCPAD", "KW")),
]


def _call_with_valid_inputs(material: Material, operation: str, algorithm: str) -> object:
    """Run an operation with inputs that would be fine if the algorithm fitted the key."""
    if operation == "sign":
        return crypto.sign(material, algorithm, bytes(32))
    if operation == "encrypt":
        iv = bytes(16) if "CBC" in algorithm else None
        return crypto.encrypt(material, algorithm, bytes(16), iv=iv)
    return crypto.wrap_key(material, algorithm, bytes(32))


def test_algorithms_not_listed_are_refused(keys: KeyCache) -> None:
    for material in _every_key(keys):
        spec = material.spec
        for operation in ("sign", "encrypt", "wrapKey"):
            fitting = crypto.algorithms(spec.kty, operation, size=spec.size, curve=spec.curve)
            for algorithm in ALL_ALGORITHMS:
                if algorithm not in fitting:
                    with pytest.raises(BadParameter):
                        _call_with_valid_inputs(material, operation, algorithm)


# --- signatures -------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", RSA_SIGNATURES)
@pytest.mark.parametrize("size", [2048, 4096])
def test_rsa_sign_verifies_with_cryptography(keys: KeyCache, size: int, algorithm: str) -> None:
    material = keys.rsa(size)
    digest = digest_for(algorithm)
    signature = crypto.sign(material, algorithm, digest)
    assert len(signature) == size // 8
    public_key = rsa_key(material).public_key()
    public_key.verify(
        signature,
        digest,
        rsa_signature_padding(algorithm),
        utils.Prehashed(HASHES[algorithm[2:5]]),
    )


@pytest.mark.parametrize("algorithm", RSA_SIGNATURES)
def test_rsa_verify_accepts_cryptography_signatures(keys: KeyCache, algorithm: str) -> None:
    material = keys.rsa()
    key = rsa_key(material)
    digest = digest_for(algorithm)
    signature = key.sign(
        digest, rsa_signature_padding(algorithm), utils.Prehashed(HASHES[algorithm[2:5]])
    )
    assert crypto.verify(material, algorithm, digest, signature)
    tampered = bytes([signature[0] ^ 1]) + signature[1:]
    assert not crypto.verify(material, algorithm, digest, tampered)
    assert not crypto.verify(material, algorithm, bytes([digest[0] ^ 1]) + digest[1:], signature)
    assert not crypto.verify(material, algorithm, digest, signature[:-1])
    assert not crypto.verify(material, algorithm, digest, signature + b"\x00")
    assert not crypto.verify(material, algorithm, digest, b"")


def test_rsa_verify_uses_the_named_scheme(keys: KeyCache) -> None:
    digest = digest_for("RS256")
    signature = crypto.sign(keys.rsa(), "RS256", digest)
    assert not crypto.verify(keys.rsa(), "PS256", digest, signature)


@pytest.mark.parametrize("curve", EC_CURVES)
def test_ec_sign_is_raw_r_s_that_cryptography_verifies(keys: KeyCache, curve: str) -> None:
    material = keys.ec(curve)
    algorithm = ES_BY_CURVE[curve]
    digest = digest_for(algorithm)
    half = COORDINATE_BYTES[curve]
    ecdsa = ec.ECDSA(utils.Prehashed(HASHES[algorithm[2:5]]))
    public_key = ec_key(material).public_key()
    # Sign until r or s is short enough to need left-padding, checking every signature.
    for _ in range(5_000):
        signature = crypto.sign(material, algorithm, digest)
        assert len(signature) == 2 * half
        r, s = int.from_bytes(signature[:half]), int.from_bytes(signature[half:])
        public_key.verify(utils.encode_dss_signature(r, s), digest, ecdsa)
        if min(r.bit_length(), s.bit_length()) <= (half - 1) * 8:
            break
    else:
        raise AssertionError(f"no {curve} signature with a short r or s")


@pytest.mark.parametrize("curve", EC_CURVES)
def test_ec_verify_accepts_cryptography_signatures(keys: KeyCache, curve: str) -> None:
    material = keys.ec(curve)
    key = ec_key(material)
    algorithm = ES_BY_CURVE[curve]
    digest = digest_for(algorithm)
    half = COORDINATE_BYTES[curve]
    r, s = utils.decode_dss_signature(
        key.sign(digest, ec.ECDSA(utils.Prehashed(HASHES[algorithm[2:5]])))
    )
    signature = r.to_bytes(half) + s.to_bytes(half)
    assert crypto.verify(material, algorithm, digest, signature)
    assert not crypto.verify(material, algorithm, digest, signature[:half] + bytes(half))
    assert not crypto.verify(material, algorithm, digest, bytes([signature[0] ^ 1]) + signature[1:])
    assert not crypto.verify(material, algorithm, bytes([digest[0] ^ 1]) + digest[1:], signature)
    # Only the raw r||s form is accepted: DER and wrong lengths are just invalid.
    der = utils.encode_dss_signature(r, s)
    assert not crypto.verify(material, algorithm, digest, der)
    assert not crypto.verify(material, algorithm, digest, signature[:-1])
    assert not crypto.verify(material, algorithm, digest, b"")
    assert not crypto.verify(material, algorithm, digest, bytes(2 * half))


# --- RSA encryption and wrapping --------------------------------------------------------


@pytest.mark.parametrize("algorithm", list(RSA_ENCRYPTION_PADDINGS))
def test_rsa_encrypt_decrypts_with_cryptography(keys: KeyCache, algorithm: str) -> None:
    material = keys.rsa()
    result = crypto.encrypt(material, algorithm, b"attack at dawn")
    assert result.iv is None
    assert result.tag is None
    plaintext = rsa_key(material).decrypt(result.ciphertext, RSA_ENCRYPTION_PADDINGS[algorithm])
    assert plaintext == b"attack at dawn"


@pytest.mark.parametrize("algorithm", list(RSA_ENCRYPTION_PADDINGS))
@pytest.mark.parametrize("size", RSA_SIZES)
def test_rsa_decrypt_reads_cryptography_ciphertext(
    keys: KeyCache, size: int, algorithm: str
) -> None:
    material = keys.rsa(size)
    public_key = rsa_key(material).public_key()
    ciphertext = public_key.encrypt(b"attack at dawn", RSA_ENCRYPTION_PADDINGS[algorithm])
    assert crypto.decrypt(material, algorithm, ciphertext) == b"attack at dawn"


@pytest.mark.parametrize(
    ("algorithm", "limit"), [("RSA1_5", 245), ("RSA-OAEP", 214), ("RSA-OAEP-256", 190)]
)
def test_rsa_encrypt_enforces_the_plaintext_limit(
    keys: KeyCache, algorithm: str, limit: int
) -> None:
    material = keys.rsa(2048)
    ciphertext = crypto.encrypt(material, algorithm, b"x" * limit).ciphertext
    assert rsa_key(material).decrypt(ciphertext, RSA_ENCRYPTION_PADDINGS[algorithm]) == b"x" * limit
    with pytest.raises(BadParameter, match=f"{limit + 1} bytes"):
        crypto.encrypt(material, algorithm, b"x" * (limit + 1))
    with pytest.raises(BadParameter):
        crypto.wrap_key(material, algorithm, b"x" * (limit + 1))


@pytest.mark.parametrize("algorithm", list(RSA_ENCRYPTION_PADDINGS))
def test_rsa_wrap_key_interoperates_with_cryptography(keys: KeyCache, algorithm: str) -> None:
    material = keys.rsa(3072)
    key = rsa_key(material)
    content_key = os.urandom(32)
    wrapped = crypto.wrap_key(material, algorithm, content_key)
    assert key.decrypt(wrapped, RSA_ENCRYPTION_PADDINGS[algorithm]) == content_key
    wrapped_directly = key.public_key().encrypt(content_key, RSA_ENCRYPTION_PADDINGS[algorithm])
    assert crypto.unwrap_key(material, algorithm, wrapped_directly) == content_key


def test_rsa_oaep_decryption_failure_is_bad_parameter(keys: KeyCache) -> None:
    material = keys.rsa()
    ciphertext = bytearray(crypto.encrypt(material, "RSA-OAEP-256", b"secret").ciphertext)
    ciphertext[-1] ^= 1
    with pytest.raises(BadParameter):
        crypto.decrypt(material, "RSA-OAEP-256", bytes(ciphertext))
    with pytest.raises(BadParameter):
        crypto.unwrap_key(material, "RSA-OAEP", bytes(ciphertext))
    with pytest.raises(BadParameter):
        crypto.decrypt(material, "RSA-OAEP", bytes(ciphertext[:-1]))


# --- AES --------------------------------------------------------------------------------


@pytest.mark.parametrize("size", OCT_SIZES)
def test_gcm_encrypt_decrypts_with_aesgcm(keys: KeyCache, size: int) -> None:
    material = keys.oct(size)
    algorithm = f"A{size}GCM"
    result = crypto.encrypt(material, algorithm, b"attack at dawn", aad=b"header")
    assert result.iv is not None
    assert result.tag is not None
    assert len(result.iv) == 12
    assert len(result.tag) == 16
    aesgcm = AESGCM(oct_key(material))
    recovered = aesgcm.decrypt(result.iv, result.ciphertext + result.tag, b"header")
    assert recovered == b"attack at dawn"
    with pytest.raises(InvalidTag):
        aesgcm.decrypt(result.iv, result.ciphertext + result.tag, b"other header")


def test_gcm_encrypt_uses_a_fresh_iv(keys: KeyCache) -> None:
    ivs = {crypto.encrypt(keys.oct(), "A256GCM", b"same").iv for _ in range(50)}
    assert len(ivs) == 50


@pytest.mark.parametrize("aad", [None, b"header"])
@pytest.mark.parametrize("size", OCT_SIZES)
def test_gcm_decrypt_reads_aesgcm_ciphertext(keys: KeyCache, size: int, aad: bytes | None) -> None:
    material = keys.oct(size)
    iv = os.urandom(12)
    sealed = AESGCM(oct_key(material)).encrypt(iv, b"attack at dawn", aad)
    plaintext = crypto.decrypt(
        material, f"A{size}GCM", sealed[:-16], iv=iv, tag=sealed[-16:], aad=aad
    )
    assert plaintext == b"attack at dawn"


@pytest.mark.parametrize("padded", [False, True], ids=["CBC", "CBCPAD"])
@pytest.mark.parametrize("size", OCT_SIZES)
def test_cbc_encrypt_decrypts_with_cipher(keys: KeyCache, size: int, padded: bool) -> None:
    material = keys.oct(size)
    algorithm = f"A{size}CBC" + ("PAD" if padded else "")
    plaintext = b"sixteen byte msg" * 2 + (b"tail" if padded else b"")
    iv = os.urandom(16)
    result = crypto.encrypt(material, algorithm, plaintext, iv=iv)
    assert result.iv == iv
    assert result.tag is None
    decryptor = Cipher(ciphers.AES(oct_key(material)), modes.CBC(iv)).decryptor()
    recovered = decryptor.update(result.ciphertext) + decryptor.finalize()
    if padded:
        unpadder = block_padding.PKCS7(128).unpadder()
        recovered = unpadder.update(recovered) + unpadder.finalize()
    assert recovered == plaintext


@pytest.mark.parametrize("plaintext", [b"", b"x", b"exactly 16 bytes", b"y" * 33])
@pytest.mark.parametrize("size", OCT_SIZES)
def test_cbcpad_decrypt_reads_cipher_ciphertext(
    keys: KeyCache, size: int, plaintext: bytes
) -> None:
    material = keys.oct(size)
    iv = os.urandom(16)
    padder = block_padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(ciphers.AES(oct_key(material)), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    assert crypto.decrypt(material, f"A{size}CBCPAD", ciphertext, iv=iv) == plaintext
    # Without PAD the padding stays on the plaintext.
    assert crypto.decrypt(material, f"A{size}CBC", ciphertext, iv=iv) == padded


@pytest.mark.parametrize("size", OCT_SIZES)
def test_key_wrap_interoperates_with_rfc3394(keys: KeyCache, size: int) -> None:
    material = keys.oct(size)
    algorithm = f"A{size}KW"
    for content_key in (os.urandom(16), os.urandom(24), os.urandom(32), os.urandom(64)):
        wrapped = crypto.wrap_key(material, algorithm, content_key)
        assert keywrap.aes_key_unwrap(oct_key(material), wrapped) == content_key
        wrapped_directly = keywrap.aes_key_wrap(oct_key(material), content_key)
        assert crypto.unwrap_key(material, algorithm, wrapped_directly) == content_key


# --- every BadParameter path ------------------------------------------------------------


def _tampered_gcm(keys: KeyCache) -> None:
    result = crypto.encrypt(keys.oct(), "A256GCM", b"attack at dawn")
    ciphertext = bytes([result.ciphertext[0] ^ 1]) + result.ciphertext[1:]
    crypto.decrypt(keys.oct(), "A256GCM", ciphertext, iv=result.iv, tag=result.tag)


def _gcm_wrong_aad(keys: KeyCache) -> None:
    result = crypto.encrypt(keys.oct(), "A256GCM", b"attack at dawn", aad=b"a")
    crypto.decrypt(keys.oct(), "A256GCM", result.ciphertext, iv=result.iv, tag=result.tag)


def _bad_gcm_tag(keys: KeyCache) -> None:
    result = crypto.encrypt(keys.oct(), "A256GCM", b"attack at dawn")
    crypto.decrypt(keys.oct(), "A256GCM", result.ciphertext, iv=result.iv, tag=bytes(16))


def _bad_cbc_padding(keys: KeyCache) -> None:
    iv = os.urandom(16)
    encryptor = Cipher(ciphers.AES(oct_key(keys.oct())), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(b"\x00" * 16) + encryptor.finalize()
    crypto.decrypt(keys.oct(), "A256CBCPAD", ciphertext, iv=iv)


def _tampered_key_wrap(keys: KeyCache) -> None:
    wrapped = crypto.wrap_key(keys.oct(), "A256KW", os.urandom(32))
    crypto.unwrap_key(keys.oct(), "A256KW", bytes([wrapped[0] ^ 1]) + wrapped[1:])


IV16 = bytes(16)
BAD_PARAMETER_CASES: dict[str, Callable[[KeyCache], object]] = {
    # algorithm does not fit the key
    "rsa-sign-with-ES256": lambda k: crypto.sign(k.rsa(), "ES256", bytes(32)),
    "ec-sign-with-RS256": lambda k: crypto.sign(k.ec(), "RS256", bytes(32)),
    "ec-sign-on-wrong-curve": lambda k: crypto.sign(k.ec("P-256"), "ES384", bytes(48)),
    "ec-verify-on-wrong-curve": lambda k: crypto.verify(k.ec("P-384"), "ES256", bytes(32), b""),
    "ES256K-on-P-256": lambda k: crypto.sign(k.ec("P-256"), "ES256K", bytes(32)),
    "unknown-algorithm": lambda k: crypto.sign(k.rsa(), "RS1024", bytes(32)),
    "oct-sign": lambda k: crypto.sign(k.oct(), "HS256", bytes(32)),
    "oct-verify": lambda k: crypto.verify(k.oct(), "RS256", bytes(32), bytes(32)),
    "ec-encrypt": lambda k: crypto.encrypt(k.ec(), "RSA-OAEP", b"x"),
    "ec-decrypt": lambda k: crypto.decrypt(k.ec(), "A256GCM", b"x"),
    "ec-wrap": lambda k: crypto.wrap_key(k.ec(), "RSA-OAEP", bytes(32)),
    "ec-unwrap": lambda k: crypto.unwrap_key(k.ec(), "A256KW", bytes(40)),
    "rsa-encrypt-with-gcm": lambda k: crypto.encrypt(k.rsa(), "A256GCM", b"x"),
    "oct-encrypt-with-rsa": lambda k: crypto.encrypt(k.oct(), "RSA-OAEP", b"x"),
    "oct-encrypt-with-kw": lambda k: crypto.encrypt(k.oct(), "A256KW", bytes(32)),
    "oct-wrap-with-gcm": lambda k: crypto.wrap_key(k.oct(), "A256GCM", bytes(32)),
    "rsa-wrap-with-kw": lambda k: crypto.wrap_key(k.rsa(), "A256KW", bytes(32)),
    # wrong digest length
    "RS256-digest-48": lambda k: crypto.sign(k.rsa(), "RS256", bytes(48)),
    "PS512-digest-32": lambda k: crypto.sign(k.rsa(), "PS512", bytes(32)),
    "ES256-digest-31": lambda k: crypto.sign(k.ec(), "ES256", bytes(31)),
    "ES512-verify-digest-32": lambda k: crypto.verify(k.ec("P-521"), "ES512", bytes(32), b""),
    "RS384-verify-digest-0": lambda k: crypto.verify(k.rsa(), "RS384", b"", bytes(256)),
    # AES key size must match the algorithm
    "A128GCM-on-256-key": lambda k: crypto.encrypt(k.oct(256), "A128GCM", b"x"),
    "A256GCM-on-128-key": lambda k: crypto.decrypt(
        k.oct(128), "A256GCM", b"x", iv=bytes(12), tag=bytes(16)
    ),
    "A192CBC-on-128-key": lambda k: crypto.encrypt(k.oct(128), "A192CBC", IV16, iv=IV16),
    "A128KW-on-256-key": lambda k: crypto.wrap_key(k.oct(256), "A128KW", bytes(16)),
    "A256KW-unwrap-on-192-key": lambda k: crypto.unwrap_key(k.oct(192), "A256KW", bytes(24)),
    # GCM iv/tag rules
    "client-iv-on-gcm-encrypt": lambda k: crypto.encrypt(k.oct(), "A256GCM", b"x", iv=bytes(12)),
    "gcm-decrypt-missing-iv": lambda k: crypto.decrypt(k.oct(), "A256GCM", b"x", tag=bytes(16)),
    "gcm-decrypt-missing-tag": lambda k: crypto.decrypt(k.oct(), "A256GCM", b"x", iv=bytes(12)),
    "gcm-decrypt-short-iv": lambda k: crypto.decrypt(
        k.oct(), "A256GCM", b"x", iv=bytes(8), tag=bytes(16)
    ),
    "gcm-decrypt-short-tag": lambda k: crypto.decrypt(
        k.oct(), "A256GCM", b"x", iv=bytes(12), tag=bytes(12)
    ),
    "gcm-bad-tag": _bad_gcm_tag,
    "gcm-tampered-ciphertext": _tampered_gcm,
    "gcm-missing-aad": _gcm_wrong_aad,
    # CBC rules
    "cbc-unaligned": lambda k: crypto.encrypt(k.oct(), "A256CBC", b"x" * 17, iv=IV16),
    "cbc-missing-iv": lambda k: crypto.encrypt(k.oct(), "A256CBC", IV16),
    "cbcpad-missing-iv": lambda k: crypto.encrypt(k.oct(), "A256CBCPAD", b"x"),
    "cbc-iv-12": lambda k: crypto.encrypt(k.oct(), "A256CBCPAD", b"x", iv=bytes(12)),
    "cbc-decrypt-missing-iv": lambda k: crypto.decrypt(k.oct(), "A256CBC", IV16),
    "cbc-decrypt-unaligned": lambda k: crypto.decrypt(k.oct(), "A256CBC", bytes(17), iv=IV16),
    "cbcpad-decrypt-empty": lambda k: crypto.decrypt(k.oct(), "A256CBCPAD", b"", iv=IV16),
    "cbc-aad": lambda k: crypto.encrypt(k.oct(), "A256CBC", IV16, iv=IV16, aad=b"a"),
    "cbc-decrypt-tag": lambda k: crypto.decrypt(k.oct(), "A256CBC", IV16, iv=IV16, tag=IV16),
    "cbcpad-bad-padding": _bad_cbc_padding,
    # RSA takes neither iv nor aad
    "rsa-encrypt-aad": lambda k: crypto.encrypt(k.rsa(), "RSA-OAEP", b"x", aad=b"a"),
    "rsa-encrypt-iv": lambda k: crypto.encrypt(k.rsa(), "RSA-OAEP", b"x", iv=IV16),
    "rsa-decrypt-aad": lambda k: crypto.decrypt(k.rsa(), "RSA-OAEP", bytes(256), aad=b"a"),
    "rsa-decrypt-wrong-length": lambda k: crypto.decrypt(k.rsa(), "RSA-OAEP-256", bytes(100)),
    "rsa-unwrap-garbage": lambda k: crypto.unwrap_key(k.rsa(), "RSA-OAEP", bytes(256)),
    # key wrap rules
    "wrap-15-byte-key": lambda k: crypto.wrap_key(k.oct(), "A256KW", bytes(15)),
    "wrap-8-byte-key": lambda k: crypto.wrap_key(k.oct(), "A256KW", bytes(8)),
    "wrap-20-byte-key": lambda k: crypto.wrap_key(k.oct(), "A256KW", bytes(20)),
    "unwrap-short": lambda k: crypto.unwrap_key(k.oct(), "A256KW", bytes(16)),
    "unwrap-unaligned": lambda k: crypto.unwrap_key(k.oct(), "A256KW", bytes(41)),
    "unwrap-tampered": _tampered_key_wrap,
    # base64url
    "b64-bad-character": lambda k: crypto.b64url_decode("ab*d"),
    "b64-impossible-length": lambda k: crypto.b64url_decode("abcde"),
    "b64-padding-in-middle": lambda k: crypto.b64url_decode("ab==cd"),
    "b64-too-much-padding": lambda k: crypto.b64url_decode("ab==="),
    "b64-whitespace": lambda k: crypto.b64url_decode("ab cd"),
    "b64-not-a-string": lambda k: crypto.b64url_decode(b"abcd"),  # type: ignore[arg-type]
}

# A message quoting key material or data would show up as a long base64/hex run.
ENCODED_RUN = re.compile(r"[A-Za-z0-9+/_=-]{24,}")


@pytest.mark.parametrize("case", list(BAD_PARAMETER_CASES))
def test_bad_input_raises_bad_parameter(keys: KeyCache, case: str) -> None:
    with pytest.raises(BadParameter) as raised:
        BAD_PARAMETER_CASES[case](keys)
    message = raised.value.message
    assert message
    assert not ENCODED_RUN.search(message), message


def test_unfit_algorithm_message_names_the_fitting_ones(keys: KeyCache) -> None:
    with pytest.raises(BadParameter, match="ES384") as raised:
        crypto.sign(keys.ec("P-384"), "ES256", bytes(32))
    assert "P-384" in raised.value.message
    with pytest.raises(BadParameter, match="needs a 48-byte digest; got 32"):
        crypto.sign(keys.rsa(), "PS384", bytes(32))


# --- base64url --------------------------------------------------------------------------


@pytest.mark.parametrize("length", range(0, 9))
def test_b64url_matches_the_base64_module(length: int) -> None:
    data = os.urandom(length) + b"\xfb\xff"  # bytes that encode to '-' and '_'
    encoded = crypto.b64url_encode(data)
    assert encoded == base64.urlsafe_b64encode(data).decode().rstrip("=")
    assert crypto.b64url_decode(encoded) == data
    assert crypto.b64url_decode(base64.urlsafe_b64encode(data).decode()) == data
    assert crypto.b64url_decode(base64.b64encode(data).decode()) == data


def test_b64url_decode_of_empty_is_empty() -> None:
    assert crypto.b64url_decode("") == b""
    assert crypto.b64url_encode(b"") == ""


def test_the_engine_imports_no_django() -> None:
    """The crypto engine is pure: importing it loads no Django module."""
    import subprocess
    import sys
    from pathlib import Path

    check = (
        "import sys, keys.crypto; print(sorted(m for m in sys.modules if m.startswith('django')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", check],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "[]"
