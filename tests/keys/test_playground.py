"""The crypto playground of a key version, with the console's personas.

Results are checked against `cryptography` called here with the version's public JWK
(signatures verified, ciphertexts made for the page to decrypt); what needs the private half
goes through the page, hence the service, only.
"""

import base64
import hashlib
import html
import re
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from django.test import Client
from django.utils import timezone

from keys import services as key_services
from keys.models import KeyVersion
from tests.conftest import Personas
from tests.console import htmx_get, htmx_post, is_fragment, text
from vaults.models import ActivityEntry, Face

pytestmark = pytest.mark.django_db


# --- helpers ----------------------------------------------------------------------------------


@pytest.fixture
def as_(client: Client, personas: Personas) -> Any:
    def sign_in(name: str) -> Client:
        client.force_login(personas.each()[name])
        return client

    return sign_in


@pytest.fixture
def rsa_key(make_key: Any, personas: Personas) -> KeyVersion:
    return make_key("rsa-key", kty="RSA", size=2048)


@pytest.fixture
def ec_key(make_key: Any, personas: Personas) -> KeyVersion:
    return make_key("ec-key", kty="EC", curve="P-256")


@pytest.fixture
def oct_key(make_key: Any, personas: Personas) -> KeyVersion:
    return make_key("oct-key", kty="oct", size=256)


def url(version: KeyVersion, name: str | None = None) -> str:
    key = version.key
    return (
        f"/vaults/{key.vault.name}/keys/{key.name}/versions/{name or version.version}/playground/"
    )


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


# The encoding each input is typed in unless a test says otherwise.
DEFAULT_ENCODINGS = {
    "plaintext": "text",
    "iv": "base64",
    "tag": "base64",
    "aad": "text",
    "ciphertext": "base64",
    "message": "text",
    "signature": "base64",
    "key": "hex",
    "encrypted_key": "base64",
}


def form_data(operation: str, fields: dict[str, str]) -> dict[str, str]:
    """One operation's form as a browser sends it."""
    fields = dict(fields)
    data = {
        "operation": operation,
        f"{operation}-algorithm": fields.pop("algorithm"),
        f"{operation}-output": fields.pop("output", "base64url"),
    }
    if operation in ("sign", "verify"):
        data[f"{operation}-message_kind"] = fields.pop("message_kind", "message")
    # A browser sends every encoding selector, whether its input is filled in or not.
    for name, encoding in DEFAULT_ENCODINGS.items():
        data[f"{operation}-{name}_as"] = fields.pop(f"{name}_as", encoding)
    data.update({f"{operation}-{name}": value for name, value in fields.items()})
    return data


def run(client: Client, version: KeyVersion, operation: str, **fields: str) -> Any:
    """Send one operation's form with htmx, as the page does."""
    return htmx_post(client, url(version), form_data(operation, fields))


def run_plain(client: Client, version: KeyVersion, operation: str, **fields: str) -> Any:
    """Send one operation's form without JavaScript."""
    return client.post(url(version), form_data(operation, fields))


def shown(response: Any, element_id: str) -> str:
    """A result value as the page shows it for copying."""
    found = re.search(rf'<code id="{element_id}">([^<]*)</code>', text(response))
    assert found, f"no {element_id} in the response"
    return html.unescape(found.group(1))


def offered(response: Any, operation: str) -> list[str]:
    """The algorithms an operation's form offers."""
    select = re.search(
        rf'<select name="{operation}-algorithm"[^>]*>(.*?)</select>', text(response), re.S
    )
    assert select, f"no {operation} form"
    return re.findall(r'<option value="([^"]+)"', select.group(1))


def rsa_public(version: KeyVersion) -> rsa.RSAPublicKey:
    jwk = version.public_jwk
    numbers = rsa.RSAPublicNumbers(
        int.from_bytes(unb64url(jwk["e"])), int.from_bytes(unb64url(jwk["n"]))
    )
    return numbers.public_key()


