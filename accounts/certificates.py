"""Reading the public certificates applications register as credentials.

It lives in `accounts` because certificates are identity credentials and `accounts` is the
lowest layer: every layer that reads them (the directory services, the token endpoint that
verifies client assertions) sits above it and may not reach into `keys`. STYLE keeps
`cryptography` to the crypto engine, but DESIGN's one-way layering wins over that; like the
engine, this module is pure (no Django).
Refusals raise `BadParameter` and never quote the input: a file uploaded by mistake may hold a
private key.
"""

import hashlib
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from kvconsole.errors import BadParameter

# Far more than any single certificate; refuses pasted archives and other junk early.
MAX_CERTIFICATE_BYTES = 64 * 1024
MIN_RSA_BITS = 2048
EC_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
SUBJECT_MAX_LENGTH = 500


@dataclass(frozen=True)
class CertificateFacts:
    """What is kept of an uploaded certificate: the certificate itself (public) and the
    facts the token endpoint and the faces look up or show."""

    pem: str
    thumbprint_sha1: str
    thumbprint_sha256: str
    subject: str
    not_before: datetime
    not_after: datetime


def read_certificate(data: bytes) -> CertificateFacts:
    """The one X.509 certificate in `data` (PEM or DER), re-serialised as PEM."""
    if not isinstance(data, bytes) or not data.strip():
        raise BadParameter("Upload an X.509 certificate (PEM or DER); the input was empty.")
    if len(data) > MAX_CERTIFICATE_BYTES:
        raise BadParameter(
            f"The certificate is larger than {MAX_CERTIFICATE_BYTES // 1024} KiB; upload only "
            "the application's public certificate."
        )
    if b"PRIVATE KEY" in data:
        raise BadParameter(
            "The upload contains a private key. Upload only the public certificate; the private "
            "key stays with the application, which uses it to sign its client assertions."
        )
    certificate = _parse(data)
    _check_public_key(certificate)
    der = certificate.public_bytes(serialization.Encoding.DER)
    return CertificateFacts(
        pem=certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        thumbprint_sha1=hashlib.sha1(der, usedforsecurity=False).hexdigest().upper(),
        thumbprint_sha256=hashlib.sha256(der).hexdigest().upper(),
        # The subject is for people to recognise the certificate; the thumbprints identify it.
        subject=certificate.subject.rfc4514_string()[:SUBJECT_MAX_LENGTH],
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
    )


def _parse(data: bytes) -> x509.Certificate:
    if b"-----BEGIN" in data:
        try:
            certificates = x509.load_pem_x509_certificates(data)
        except ValueError:
            raise BadParameter("The upload is not a readable PEM X.509 certificate.") from None
        if len(certificates) != 1:
            # A chain is ambiguous: which of its certificates would the application sign with?
            raise BadParameter(
                f"The upload holds {len(certificates)} certificates; upload only the "
                "application's own certificate."
            )
        return certificates[0]
    try:
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise BadParameter(
            "The upload is neither a PEM nor a DER X.509 certificate. A .pfx or .p12 file also "
            "holds the private key: export only the certificate."
        ) from None


def _check_public_key(certificate: x509.Certificate) -> None:
    try:
        public_key = certificate.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise BadParameter("The certificate's public key type is not supported.") from None
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < MIN_RSA_BITS:
            raise BadParameter(
                f"The certificate's RSA key has {public_key.key_size} bits; at least "
                f"{MIN_RSA_BITS} are required."
            )
        return
    if isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(
        public_key.curve, EC_CURVES
    ):
        return
    raise BadParameter(
        "The certificate's key must be RSA (2048 bits or more) or EC on P-256, P-384 or P-521."
    )
