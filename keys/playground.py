"""The crypto playground's input and output: bytes typed as text, hex or base64, the digest a
signature algorithm signs, and one form per operation.

Forms only turn what the operator typed into bytes; the services do the operation and
refuse what does not fit (lengths, algorithms, the version's state), as they do for the
vault endpoint. Nothing here sees key material.
"""

import base64
import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from django import forms
from django.db.models import TextChoices

from vaults.forms import ServiceForm


class Encoding(TextChoices):
    TEXT = "text", "Text (UTF-8)"
    HEX = "hex", "Hex"
    BASE64 = "base64", "Base64 or base64url"


class Output(TextChoices):
    BASE64URL = "base64url", "Base64url"
    BASE64 = "base64", "Base64"
    HEX = "hex", "Hex"


class InputKind(TextChoices):
    MESSAGE = "message", "Message (hashed here)"
    DIGEST = "digest", "Digest (already hashed)"


_WHITESPACE = re.compile(r"\s+")
_HEX_SEPARATORS = re.compile(r"[\s:]+")
_HEX = re.compile(r"[0-9a-fA-F]*")
# Either alphabet (base64url is what the vault endpoint and this page print), padding optional.
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]*={0,2}")


def decode(typed: str, encoding: str) -> bytes:
    """The bytes `typed` stands for; ValidationError saying what is wrong with it."""
    if encoding == Encoding.TEXT:
        # Browsers send a textarea's line breaks as CRLF; the operator typed plain LF.
        return typed.replace("\r\n", "\n").encode()
    if encoding == Encoding.HEX:
        digits = _HEX_SEPARATORS.sub("", typed).removeprefix("0x")
        if not _HEX.fullmatch(digits):
            raise forms.ValidationError("Not valid hex: use the digits 0-9 and a-f.")
        if len(digits) % 2:
            raise forms.ValidationError(
                f"Hex needs an even number of digits; this has {len(digits)}."
            )
        return bytes.fromhex(digits)
    compact = _WHITESPACE.sub("", typed)
    unpadded = compact.rstrip("=")
    if not _BASE64.fullmatch(compact) or len(unpadded) % 4 == 1:
        raise forms.ValidationError(
            "Not valid base64: use A-Z, a-z, 0-9 and + / (or - _), with optional = padding."
        )
    standard = unpadded.replace("-", "+").replace("_", "/")
    return base64.b64decode(standard + "=" * (-len(standard) % 4))


def encode(data: bytes, output: str) -> str:
    if output == Output.HEX:
        return data.hex()
    if output == Output.BASE64:
        return base64.b64encode(data).decode()
    # As the vault endpoint writes bytes: base64url without padding.
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def as_text(data: bytes) -> str | None:
    """`data` as text when it is UTF-8 without control characters other than line breaks
    and tabs, which would not show."""
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return None
    if any(ord(char) < 32 and char not in "\n\r\t" for char in text):
        return None
    return text


# The hash each signature algorithm signs a digest of (RFC 7518, and ES256K from RFC 8812).
_SIGNATURE_HASHES = {
    **{f"{family}{bits}": f"sha{bits}" for family in ("RS", "PS", "ES") for bits in (256, 384)},
    **{f"{family}512": "sha512" for family in ("RS", "PS", "ES")},
    "ES256K": "sha256",
}


@dataclass(frozen=True)
class Digest:
    hash_name: str  # as operators know it: SHA-256
    value: bytes


def message_digest(algorithm: str, message: bytes) -> Digest:
    """The digest `algorithm` signs for `message`."""
    name = _SIGNATURE_HASHES[algorithm]
    return Digest(f"SHA-{name[3:]}", hashlib.new(name, message).digest())


# --- forms ----------------------------------------------------------------------------------


def _bytes_field(
    label: str, *, required: bool = True, help_text: str = "", short: bool = False
) -> forms.CharField:
    attrs = {"spellcheck": "false", "autocomplete": "off"}
    widget = forms.TextInput(attrs=attrs) if short else forms.Textarea(attrs={"rows": 3, **attrs})
    return forms.CharField(
        label=label,
        required=required,
        # Spaces and line breaks of a text input are part of the bytes.
        strip=False,
        help_text=help_text,
        widget=widget,
    )


def _encoding_field(label: str, initial: str, *, text: bool = True) -> forms.ChoiceField:
    choices = Encoding.choices if text else [(Encoding.HEX, "Hex"), (Encoding.BASE64, "Base64")]
    return forms.ChoiceField(label=f"{label} encoding", choices=choices, initial=initial)


@dataclass(frozen=True)
class Row:
    """A field as the page lays it out: a typed input with its encoding beside it."""

    field: forms.BoundField
    encoding: forms.BoundField | None


PREFERRED_RSA = "RSA-OAEP-256"