def ec_public(version: KeyVersion) -> ec.EllipticCurvePublicKey:
    jwk = version.public_jwk
    assert jwk["crv"] == "P-256"
    numbers = ec.EllipticCurvePublicNumbers(
        int.from_bytes(unb64url(jwk["x"])), int.from_bytes(unb64url(jwk["y"])), ec.SECP256R1()
    )
    return numbers.public_key()


def entries(operation: str) -> list[ActivityEntry]:
    return list(ActivityEntry.objects.filter(operation=operation).order_by("seq"))


# --- who sees what ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("persona", "status", "forms"),
    [
        ("owner", 200, True),
        ("crypto_user", 200, True),
        ("reader", 200, False),
        ("outsider", 404, False),
    ],
)
def test_the_page_by_persona(
    as_: Any, rsa_key: KeyVersion, persona: str, status: int, forms: bool
) -> None:
    response = as_(persona).get(url(rsa_key))
    assert response.status_code == status
    if status != 200:
        return
    page = text(response)
    assert rsa_key.version in page and "Crypto playground" in page
    assert ('name="operation" value="encrypt"' in page) is forms
    assert ('name="operation" value="decrypt"' in page) is forms
    if not forms:
        assert "Your access to this key does not include encrypt." in page
        assert "Your access to this key does not include decrypt." in page


def test_an_outsider_cannot_post_either(as_: Any, rsa_key: KeyVersion) -> None:
    response = run(as_("outsider"), rsa_key, "encrypt", algorithm="RSA-OAEP", plaintext="hi")
    assert response.status_code == 404
    assert not entries("KeyEncrypt")


def test_a_readers_forged_post_is_refused_by_the_service_and_recorded(
    as_: Any, personas: Personas, rsa_key: KeyVersion
) -> None:
    response = run(as_("reader"), rsa_key, "sign", algorithm="RS256", message="forged")
    assert response.status_code == 403
    assert response["HX-Retarget"] == "#alerts"
    assert "not authorized" in text(response)
    [entry] = entries("KeySign")
    assert (entry.result, entry.face, entry.actor_name) == ("Forbidden", Face.CONSOLE, "reader")
    plain = run_plain(as_("reader"), rsa_key, "encrypt", algorithm="RSA1_5", plaintext="x")
    assert plain.status_code == 403 and "<h1>Not allowed</h1>" in text(plain)


def test_an_unknown_version_is_404(as_: Any, rsa_key: KeyVersion) -> None:
    assert as_("owner").get(url(rsa_key, "0" * 32)).status_code == 404


def test_current_stands_for_the_current_version(
    as_: Any, personas: Personas, rsa_key: KeyVersion, system: Any
) -> None:
    newer = key_services.key_rotate(actor=system, vault_name=personas.vault.name, name="rsa-key")
    client = as_("crypto_user")
    current = text(client.get(url(rsa_key, "current")))
    assert newer.version in current and rsa_key.version not in current
    assert 'class="badge info">current<' in current
    older = text(client.get(url(rsa_key)))
    assert rsa_key.version in older and 'class="badge info">current<' not in older


# --- algorithms and operations that fit the key -----------------------------------------------


def test_an_rsa_key_offers_its_encryption_and_signature_algorithms(
    as_: Any, rsa_key: KeyVersion
) -> None:
    client = as_("crypto_user")
    page = client.get(url(rsa_key))
    assert offered(page, "encrypt") == ["RSA1_5", "RSA-OAEP", "RSA-OAEP-256"]
    assert offered(page, "decrypt") == ["RSA1_5", "RSA-OAEP", "RSA-OAEP-256"]
    assert 'name="encrypt-iv"' not in text(page)  # RSA takes no iv, tag or aad
    assert "Sign / verify" in text(page) and "Wrap / unwrap" in text(page)
    signing = client.get(url(rsa_key), {"family": "sign"})
    expected = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
    assert offered(signing, "sign") == expected and offered(signing, "verify") == expected
    wrapping = client.get(url(rsa_key), {"family": "wrap"})
    assert offered(wrapping, "wrapKey") == ["RSA1_5", "RSA-OAEP", "RSA-OAEP-256"]


