"""What the faces are given of application credentials, and how client secrets are hashed.

Kept beside the credential models, free of `vaults` and `keys`, so that the Graph shapes here
and every layer above can use them.
"""

import hashlib
from dataclasses import dataclass, field

from .models import Application, CertificateCredential, ClientSecret


@dataclass(frozen=True)
class IssuedSecret:
    """A new client secret: its stored record and, this one time only, its value."""

    credential: ClientSecret
    value: str = field(repr=False)


@dataclass(frozen=True)
class ApplicationCredentials:
    """An application's credentials, loaded without salts or hashes."""

    application: Application
    secrets: list[ClientSecret]
    certificates: list[CertificateCredential]


def secret_hash(salt: str, secret: str) -> str:
    """Salted SHA-256 of a client secret, in hex.

    Not PBKDF2 or another slow hash: key stretching only makes low-entropy passwords costly
    to guess, and these secrets are ~240-bit random values that no amount of guessing finds.
    The token endpoint checks a secret on every token request, where a deliberately slow
    hash would cost real time per call. The salt keeps equal secrets from hashing alike.
    """
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode("utf-8")).hexdigest()