class OperationForm(ServiceForm):
    """What one operation needs. Each name in `inputs` is typed in the encoding chosen in
    `<name>_as`, and is bytes (or None when left empty) once cleaned. The inputs named in
    `symmetric` are AES parameters (iv, tag, aad), asked only of oct keys."""

    inputs: ClassVar[tuple[str, ...]] = ()
    symmetric: ClassVar[tuple[str, ...]] = ()
    algorithm = forms.ChoiceField()
    output = forms.ChoiceField(
        label="Show results as", choices=Output.choices, initial=Output.BASE64URL
    )

    def __init__(self, *args: Any, kty: str, algorithms: Sequence[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["algorithm"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [(name, name) for name in algorithms]
        if PREFERRED_RSA in algorithms:
            # Listed first by name, RSA1_5 is the legacy padding; OAEP is the one to pick.
            field.initial = PREFERRED_RSA
        if kty != "oct":
            for name in self.symmetric:
                del self.fields[name], self.fields[f"{name}_as"]
        middle = [name for name in self.fields if name not in ("algorithm", "output")]
        self.order_fields(["algorithm", *middle, "output"])

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for name in self.inputs:
            typed, encoding = cleaned.get(name), cleaned.get(f"{name}_as")
            if name not in self.fields or typed is None or encoding is None:
                continue
            if typed == "":
                cleaned[name] = None
                continue
            try:
                cleaned[name] = decode(typed, encoding)
            except forms.ValidationError as error:
                self.add_error(name, error)
        return cleaned

    def rows(self) -> list[Row]:
        return [
            Row(field, self[f"{field.name}_as"] if field.name in self.inputs else None)
            for field in self.visible_fields()
            if not field.name.endswith("_as")
        ]


_CBC_IV_BYTES = 16


class EncryptForm(OperationForm):
    inputs = ("plaintext", "iv", "aad")
    symmetric = ("iv", "aad")
    plaintext = _bytes_field("Plaintext")
    plaintext_as = _encoding_field("Plaintext", Encoding.TEXT)
    iv = _bytes_field(
        "IV",
        required=False,
        short=True,
        help_text="AES-CBC only: 16 bytes, or leave empty for a random one. AES-GCM makes its own.",
    )
    iv_as = _encoding_field("IV", Encoding.HEX, text=False)
    aad = _bytes_field(
        "AAD (additional authenticated data)",
        required=False,
        short=True,
        help_text="AES-GCM only; optional.",
    )
    aad_as = _encoding_field("AAD", Encoding.TEXT)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if "iv" in self.fields and "CBC" in cleaned.get("algorithm", "") and not cleaned.get("iv"):
            # Azure leaves CBC's IV to the client; a fresh random one is what anyone should use.
            cleaned["iv"] = secrets.token_bytes(_CBC_IV_BYTES)
        return cleaned


class DecryptForm(OperationForm):
    inputs = ("ciphertext", "iv", "tag", "aad")
    symmetric = ("iv", "tag", "aad")
    ciphertext = _bytes_field("Ciphertext")
    ciphertext_as = _encoding_field("Ciphertext", Encoding.BASE64, text=False)
    iv = _bytes_field(
        "IV", required=False, short=True, help_text="AES-GCM and AES-CBC: the IV of encryption."
    )
    iv_as = _encoding_field("IV", Encoding.BASE64, text=False)
    tag = _bytes_field("Authentication tag", required=False, short=True, help_text="AES-GCM only.")
    tag_as = _encoding_field("Tag", Encoding.BASE64, text=False)
    aad = _bytes_field(
        "AAD (additional authenticated data)",
        required=False,
        short=True,
        help_text="AES-GCM only: what was given to encryption, if anything.",
    )
    aad_as = _encoding_field("AAD", Encoding.TEXT)


class SignForm(OperationForm):
    inputs: ClassVar[tuple[str, ...]] = ("message",)
    message_kind = forms.ChoiceField(
        label="Input is",
        choices=InputKind.choices,
        initial=InputKind.MESSAGE,
        widget=forms.RadioSelect,
    )
    message = _bytes_field(
        "Message or digest",
        help_text="A message is hashed here with the algorithm's hash (SHA-256, SHA-384 or "
        "SHA-512); a digest is sent as it is.",
    )
    message_as = _encoding_field("Input", Encoding.TEXT)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        message, algorithm = cleaned.get("message"), cleaned.get("algorithm")
        if cleaned.get("message_kind") == InputKind.DIGEST:
            if cleaned.get("message_as") == Encoding.TEXT:
                self.add_error("message_as", "A digest is binary: paste it as hex or base64.")
            cleaned["digest"] = message
            cleaned["computed"] = None
        elif message is not None and algorithm:
            computed = message_digest(algorithm, message)
            cleaned["digest"] = computed.value
            cleaned["computed"] = computed
        return cleaned


class VerifyForm(SignForm):
    inputs = ("message", "signature")
    signature = _bytes_field("Signature")
    signature_as = _encoding_field("Signature", Encoding.BASE64, text=False)


class WrapForm(OperationForm):
    inputs = ("key",)
    key = _bytes_field(
        "Key to wrap", help_text="AES key wrap takes at least 16 bytes, in multiples of 8."
    )
    key_as = _encoding_field("Key", Encoding.HEX)


class UnwrapForm(OperationForm):
    inputs = ("encrypted_key",)
    encrypted_key = _bytes_field("Wrapped key")
    encrypted_key_as = _encoding_field("Wrapped key", Encoding.BASE64, text=False)
