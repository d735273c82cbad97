"""Key material and the Azure Key Vault key algorithms, as pure functions over `cryptography`.

No Django here: the service layer loads a `Material`, calls one function and stores or returns
bytes. Every bad input raises `BadParameter` with a message that names algorithms, key types and
lengths but never key material, plaintext, ciphertext, digests or signatures.
"""

import base64
import binascii
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, cast

from cryptography.exceptions import InvalidSignature, InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, keywrap, serialization
from cryptography.hazmat.primitives import padding as block_padding
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.asymmetric.padding import AsymmetricPadding
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from cryptography.hazmat.primitives.ciphers import algorithms as ciphers
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kvconsole.errors import BadParameter

RSA_SIZES = (2048, 3072, 4096)
EC_CURVES = ("P-256", "P-256K", "P-384", "P-521")
OCT_SIZES = (128, 192, 256)
KEY_TYPES = ("RSA", "EC", "oct")

_DEFAULT_RSA_SIZE = 2048
_DEFAULT_CURVE = "P-256"
_DEFAULT_OCT_SIZE = 256
_RSA_PUBLIC_EXPONENT = 65537

_CURVES: dict[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(),
    "P-256K": ec.SECP256K1(),
    "P-384": ec.SECP384R1(),
    "P-521": ec.SECP521R1(),
}
_CURVE_BY_OPENSSL_NAME = {curve.name: name for name, curve in _CURVES.items()}
_COORDINATE_BYTES = {"P-256": 32, "P-256K": 32, "P-384": 48, "P-521": 66}

_KEY_CLASSES: dict[str, type] = {
    "RSA": rsa.RSAPrivateKey,
    "EC": ec.EllipticCurvePrivateKey,
    "oct": bytes,
}

_GCM_IV_BYTES = 12
_GCM_TAG_BYTES = 16
_AES_BLOCK_BYTES = 16
# RFC 3394 wraps whole 64-bit blocks, and at least two of them.
_KEY_WRAP_MIN_BYTES = 16
_KEY_WRAP_BLOCK_BYTES = 8


class _RsaEncryption(NamedTuple):
    padding: AsymmetricPadding
    overhead: int  # bytes of the modulus the padding consumes


class _RsaSignature(NamedTuple):
    digest_bytes: int
    padding: AsymmetricPadding
    prehashed: utils.Prehashed


class _EcSignature(NamedTuple):
    digest_bytes: int
    curve: str
    openssl_curve: str
    ecdsa: ec.ECDSA
    coordinate_bytes: int


def _oaep(hash_algorithm: hashes.HashAlgorithm) -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(hash_algorithm), algorithm=hash_algorithm, label=None)


