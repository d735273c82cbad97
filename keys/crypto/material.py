"""Keys as `Material`: generating, importing, exporting the public part, storing."""

import base64
import binascii
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from kvconsole.errors import BadParameter

RSA_SIZES = (2048, 3072, 4096)
EC_CURVES = ("P-256", "P-256K", "P-384", "P-521")
OCT_SIZES = (128, 192, 256)
KEY_TYPES = ("RSA", "EC", "oct")

_DEFAULT_RSA_SIZE = 2048
_DEFAULT_CURVE = "P-256"
_DEFAULT_OCT_SIZE = 256
_RSA_PUBLIC_EXPONENT = 65537

CURVES: dict[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(),
    "P-256K": ec.SECP256K1(),
    "P-384": ec.SECP384R1(),
    "P-521": ec.SECP521R1(),
}
_CURVE_BY_OPENSSL_NAME = {curve.name: name for name, curve in CURVES.items()}
COORDINATE_BYTES = {"P-256": 32, "P-256K": 32, "P-384": 48, "P-521": 66}

_KEY_CLASSES: dict[str, type] = {
    "RSA": rsa.RSAPrivateKey,
    "EC": ec.EllipticCurvePrivateKey,
    "oct": bytes,
}


@dataclass(frozen=True)
class KeySpec:
    """What a key is: its type and its size or curve."""

    kty: str
    size: int | None = None
    curve: str | None = None

    @classmethod
    def parse(cls, kty: str, size: int | None = None, curve: str | None = None) -> "KeySpec":
        """Validate a requested key type and apply Azure's default size or curve."""
        check_spec_fields(kty, size, curve)
        if kty == "RSA":
            return cls(kty, size or _DEFAULT_RSA_SIZE)
        if kty == "EC":
            return cls(kty, curve=curve or _DEFAULT_CURVE)
        return cls(kty, size or _DEFAULT_OCT_SIZE)

    def describe(self) -> str:
        """A phrase for error messages, e.g. 'an RSA 2048-bit key'."""
        if self.kty == "RSA":
            return f"an RSA {self.size}-bit key"
        if self.kty == "EC":
            return f"an EC {self.curve} key"
        return f"a {self.size}-bit oct key"


@dataclass(frozen=True)
class Material:
    """A loaded private key; its repr never shows the key."""

    kty: str
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | bytes = field(repr=False)

    def __post_init__(self) -> None:
        # Checked once here so the hot paths can dispatch on `kty` alone.
        key_class = _KEY_CLASSES.get(self.kty)
        if key_class is not None and isinstance(self.key, key_class):
            return
        raise BadParameter(f"Key material does not match key type {quote(self.kty)}.")

    @property
    def spec(self) -> KeySpec:
        """The type and size or curve, read from the key itself."""
        if self.kty == "RSA":
            return KeySpec("RSA", size=self._rsa.key_size)
        if self.kty == "EC":
            return KeySpec("EC", curve=_CURVE_BY_OPENSSL_NAME[self._ec.curve.name])
        return KeySpec("oct", size=len(self._oct) * 8)

    @property
    def _rsa(self) -> rsa.RSAPrivateKey:
        return cast(rsa.RSAPrivateKey, self.key)

    @property
    def _ec(self) -> ec.EllipticCurvePrivateKey:
        return cast(ec.EllipticCurvePrivateKey, self.key)

    @property
    def _oct(self) -> bytes:
        return cast(bytes, self.key)


# --- Creating, importing and storing keys -------------------------------------------------


