"""Private key material as it could show up where it must never be: in stored columns, in
responses, in pages.

`MaterialWatch` remembers the private values of every key the process seals while a test
runs, and `scan()` fails a body that holds any run of 31 characters of them (raw, hex,
base64 or base64url), a PEM private key, or a JWK's private members.
"""

import base64
import re

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from keys.crypto import Material


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def secret_parts(material: Material) -> list[bytes]:
    """The private values of a key, as the fixed-width big-endian bytes they are stored as."""
    key = material.key
    if isinstance(key, bytes):
        return [key]
    if isinstance(key, rsa.RSAPrivateKey):
        numbers = key.private_numbers()
        half = key.key_size // 16
        return [
            numbers.d.to_bytes(key.key_size // 8),
            numbers.p.to_bytes(half),
            numbers.q.to_bytes(half),
            numbers.dmp1.to_bytes(half),
            numbers.dmq1.to_bytes(half),
        ]
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return [key.private_numbers().private_value.to_bytes((key.curve.key_size + 7) // 8)]


def encodings(secret: bytes) -> list[bytes]:
    """Ways a secret could show up in a column; 24-character windows catch partial copies."""
    forms = [secret, secret.hex().encode(), base64.b64encode(secret), b64url(secret).encode()]
    return [form[:24] for form in forms] + [form[-24:] for form in forms]


WINDOW = 24
# Every `STRIDE`-th window of each encoding is remembered: any copied run of at least
# WINDOW + STRIDE - 1 characters holds one of them whole.
STRIDE = 8


def windows(secret: bytes) -> set[bytes]:
    forms = [secret, secret.hex().encode(), base64.b64encode(secret), b64url(secret).encode()]
    return {
        form[start : start + WINDOW]
        for form in forms
        for start in range(0, len(form) - WINDOW + 1, STRIDE)
    }


_PRIVATE_MARKERS = re.compile(
    rb"PRIVATE KEY-----|\"(?:d|p|q|dp|dq|qi|k)\"\s*:\s*\"[A-Za-z0-9_\-]{8,}"
)


class MaterialWatch:
    def __init__(self) -> None:
        self.forms: set[bytes] = set()
        # What scanning found in responses served where an assertion could not fail a test.
        self.leaks: list[str] = []

    def remember(self, material: Material) -> None:
        for secret in secret_parts(material):
            self.forms.update(windows(secret))

    def scan(self, body: bytes, where: str) -> None:
        marker = _PRIVATE_MARKERS.search(body)
        assert marker is None, f"{where} holds private key material ({marker.group(0)[:20]!r})"
        # Each window of the body looked up once, however many keys the test made.
        forms = self.forms
        leaked = forms and any(
            body[start : start + WINDOW] in forms for start in range(len(body) - WINDOW + 1)
        )
        assert not leaked, f"{where} holds a key's private material"