@pytest.mark.parametrize(
    ("curve", "algorithm"),
    [("P-256", "ES256"), ("P-256K", "ES256K"), ("P-384", "ES384"), ("P-521", "ES512")],
)
def test_an_ec_key_only_signs_with_the_algorithm_of_its_curve(
    as_: Any, make_key: Any, curve: str, algorithm: str
) -> None:
    version = make_key("curved", kty="EC", curve=curve)
    page = as_("owner").get(url(version))
    assert offered(page, "sign") == [algorithm] and offered(page, "verify") == [algorithm]
    assert "Encrypt / decrypt" not in text(page) and "Wrap / unwrap" not in text(page)
    # Asking for another tab still shows what the key can do.
    assert offered(as_("owner").get(url(version), {"family": "encrypt"}), "sign") == [algorithm]


@pytest.mark.parametrize("size", [128, 192, 256])
def test_an_oct_key_offers_the_aes_algorithms_of_its_size(
    as_: Any, make_key: Any, size: int
) -> None:
    version = make_key("secret", kty="oct", size=size)
    client = as_("owner")
    page = client.get(url(version))
    assert offered(page, "encrypt") == [f"A{size}GCM", f"A{size}CBC", f"A{size}CBCPAD"]
    assert 'name="encrypt-iv"' in text(page) and 'name="decrypt-tag"' in text(page)
    assert "Sign / verify" not in text(page)
    assert offered(client.get(url(version), {"family": "wrap"}), "unwrapKey") == [f"A{size}KW"]


def test_an_operation_left_out_of_key_ops_is_explained(as_: Any, make_key: Any) -> None:
    version = make_key("sign-only", kty="RSA", size=2048, key_ops=["sign", "verify"])
    page = text(as_("crypto_user").get(url(version)))
    assert "Operation encrypt is not permitted on this key." in page
    assert 'name="operation" value="encrypt"' not in page
    assert "RSA-OAEP-256" in page  # what the key could do, were it permitted


def test_an_operation_the_key_type_cannot_do_is_a_bad_request(as_: Any, ec_key: KeyVersion) -> None:
    response = run(as_("owner"), ec_key, "encrypt", algorithm="RSA-OAEP", plaintext="hi")
    assert response.status_code == 400
    assert "offers only: sign / verify" in text(response)


# --- RSA ----------------------------------------------------------------------------------------


def test_rsa_encrypt_then_decrypt_through_the_page(as_: Any, rsa_key: KeyVersion) -> None:
    client = as_("crypto_user")
    sealed = run(client, rsa_key, "encrypt", algorithm="RSA-OAEP-256", plaintext="attack at dawn")
    assert sealed.status_code == 200 and is_fragment(sealed)
    ciphertext = shown(sealed, "op-encrypt-ciphertext")
    assert len(unb64url(ciphertext)) == 256
    assert 'data-copy="op-encrypt-ciphertext"' in text(sealed)
    opened = run(client, rsa_key, "decrypt", algorithm="RSA-OAEP-256", ciphertext=ciphertext)
    assert shown(opened, "op-decrypt-plaintext-text") == "attack at dawn"
    assert unb64url(shown(opened, "op-decrypt-plaintext")) == b"attack at dawn"
    # What was decrypted is kept by no cache.
    assert "no-store" in opened["Cache-Control"]