def generate(spec: KeySpec) -> Material:
    """Fresh key material for the spec (RSA with e=65537)."""
    spec = KeySpec.parse(spec.kty, spec.size, spec.curve)
    if spec.kty == "RSA":
        return Material("RSA", rsa.generate_private_key(_RSA_PUBLIC_EXPONENT, cast(int, spec.size)))
    if spec.kty == "EC":
        return Material("EC", ec.generate_private_key(CURVES[cast(str, spec.curve)]))
    return Material("oct", os.urandom(cast(int, spec.size) // 8))


def import_jwk(jwk: Mapping[str, Any]) -> Material:
    """Load a JSON Web Key that carries its private parts."""
    if not isinstance(jwk, Mapping):
        raise BadParameter("The key must be a JSON Web Key object.")
    kty = jwk.get("kty")
    if isinstance(kty, str) and kty.endswith("-HSM"):
        raise BadParameter(f"Hardware-protected key type {quote(kty)} cannot be imported here.")
    if not isinstance(kty, str) or kty not in KEY_TYPES:
        raise BadParameter(f"Unsupported JWK kty {quote(kty)}; supported: {', '.join(KEY_TYPES)}.")
    if kty == "RSA":
        return _import_rsa_jwk(jwk)
    if kty == "EC":
        return _import_ec_jwk(jwk)
    secret = _jwk_bytes(jwk, "k")
    if len(secret) * 8 not in OCT_SIZES:
        raise BadParameter(
            f"An oct key must be 16, 24 or 32 bytes; the JWK k has {len(secret)} bytes."
        )
    return Material("oct", secret)


def _import_rsa_jwk(jwk: Mapping[str, Any]) -> Material:
    modulus, exponent = _jwk_int(jwk, "n"), _jwk_int(jwk, "e")
    if modulus.bit_length() not in RSA_SIZES:
        raise BadParameter(
            f"Unsupported RSA key size {modulus.bit_length()}; supported: {_listed(RSA_SIZES)}."
        )
    private_exponent, p, q = _jwk_int(jwk, "d"), _jwk_int(jwk, "p"), _jwk_int(jwk, "q")
    given_crt = {name: _jwk_int(jwk, name) for name in ("dp", "dq", "qi") if name in jwk}
    try:
        # Computing the CRT values also rejects p and q that are not usable moduli.
        crt = {
            "dp": rsa.rsa_crt_dmp1(private_exponent, p),
            "dq": rsa.rsa_crt_dmq1(private_exponent, q),
            "qi": rsa.rsa_crt_iqmp(p, q),
        }
        for name, given in given_crt.items():
            if given != crt[name]:
                raise BadParameter(f"The RSA JWK {name} does not match its d, p and q.")
        numbers = rsa.RSAPrivateNumbers(
            p,
            q,
            private_exponent,
            crt["dp"],
            crt["dq"],
            crt["qi"],
            rsa.RSAPublicNumbers(exponent, modulus),
        )
        return Material("RSA", numbers.private_key())
    except ValueError:
        raise BadParameter("The RSA JWK parts do not form a valid private key.") from None


def _import_ec_jwk(jwk: Mapping[str, Any]) -> Material:
    curve = jwk.get("crv")
    if not isinstance(curve, str) or curve not in EC_CURVES:
        raise BadParameter(f"Unsupported EC curve {quote(curve)}; supported: {_listed(EC_CURVES)}.")
    x, y, private_value = _jwk_int(jwk, "x"), _jwk_int(jwk, "y"), _jwk_int(jwk, "d")
    # Deriving the point from d, rather than trusting x and y, proves they belong together
    # and that the point is on the curve.
    try:
        key = ec.derive_private_key(private_value, CURVES[curve])
    except ValueError:
        raise BadParameter(f"The EC JWK d is not a valid {curve} private key.") from None
    derived = key.public_key().public_numbers()
    if (derived.x, derived.y) != (x, y):
        raise BadParameter("The EC JWK d does not match its x and y.")
    return Material("EC", key)


_PEM_LABEL = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")


def import_pem(data: bytes, password: bytes | None = None) -> Material:
    """Load an RSA or EC private key from PEM (PKCS#1, SEC1 or PKCS#8, optionally encrypted)."""
    try:
        key = serialization.load_pem_private_key(data, password)
    except TypeError:
        # cryptography signals a password/encryption mismatch with TypeError.
        if password is None:
            raise BadParameter("The private key is encrypted; a password is required.") from None
        raise BadParameter("A password was given but the private key is not encrypted.") from None
    except UnsupportedAlgorithm:
        raise BadParameter("The PEM key or its encryption is not supported.") from None
    except ValueError:
        labels = [label.decode() for label in _PEM_LABEL.findall(data)]
        if labels and not any(label.endswith("PRIVATE KEY") for label in labels):
            found = ", ".join(dict.fromkeys(labels))
            raise BadParameter(
                f"The PEM data must contain a private key; it holds {found}."
            ) from None
        if password is not None and b"ENCRYPTED" in data:
            raise BadParameter("The password does not decrypt the private key.") from None
        raise BadParameter("The PEM data is not a readable private key.") from None
    return _checked_material(key)


def _checked_material(key: object) -> Material:
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size not in RSA_SIZES:
            raise BadParameter(
                f"Unsupported RSA key size {key.key_size}; supported: {_listed(RSA_SIZES)}."
            )
        return Material("RSA", key)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name not in _CURVE_BY_OPENSSL_NAME:
            raise BadParameter(
                f"Unsupported EC curve {key.curve.name}; supported: {_listed(EC_CURVES)}."
            )
        return Material("EC", key)
    raise BadParameter("Only RSA and EC private keys are supported.")


def public_jwk(material: Material) -> dict[str, Any]:
    """The public half as a JWK; oct keys reveal only their type."""
    if material.kty == "RSA":
        rsa_numbers = material._rsa.public_key().public_numbers()
        return {
            "kty": "RSA",
            "n": b64url_encode(rsa_numbers.n.to_bytes((material._rsa.key_size + 7) // 8)),
            "e": b64url_encode(rsa_numbers.e.to_bytes((rsa_numbers.e.bit_length() + 7) // 8)),
        }
    if material.kty == "EC":
        curve = _CURVE_BY_OPENSSL_NAME[material._ec.curve.name]
        length = COORDINATE_BYTES[curve]
        ec_numbers = material._ec.public_key().public_numbers()
        return {
            "kty": "EC",
            "crv": curve,
            "x": b64url_encode(ec_numbers.x.to_bytes(length)),
            "y": b64url_encode(ec_numbers.y.to_bytes(length)),
        }
    return {"kty": "oct"}


def private_bytes(material: Material) -> bytes:
    """The storage form: unencrypted PKCS#8 DER for RSA and EC, the raw key for oct."""
    if material.kty == "oct":
        return material._oct
    asymmetric = cast(rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, material.key)
    return asymmetric.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_bytes(kty: str, data: bytes) -> Material:
    """Load what `private_bytes` produced."""
    if kty == "oct":
        if len(data) * 8 not in OCT_SIZES:
            raise BadParameter(f"Stored oct key has {len(data)} bytes; expected 16, 24 or 32.")
        return Material("oct", bytes(data))
    if kty not in KEY_TYPES:
        raise BadParameter(f"Unsupported key type {quote(kty)}.")
    try:
        # We generated or validated this key before storing it, and it comes back out of
        # authenticated encryption; re-validating an RSA key costs ~30 ms on every load.
        key = serialization.load_der_private_key(data, None, unsafe_skip_rsa_key_validation=True)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise BadParameter(f"Stored {kty} key material is not readable.") from None
    material = _checked_material(key)
    if material.kty != kty:
        raise BadParameter(f"Stored key material is {material.kty}, not {kty}.")
    return material


def check_spec_fields(kty: str, size: int | None, curve: str | None) -> None:
    if kty not in KEY_TYPES:
        raise BadParameter(f"Unsupported key type {quote(kty)}; supported: {', '.join(KEY_TYPES)}.")
    # bool is an int subclass: a JSON `true` must not read as a 1-bit key.
    if size is not None and type(size) is not int:
        raise BadParameter("The key size must be an integer number of bits.")
    if kty == "EC":
        if size is not None:
            raise BadParameter("EC keys take a curve, not a key size.")
        if curve is not None and curve not in EC_CURVES:
            raise BadParameter(
                f"Unsupported EC curve {quote(curve)}; supported: {_listed(EC_CURVES)}."
            )
        return
    if curve is not None:
        raise BadParameter(f"{kty} keys take a key size, not a curve.")
    sizes = RSA_SIZES if kty == "RSA" else OCT_SIZES
    if size is not None and size not in sizes:
        raise BadParameter(f"Unsupported {kty} key size {size}; supported: {_listed(sizes)}.")


# --- Base64url ----------------------------------------------------------------------------

_BASE64 = re.compile(r"[A-Za-z0-9_+/-]*={0,2}")


def b64url_encode(data: bytes) -> str:
    """Base64url without padding, as JWK and the Azure wire format use."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding; the standard alphabet is accepted too."""
    # People paste standard base64 from other tools, so '+' and '/' are accepted as well.
    if not isinstance(text, str) or not _BASE64.fullmatch(text):
        raise BadParameter("The value is not valid base64url.")
    unpadded = text.rstrip("=")
    if len(unpadded) % 4 == 1:
        raise BadParameter("The value is not valid base64url: its length is impossible.")
    # str.replace rather than str.translate: this runs on every request and is ~10x cheaper.
    standard = unpadded.replace("-", "+").replace("_", "/")
    try:
        return binascii.a2b_base64(standard + "=" * (-len(standard) % 4), strict_mode=True)
    except binascii.Error:
        raise BadParameter("The value is not valid base64url.") from None


def _jwk_bytes(jwk: Mapping[str, Any], name: str) -> bytes:
    value = jwk.get(name)
    if value is None:
        raise BadParameter(f"The {jwk.get('kty')} JWK is missing {name}.")
    if not isinstance(value, str) or not value:
        raise BadParameter(f"The JWK {name} must be a non-empty base64url string.")
    try:
        return b64url_decode(value)
    except BadParameter:
        raise BadParameter(f"The JWK {name} is not valid base64url.") from None


def _jwk_int(jwk: Mapping[str, Any], name: str) -> int:
    return int.from_bytes(_jwk_bytes(jwk, name))


def quote(value: object) -> str:
    """Echo a caller-supplied name in a message without letting it grow the message."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _listed(values: tuple[object, ...]) -> str:
    return ", ".join(str(value) for value in values)