# Built once at import: sign/encrypt only look up ready-made padding and hash objects, which
# keeps a call's overhead negligible next to the private-key operation itself.
_RSA_ENCRYPTIONS = {
    "RSA1_5": _RsaEncryption(padding.PKCS1v15(), 11),
    "RSA-OAEP": _RsaEncryption(_oaep(hashes.SHA1()), 2 * 20 + 2),  # noqa: S303 - Azure's RSA-OAEP
    "RSA-OAEP-256": _RsaEncryption(_oaep(hashes.SHA256()), 2 * 32 + 2),
}
_SIGNATURE_HASHES: dict[str, hashes.HashAlgorithm] = {
    "256": hashes.SHA256(),
    "384": hashes.SHA384(),
    "512": hashes.SHA512(),
}
_RSA_SIGNATURES = {
    f"{family}{bits}": _RsaSignature(
        digest.digest_size,
        padding.PKCS1v15()
        if family == "RS"
        # Salt as long as the digest: what Azure signs with and its SDK verifies locally.
        else padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size),
        utils.Prehashed(digest),
    )
    for family in ("RS", "PS")
    for bits, digest in _SIGNATURE_HASHES.items()
}
_EC_SIGNATURES = {
    algorithm: _EcSignature(
        digest.digest_size,
        curve,
        _CURVES[curve].name,
        ec.ECDSA(utils.Prehashed(digest)),
        _COORDINATE_BYTES[curve],
    )
    for algorithm, curve, digest in (
        ("ES256", "P-256", hashes.SHA256()),
        ("ES256K", "P-256K", hashes.SHA256()),
        ("ES384", "P-384", hashes.SHA384()),
        ("ES512", "P-521", hashes.SHA512()),
    )
}
_EC_ALGORITHM_BY_CURVE = {scheme.curve: name for name, scheme in _EC_SIGNATURES.items()}
_AES_GCM = {f"A{bits}GCM": bits // 8 for bits in OCT_SIZES}
# Value: (key bytes, whether PKCS#7 padding is applied).
_AES_CBC = {
    f"A{bits}CBC{suffix}": (bits // 8, suffix == "PAD")
    for bits in OCT_SIZES
    for suffix in ("", "PAD")
}
_AES_KW = {f"A{bits}KW": bits // 8 for bits in OCT_SIZES}
_KNOWN_ALGORITHMS = frozenset(
    [*_RSA_ENCRYPTIONS, *_RSA_SIGNATURES, *_EC_SIGNATURES, *_AES_GCM, *_AES_CBC, *_AES_KW]
)
_OPERATION_FAMILIES = {
    "encrypt": "encrypt",
    "decrypt": "encrypt",
    "wrapKey": "wrapKey",
    "unwrapKey": "wrapKey",
    "sign": "sign",
    "verify": "sign",
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
        _check_spec_fields(kty, size, curve)
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
        raise BadParameter(f"Key material does not match key type {_quote(self.kty)}.")

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


@dataclass(frozen=True)
class EncryptResult:
    ciphertext: bytes
    iv: bytes | None = None
    tag: bytes | None = None


# --- Creating, importing and storing keys -------------------------------------------------


def generate(spec: KeySpec) -> Material:
    """Fresh key material for the spec (RSA with e=65537)."""
    spec = KeySpec.parse(spec.kty, spec.size, spec.curve)
    if spec.kty == "RSA":
        return Material("RSA", rsa.generate_private_key(_RSA_PUBLIC_EXPONENT, cast(int, spec.size)))
    if spec.kty == "EC":
        return Material("EC", ec.generate_private_key(_CURVES[cast(str, spec.curve)]))
    return Material("oct", os.urandom(cast(int, spec.size) // 8))


def import_jwk(jwk: Mapping[str, Any]) -> Material:
    """Load a JSON Web Key that carries its private parts."""
    if not isinstance(jwk, Mapping):
        raise BadParameter("The key must be a JSON Web Key object.")
    kty = jwk.get("kty")
    if isinstance(kty, str) and kty.endswith("-HSM"):
        raise BadParameter(f"Hardware-protected key type {_quote(kty)} cannot be imported here.")
    if not isinstance(kty, str) or kty not in KEY_TYPES:
        raise BadParameter(f"Unsupported JWK kty {_quote(kty)}; supported: {', '.join(KEY_TYPES)}.")
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
        raise BadParameter(
            f"Unsupported EC curve {_quote(curve)}; supported: {_listed(EC_CURVES)}."
        )
    x, y, private_value = _jwk_int(jwk, "x"), _jwk_int(jwk, "y"), _jwk_int(jwk, "d")
    # Deriving the point from d, rather than trusting x and y, proves they belong together
    # and that the point is on the curve.
    try:
        key = ec.derive_private_key(private_value, _CURVES[curve])
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
        length = _COORDINATE_BYTES[curve]
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
        raise BadParameter(f"Unsupported key type {_quote(kty)}.")
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


# --- Which algorithms fit which key -------------------------------------------------------


def algorithms(
    kty: str, operation: str, *, size: int | None = None, curve: str | None = None
) -> tuple[str, ...]:
    """The algorithms that fit a key for an operation; a missing size or curve means any."""
    family = _OPERATION_FAMILIES.get(operation)
    if family is None:
        raise BadParameter(f"Unknown key operation {_quote(operation)}.")
    _check_spec_fields(kty, size, curve)
    if kty == "RSA":
        return tuple(_RSA_SIGNATURES if family == "sign" else _RSA_ENCRYPTIONS)
    if kty == "EC":
        if family != "sign":
            return ()
        return (_EC_ALGORITHM_BY_CURVE[curve],) if curve else tuple(_EC_SIGNATURES)
    if family == "sign":
        return ()
    # No size means the caller does not know it yet, so every size's algorithms are offered.
    key_bytes = None if size is None else size // 8
    if family == "wrapKey":
        return tuple(name for name, fit in _AES_KW.items() if key_bytes in (None, fit))
    return tuple(
        name
        for name, fit in [*_AES_GCM.items(), *((name, fit) for name, (fit, _) in _AES_CBC.items())]
        if key_bytes in (None, fit)
    )


def _check_spec_fields(kty: str, size: int | None, curve: str | None) -> None:
    if kty not in KEY_TYPES:
        raise BadParameter(
            f"Unsupported key type {_quote(kty)}; supported: {', '.join(KEY_TYPES)}."
        )
    # bool is an int subclass: a JSON `true` must not read as a 1-bit key.
    if size is not None and type(size) is not int:
        raise BadParameter("The key size must be an integer number of bits.")
    if kty == "EC":
        if size is not None:
            raise BadParameter("EC keys take a curve, not a key size.")
        if curve is not None and curve not in EC_CURVES:
            raise BadParameter(
                f"Unsupported EC curve {_quote(curve)}; supported: {_listed(EC_CURVES)}."
            )
        return
    if curve is not None:
        raise BadParameter(f"{kty} keys take a key size, not a curve.")
    sizes = RSA_SIZES if kty == "RSA" else OCT_SIZES
    if size is not None and size not in sizes:
        raise BadParameter(f"Unsupported {kty} key size {size}; supported: {_listed(sizes)}.")


# --- Operations ---------------------------------------------------------------------------


def encrypt(
    material: Material,
    algorithm: str,
    plaintext: bytes,
    *,
    iv: bytes | None = None,
    aad: bytes | None = None,
) -> EncryptResult:
    """Encrypt with RSA (public key), AES-GCM (fresh IV) or AES-CBC (client IV)."""
    if material.kty == "RSA" and algorithm in _RSA_ENCRYPTIONS:
        _refuse_extras(algorithm, iv=iv, aad=aad)
        return EncryptResult(_rsa_encrypt(material, algorithm, plaintext, "Plaintext"))
    if material.kty == "oct" and algorithm in _AES_GCM:
        key = _aes_key(material, algorithm, _AES_GCM[algorithm])
        if iv is not None:
            # A reused GCM nonce leaks the authentication key, so only we choose it.
            raise BadParameter(f"{algorithm} generates its own iv; do not send one.")
        nonce = os.urandom(_GCM_IV_BYTES)
        sealed = AESGCM(key).encrypt(nonce, plaintext, aad)
        return EncryptResult(sealed[:-_GCM_TAG_BYTES], nonce, sealed[-_GCM_TAG_BYTES:])
    if material.kty == "oct" and algorithm in _AES_CBC:
        key_bytes, padded = _AES_CBC[algorithm]
        key = _aes_key(material, algorithm, key_bytes)
        _refuse_extras(algorithm, aad=aad)
        cbc_iv = _cbc_iv(algorithm, iv)
        if padded:
            padder = block_padding.PKCS7(_AES_BLOCK_BYTES * 8).padder()
            plaintext = padder.update(plaintext) + padder.finalize()
        elif len(plaintext) % _AES_BLOCK_BYTES:
            raise BadParameter(
                f"{algorithm} needs a plaintext that is a multiple of 16 bytes; got "
                f"{len(plaintext)} bytes (use {algorithm}PAD for padding)."
            )
        encryptor = Cipher(ciphers.AES(key), modes.CBC(cbc_iv)).encryptor()
        return EncryptResult(encryptor.update(plaintext) + encryptor.finalize(), cbc_iv)
    raise _unfit(material, "encrypt", algorithm)


def decrypt(
    material: Material,
    algorithm: str,
    ciphertext: bytes,
    *,
    iv: bytes | None = None,
    tag: bytes | None = None,
    aad: bytes | None = None,
) -> bytes:
    """Reverse `encrypt`; a ciphertext that does not authenticate or unpad is BadParameter."""
    if material.kty == "RSA" and algorithm in _RSA_ENCRYPTIONS:
        _refuse_extras(algorithm, iv=iv, tag=tag, aad=aad)
        return _rsa_decrypt(material, algorithm, ciphertext)
    if material.kty == "oct" and algorithm in _AES_GCM:
        key = _aes_key(material, algorithm, _AES_GCM[algorithm])
        _check_length(algorithm, "iv", iv, _GCM_IV_BYTES)
        _check_length(algorithm, "tag", tag, _GCM_TAG_BYTES)
        try:
            return AESGCM(key).decrypt(cast(bytes, iv), ciphertext + cast(bytes, tag), aad)
        except InvalidTag:
            raise BadParameter(
                f"{algorithm} decryption failed: the ciphertext, iv, tag and aad do not "
                "authenticate under this key."
            ) from None
    if material.kty == "oct" and algorithm in _AES_CBC:
        key_bytes, padded = _AES_CBC[algorithm]
        key = _aes_key(material, algorithm, key_bytes)
        _refuse_extras(algorithm, tag=tag, aad=aad)
        cbc_iv = _cbc_iv(algorithm, iv)
        if len(ciphertext) % _AES_BLOCK_BYTES or (padded and not ciphertext):
            raise BadParameter(
                f"{algorithm} ciphertext must be a non-empty multiple of 16 bytes; "
                f"got {len(ciphertext)} bytes."
            )
        decryptor = Cipher(ciphers.AES(key), modes.CBC(cbc_iv)).decryptor()
        plaintext = decryptor.update(ciphertext) + decryptor.finalize()
        if not padded:
            return plaintext
        unpadder = block_padding.PKCS7(_AES_BLOCK_BYTES * 8).unpadder()
        try:
            return unpadder.update(plaintext) + unpadder.finalize()
        except ValueError:
            raise BadParameter(f"{algorithm} decryption failed: invalid padding.") from None
    raise _unfit(material, "decrypt", algorithm)


def sign(material: Material, algorithm: str, digest: bytes) -> bytes:
    """Sign a digest the client already hashed; ES* signatures are raw r||s."""
    scheme = _signature_scheme(material, "sign", algorithm, digest)
    if type(scheme) is _RsaSignature:
        return material._rsa.sign(digest, scheme.padding, scheme.prehashed)
    ec_scheme = cast(_EcSignature, scheme)
    # JOSE wants fixed-width r||s instead of DER, so clients can split it without parsing.
    der = material._ec.sign(digest, ec_scheme.ecdsa)
    r, s = utils.decode_dss_signature(der)
    return r.to_bytes(ec_scheme.coordinate_bytes) + s.to_bytes(ec_scheme.coordinate_bytes)


def verify(material: Material, algorithm: str, digest: bytes, signature: bytes) -> bool:
    """Whether the signature over the digest is valid; a malformed signature is just invalid."""
    scheme = _signature_scheme(material, "verify", algorithm, digest)
    try:
        if type(scheme) is _RsaSignature:
            material._rsa.public_key().verify(signature, digest, scheme.padding, scheme.prehashed)
            return True
        ec_scheme = cast(_EcSignature, scheme)
        half = ec_scheme.coordinate_bytes
        if len(signature) != 2 * half:
            return False
        der = utils.encode_dss_signature(
            int.from_bytes(signature[:half]), int.from_bytes(signature[half:])
        )
        material._ec.public_key().verify(der, digest, ec_scheme.ecdsa)
        return True
    except InvalidSignature:
        # A forged or corrupted signature is an answer (false), not a bad request.
        return False


def wrap_key(material: Material, algorithm: str, key: bytes) -> bytes:
    """Wrap a key with RSA (public key) or AES key wrap (RFC 3394)."""
    if material.kty == "RSA" and algorithm in _RSA_ENCRYPTIONS:
        return _rsa_encrypt(material, algorithm, key, "Key")
    if material.kty == "oct" and algorithm in _AES_KW:
        wrapping_key = _aes_key(material, algorithm, _AES_KW[algorithm])
        if len(key) < _KEY_WRAP_MIN_BYTES or len(key) % _KEY_WRAP_BLOCK_BYTES:
            raise BadParameter(
                f"{algorithm} wraps keys of at least 16 bytes in multiples of 8; "
                f"got {len(key)} bytes."
            )
        return keywrap.aes_key_wrap(wrapping_key, key)
    raise _unfit(material, "wrapKey", algorithm)


def unwrap_key(material: Material, algorithm: str, encrypted_key: bytes) -> bytes:
    """Reverse `wrap_key`; a wrapped key that does not authenticate is BadParameter."""
    if material.kty == "RSA" and algorithm in _RSA_ENCRYPTIONS:
        return _rsa_decrypt(material, algorithm, encrypted_key)
    if material.kty == "oct" and algorithm in _AES_KW:
        wrapping_key = _aes_key(material, algorithm, _AES_KW[algorithm])
        try:
            return keywrap.aes_key_unwrap(wrapping_key, encrypted_key)
        except (keywrap.InvalidUnwrap, ValueError):
            raise BadParameter(
                f"{algorithm} unwrap failed: the wrapped key ({len(encrypted_key)} bytes) "
                "does not authenticate under this key."
            ) from None
    raise _unfit(material, "unwrapKey", algorithm)


def _rsa_encrypt(material: Material, algorithm: str, plaintext: bytes, what: str) -> bytes:
    scheme = _RSA_ENCRYPTIONS[algorithm]
    key_size = material._rsa.key_size
    limit = (key_size + 7) // 8 - scheme.overhead
    # Checked here so the message states the limit; cryptography's error does not.
    if len(plaintext) > limit:
        raise BadParameter(
            f"{what} of {len(plaintext)} bytes is too long for {algorithm} with an RSA "
            f"{key_size}-bit key (at most {limit} bytes)."
        )
    return material._rsa.public_key().encrypt(plaintext, scheme.padding)


def _rsa_decrypt(material: Material, algorithm: str, ciphertext: bytes) -> bytes:
    key_size = material._rsa.key_size
    if len(ciphertext) != (key_size + 7) // 8:
        raise BadParameter(
            f"{algorithm} ciphertext for an RSA {key_size}-bit key must be "
            f"{(key_size + 7) // 8} bytes; got {len(ciphertext)} bytes."
        )
    # RSA1_5 never fails here: OpenSSL's implicit rejection returns random bytes for a bad
    # ciphertext, which is what keeps this endpoint from being a Bleichenbacher oracle.
    try:
        return material._rsa.decrypt(ciphertext, _RSA_ENCRYPTIONS[algorithm].padding)
    except ValueError:
        raise BadParameter(f"{algorithm} decryption failed.") from None


def _signature_scheme(
    material: Material, operation: str, algorithm: str, digest: bytes
) -> _RsaSignature | _EcSignature:
    scheme: _RsaSignature | _EcSignature | None
    if material.kty == "RSA":
        scheme = _RSA_SIGNATURES.get(algorithm)
    elif material.kty == "EC":
        scheme = _EC_SIGNATURES.get(algorithm)
        if scheme is not None and material._ec.curve.name != scheme.openssl_curve:
            scheme = None
    else:
        scheme = None
    if scheme is None:
        raise _unfit(material, operation, algorithm)
    if len(digest) != scheme.digest_bytes:
        raise BadParameter(
            f"{algorithm} needs a {scheme.digest_bytes}-byte digest; got {len(digest)} bytes."
        )
    return scheme


def _aes_key(material: Material, algorithm: str, key_bytes: int) -> bytes:
    key = material._oct
    if len(key) != key_bytes:
        raise BadParameter(
            f"{algorithm} needs a {key_bytes * 8}-bit oct key; this key is {len(key) * 8}-bit."
        )
    return key


def _cbc_iv(algorithm: str, iv: bytes | None) -> bytes:
    _check_length(algorithm, "iv", iv, _AES_BLOCK_BYTES)
    return cast(bytes, iv)


def _check_length(algorithm: str, name: str, value: bytes | None, expected: int) -> None:
    if value is None:
        raise BadParameter(f"{algorithm} needs a {expected}-byte {name}.")
    if len(value) != expected:
        raise BadParameter(f"{algorithm} needs a {expected}-byte {name}; got {len(value)} bytes.")


def _refuse_extras(algorithm: str, **extras: bytes | None) -> None:
    for name, value in extras.items():
        if value is not None:
            raise BadParameter(f"{algorithm} does not take {name}.")


def _unfit(material: Material, operation: str, algorithm: str) -> BadParameter:
    spec = material.spec
    fitting = algorithms(spec.kty, operation, size=spec.size, curve=spec.curve)
    if not fitting:
        return BadParameter(f"{operation} is not supported for {spec.describe()}.")
    problem = "Unknown algorithm" if algorithm not in _KNOWN_ALGORITHMS else "Algorithm"
    return BadParameter(
        f"{problem} {_quote(algorithm)} does not fit {spec.describe()} for {operation}; "
        f"use one of: {', '.join(fitting)}."
    )


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


def _quote(value: object) -> str:
    """Echo a caller-supplied name in a message without letting it grow the message."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _listed(values: tuple[object, ...]) -> str:
    return ", ".join(str(value) for value in values)