@pytest.mark.parametrize(
    ("algorithm", "scheme"),
    [
        ("RSA-OAEP", padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(), None)),  # noqa: S303
        ("RSA-OAEP-256", padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)),
        ("RSA1_5", padding.PKCS1v15()),
    ],
)
def test_the_page_decrypts_what_cryptography_encrypted_with_the_public_jwk(
    as_: Any, rsa_key: KeyVersion, algorithm: str, scheme: Any
) -> None:
    ciphertext = rsa_public(rsa_key).encrypt(b"\x00\xffbinary", scheme)
    opened = run(
        as_("crypto_user"),
        rsa_key,
        "decrypt",
        algorithm=algorithm,
        ciphertext=ciphertext.hex(),
        ciphertext_as="hex",
        output="hex",
    )
    assert shown(opened, "op-decrypt-plaintext") == "00ff62696e617279"
    # Not valid UTF-8, so there is no text rendering of it.
    assert 'id="op-decrypt-plaintext-text"' not in text(opened)


@pytest.mark.parametrize(
    ("algorithm", "scheme", "digest"),
    [
        ("RS256", padding.PKCS1v15(), hashes.SHA256()),
        ("RS512", padding.PKCS1v15(), hashes.SHA512()),
        ("PS384", padding.PSS(padding.MGF1(hashes.SHA384()), 48), hashes.SHA384()),
    ],
)
def test_an_rsa_signature_of_a_message_verifies_with_cryptography(
    as_: Any, rsa_key: KeyVersion, algorithm: str, scheme: Any, digest: Any
) -> None:
    response = run(as_("crypto_user"), rsa_key, "sign", algorithm=algorithm, message="pay 10 EUR")
    signature = unb64url(shown(response, "op-sign-signature"))
    rsa_public(rsa_key).verify(signature, b"pay 10 EUR", scheme, digest)
    # The page shows the digest it computed, with the hash of the algorithm.
    hash_name = f"SHA-{digest.digest_size * 8}"
    expected = hashlib.new(f"sha{digest.digest_size * 8}", b"pay 10 EUR").digest()
    element = f"op-sign-{hash_name.lower()}-digest-of-the-message"
    assert unb64url(shown(response, element)) == expected
    assert f"{hash_name} digest of the message (base64url)" in text(response)


def test_signing_a_message_or_its_digest_gives_the_same_signature(
    as_: Any, rsa_key: KeyVersion
) -> None:
    client = as_("crypto_user")
    message = "line one\nline two"
    digest = hashlib.sha256(message.encode()).digest()
    # The browser sends a textarea's line breaks as CRLF; the operator meant LF.
    by_text = run(client, rsa_key, "sign", algorithm="RS256", message=message.replace("\n", "\r\n"))
    by_hex_message = run(
        client, rsa_key, "sign", algorithm="RS256", message=message.encode().hex(), message_as="hex"
    )
    by_base64_message = run(
        client,
        rsa_key,
        "sign",
        algorithm="RS256",
        message=base64.b64encode(message.encode()).decode(),
        message_as="base64",
    )
    by_digest = run(
        client,
        rsa_key,
        "sign",
        algorithm="RS256",
        message_kind="digest",
        message=digest.hex(),
        message_as="hex",
    )
    signatures = {
        shown(response, "op-sign-signature")
        for response in (by_text, by_hex_message, by_base64_message, by_digest)
    }
    assert len(signatures) == 1  # PKCS#1 v1.5 signatures are deterministic
    # A digest given as it is is not shown back as computed.
    assert "digest of the message" not in text(by_digest)


def test_verify_reports_valid_and_invalid_clearly(as_: Any, rsa_key: KeyVersion) -> None:
    client = as_("crypto_user")
    signed = run(client, rsa_key, "sign", algorithm="PS256", message="hello", output="hex")
    signature = bytes.fromhex(shown(signed, "op-sign-signature"))
    valid = run(
        client, rsa_key, "verify", algorithm="PS256", message="hello", signature=b64url(signature)
    )
    assert "<strong>Valid.</strong>" in text(valid) and "Invalid" not in text(valid)
    tampered = run(
        client, rsa_key, "verify", algorithm="PS256", message="hellO", signature=b64url(signature)
    )
    assert "<strong>Invalid.</strong>" in text(tampered)
    [ok, bad] = entries("KeyVerify")
    assert ok.result == bad.result == "Success"


