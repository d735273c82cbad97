"""The Azure Key Vault key algorithms: encrypt, decrypt, sign, verify, wrap and unwrap."""

import os
from dataclasses import dataclass, field
from typing import NamedTuple, cast

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, keywrap
from cryptography.hazmat.primitives import padding as block_padding
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils
from cryptography.hazmat.primitives.asymmetric.padding import AsymmetricPadding
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from cryptography.hazmat.primitives.ciphers import algorithms as ciphers
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kvconsole.errors import BadParameter

from .material import (
    COORDINATE_BYTES,
    CURVES,
    OCT_SIZES,
    Material,
    check_spec_fields,
    quote,
)

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
        CURVES[curve].name,
        ec.ECDSA(utils.Prehashed(digest)),
        COORDINATE_BYTES[curve],
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
class EncryptResult:
    ciphertext: bytes = field(repr=False)
    iv: bytes | None = None
    tag: bytes | None = None


# --- Which algorithms fit which key -------------------------------------------------------


def algorithms(
    kty: str, operation: str, *, size: int | None = None, curve: str | None = None
) -> tuple[str, ...]:
    """The algorithms that fit a key for an operation; a missing size or curve means any."""
    family = _OPERATION_FAMILIES.get(operation)
    if family is None:
        raise BadParameter(f"Unknown key operation {quote(operation)}.")
    check_spec_fields(kty, size, curve)
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
        f"{problem} {quote(algorithm)} does not fit {spec.describe()} for {operation}; "
        f"use one of: {', '.join(fitting)}."
    )