def test_rsa_wrap_then_unwrap_through_the_page(as_: Any, rsa_key: KeyVersion) -> None:
    client = as_("crypto_user")
    data_key = bytes(range(32))
    wrapped = run(client, rsa_key, "wrapKey", algorithm="RSA-OAEP", key=data_key.hex())
    encrypted_key = shown(wrapped, "op-wrapkey-wrapped-key")
    unwrapped = run(
        client,
        rsa_key,
        "unwrapKey",
        algorithm="RSA-OAEP",
        encrypted_key=encrypted_key,
        output="hex",
    )
    assert shown(unwrapped, "op-unwrapkey-unwrapped-key") == data_key.hex()


# --- EC -----------------------------------------------------------------------------------------


def test_an_es256_signature_verifies_with_cryptography_and_on_the_page(
    as_: Any, ec_key: KeyVersion
) -> None:
    client = as_("crypto_user")
    response = run(client, ec_key, "sign", algorithm="ES256", message="ec message")
    raw = unb64url(shown(response, "op-sign-signature"))
    assert len(raw) == 64  # JOSE r||s
    der = utils.encode_dss_signature(int.from_bytes(raw[:32]), int.from_bytes(raw[32:]))
    ec_public(ec_key).verify(der, b"ec message", ec.ECDSA(hashes.SHA256()))
    verified = run(
        client,
        ec_key,
        "verify",
        algorithm="ES256",
        message_kind="digest",
        message=base64.b64encode(hashlib.sha256(b"ec message").digest()).decode(),
        message_as="base64",
        signature=raw.hex(),
        signature_as="hex",
    )
    assert "<strong>Valid.</strong>" in text(verified)


# --- oct ----------------------------------------------------------------------------------------


def test_aes_gcm_encrypt_then_decrypt_with_aad(as_: Any, oct_key: KeyVersion) -> None:
    client = as_("crypto_user")
    sealed = run(
        client,
        oct_key,
        "encrypt",
        algorithm="A256GCM",
        plaintext="sixteen bytes!!!",
        aad="ctx",
        output="hex",
    )
    ciphertext = shown(sealed, "op-encrypt-ciphertext")
    iv, tag = shown(sealed, "op-encrypt-iv"), shown(sealed, "op-encrypt-authentication-tag")
    assert (len(ciphertext), len(iv), len(tag)) == (32, 24, 32)  # 16, 12 and 16 bytes in hex
    fields = {"ciphertext": ciphertext, "ciphertext_as": "hex", "iv": iv, "iv_as": "hex"}
    opened = run(
        client, oct_key, "decrypt", algorithm="A256GCM", tag=tag, tag_as="hex", aad="ctx", **fields
    )
    assert shown(opened, "op-decrypt-plaintext-text") == "sixteen bytes!!!"
    forged = run(
        client,
        oct_key,
        "decrypt",
        algorithm="A256GCM",
        tag=tag,
        tag_as="hex",
        aad="other",
        **fields,
    )
    assert forged["HX-Retarget"] == "#op-decrypt"
    assert "do not authenticate under this key" in text(forged)


def test_aes_cbc_gets_a_random_iv_when_none_is_given(as_: Any, oct_key: KeyVersion) -> None:
    client = as_("crypto_user")
    first = run(client, oct_key, "encrypt", algorithm="A256CBCPAD", plaintext="padded")
    second = run(client, oct_key, "encrypt", algorithm="A256CBCPAD", plaintext="padded")
    iv = shown(first, "op-encrypt-iv")
    assert len(unb64url(iv)) == 16 and iv != shown(second, "op-encrypt-iv")
    opened = run(
        client,
        oct_key,
        "decrypt",
        algorithm="A256CBCPAD",
        ciphertext=shown(first, "op-encrypt-ciphertext"),
        iv=iv,
    )
    assert shown(opened, "op-decrypt-plaintext-text") == "padded"


def test_aes_key_wrap_then_unwrap(as_: Any, oct_key: KeyVersion) -> None:
    client = as_("crypto_user")
    data_key = "00112233445566778899aabbccddeeff"
    wrapped = run(client, oct_key, "wrapKey", algorithm="A256KW", key=data_key, output="base64")
    encrypted_key = shown(wrapped, "op-wrapkey-wrapped-key")
    assert len(base64.b64decode(encrypted_key)) == 24  # RFC 3394 adds one 8-byte block
    unwrapped = run(
        client, oct_key, "unwrapKey", algorithm="A256KW", encrypted_key=encrypted_key, output="hex"
    )
    assert shown(unwrapped, "op-unwrapkey-unwrapped-key") == data_key


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "error", "refused_by"),
    [
        ({"message": "zz", "message_as": "hex"}, "Not valid hex", "form"),
        ({"message": "abc", "message_as": "hex"}, "Hex needs an even number of digits", "form"),
        ({"message": "a!b", "message_as": "base64"}, "Not valid base64", "form"),
        ({"message": "abcde", "message_as": "base64"}, "Not valid base64", "form"),
        ({"message_kind": "digest", "message": "ab", "message_as": "text"}, "A digest is", "form"),
        ({"message": ""}, "This field is required.", "form"),
        (
            {"message_kind": "digest", "message": "abcd", "message_as": "hex"},
            "RS256 needs a 32-byte digest; got 2 bytes.",
            "service",
        ),
    ],
)
def test_bad_sign_input_is_shown_beside_the_form_and_signs_nothing(
    as_: Any, rsa_key: KeyVersion, fields: dict[str, str], error: str, refused_by: str
) -> None:
    response = run(as_("crypto_user"), rsa_key, "sign", algorithm="RS256", **fields)
    assert response.status_code == 200 and is_fragment(response)
    # The whole operation is swapped, so the error stands beside its field.
    assert response["HX-Retarget"] == "#op-sign" and response["HX-Reswap"] == "outerHTML"
    assert html.escape(error) in text(response)
    assert 'id="op-sign-signature"' not in text(response)
    # The service records what it refused; what the form refused never reached it.
    expected = ["BadParameter"] if refused_by == "service" else []
    assert [entry.result for entry in entries("KeySign")] == expected


def test_wrong_lengths_come_from_the_service(as_: Any, oct_key: KeyVersion) -> None:
    client = as_("crypto_user")
    response = run(
        client, oct_key, "decrypt", algorithm="A256CBC", ciphertext="AAAA", iv="00", iv_as="hex"
    )
    assert "A256CBC needs a 16-byte iv; got 1 bytes." in text(response)
    response = run(client, oct_key, "wrapKey", algorithm="A256KW", key="0011")
    assert "A256KW wraps keys of at least 16 bytes in multiples of 8; got 2 bytes." in text(
        response
    )
    response = run(
        client, oct_key, "encrypt", algorithm="A256GCM", plaintext="x", iv="00" * 12, iv_as="hex"
    )
    assert "A256GCM generates its own iv; do not send one." in text(response)
    assert [entry.result for entry in entries("KeyDecrypt")] == ["BadParameter"]


def test_an_algorithm_that_is_not_offered_is_a_form_error(as_: Any, rsa_key: KeyVersion) -> None:
    response = run(as_("crypto_user"), rsa_key, "encrypt", algorithm="A256GCM", plaintext="x")
    assert "Select a valid choice" in text(response)
    assert not entries("KeyEncrypt")


def test_without_htmx_a_bad_input_is_the_whole_page_with_the_error(
    as_: Any, rsa_key: KeyVersion
) -> None:
    response = run_plain(
        as_("crypto_user"), rsa_key, "decrypt", algorithm="RSA1_5", ciphertext="!!"
    )
    assert response.status_code == 200 and not is_fragment(response)
    assert "Not valid base64" in text(response)


# --- the version's state ------------------------------------------------------------------------


def test_a_disabled_version_offers_nothing_and_refuses_a_sent_form(
    as_: Any, personas: Personas, rsa_key: KeyVersion, system: Any
) -> None:
    key_services.key_update(
        actor=system, vault_name=personas.vault.name, name="rsa-key", enabled=False
    )
    client = as_("crypto_user")
    page = text(client.get(url(rsa_key)))
    assert "Operation encrypt is not allowed on a disabled key." in page
    assert "Operation decrypt is not allowed on a disabled key." in page
    assert 'name="operation"' not in page and 'class="badge off">disabled<' in page
    response = run(client, rsa_key, "encrypt", algorithm="RSA-OAEP", plaintext="x")
    assert response.status_code == 403 and "disabled" in text(response)
    assert [entry.result for entry in entries("KeyEncrypt")] == ["Forbidden"]


def test_an_expired_version_refuses_encrypt_but_still_decrypts(
    as_: Any, personas: Personas, rsa_key: KeyVersion, system: Any
) -> None:
    key_services.key_update(
        actor=system,
        vault_name=personas.vault.name,
        name="rsa-key",
        expires=timezone.now() - timedelta(days=1),
    )
    client = as_("crypto_user")
    page = text(client.get(url(rsa_key)))
    assert "Operation encrypt is not allowed on an expired key." in page
    assert 'name="operation" value="encrypt"' not in page
    assert 'name="operation" value="decrypt"' in page
    refused = run(client, rsa_key, "encrypt", algorithm="RSA-OAEP", plaintext="late")
    assert refused.status_code == 403
    ciphertext = rsa_public(rsa_key).encrypt(
        b"still readable", padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)
    )
    opened = run(
        client, rsa_key, "decrypt", algorithm="RSA-OAEP-256", ciphertext=b64url(ciphertext)
    )
    assert shown(opened, "op-decrypt-plaintext-text") == "still readable"


# --- htmx and the activity log ------------------------------------------------------------------


def test_tabs_swap_only_the_playground_and_work_as_full_pages(
    as_: Any, rsa_key: KeyVersion
) -> None:
    client = as_("crypto_user")
    fragment = htmx_get(client, url(rsa_key), family="sign")
    assert is_fragment(fragment)
    assert text(fragment).lstrip().startswith('<div id="playground">')
    assert 'value="sign"' in text(fragment) and 'value="encrypt"' not in text(fragment)
    full = client.get(url(rsa_key), {"family": "wrap"})
    assert not is_fragment(full)
    assert re.search(r'href="\?family=wrap"[^>]*aria-current="page"', text(full))


def test_a_result_swaps_only_its_panel_with_htmx_and_is_a_page_without(
    as_: Any, rsa_key: KeyVersion
) -> None:
    client = as_("crypto_user")
    fragment = run(client, rsa_key, "sign", algorithm="RS256", message="m")
    assert is_fragment(fragment) and "HX-Retarget" not in fragment
    assert text(fragment).lstrip().startswith('<div id="op-sign-result"')
    assert "<form" not in text(fragment)
    page = run_plain(client, rsa_key, "sign", algorithm="RS256", message="m")
    assert page.status_code == 200 and not is_fragment(page)
    assert shown(page, "op-sign-signature") == shown(fragment, "op-sign-signature")
    assert 'name="operation" value="verify"' in text(page)


def test_each_operation_is_recorded_with_the_console_face(
    as_: Any, personas: Personas, rsa_key: KeyVersion
) -> None:
    client = as_("crypto_user")
    ciphertext = shown(
        run(client, rsa_key, "encrypt", algorithm="RSA1_5", plaintext="logged"),
        "op-encrypt-ciphertext",
    )
    run(client, rsa_key, "decrypt", algorithm="RSA1_5", ciphertext=ciphertext)
    for operation in ("KeyEncrypt", "KeyDecrypt"):
        [entry] = entries(operation)
        assert (entry.face, entry.result, entry.actor_name) == (Face.CONSOLE, "Success", "crypto")
        assert entry.target == f"vaults/{personas.vault.name}/keys/rsa-key/{rsa_key.version}"
