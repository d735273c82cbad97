"""Refusals at the vault endpoint, met through the Azure SDK for Python.

Each refused call changes nothing but the activity log, which gets its entry (the
`one_entry_per_request` check counts them against the requests served).
"""

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.core.rest import HttpRequest
from azure.keyvault.keys import KeyClient, KeyVaultKey
from azure.keyvault.keys.crypto import CryptographyClient, EncryptionAlgorithm, SignatureAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from django.conf import settings

from accounts import tokens
from keys.models import Key, KeyRotationPolicy, KeyVersion
from tests.factories import VaultFactory
from tests.sdk import FixedToken, RegisteredApp, Sdk
from vaults import services as vault_services
from vaults.models import ActivityEntry, Vault

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("one_entry_per_request"),
]


def state() -> list[Any]:
    """Everything a refused call must leave as it was."""
    return [
        list(model.objects.order_by("pk").values_list())
        for model in (Key, KeyVersion, Vault, KeyRotationPolicy)
    ]


@pytest.fixture
def unchanged() -> Iterator[None]:
    before = state()
    yield
    assert state() == before


def body(error: HttpResponseError) -> Any:
    assert error.response is not None
    return json.loads(error.response.text())


def inner_code(error: HttpResponseError) -> str | None:
    inner = body(error)["error"].get("innererror")
    return inner["code"] if inner else None


def error_code(error: HttpResponseError) -> str:
    return str(body(error)["error"]["code"])


def last_entry() -> ActivityEntry:
    entry = ActivityEntry.objects.order_by("-seq").first()
    assert entry is not None
    return entry


def claims_for(app: RegisteredApp, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "aud": tokens.vault_resource(),
        "iss": tokens.issuer(),
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "sub": str(app.principal.oid),
    }
    claims.update(changes)
    return claims


def minted(app: RegisteredApp, **changes: Any) -> str:
    """An access token signed like the token service's, with `changes` to its claims."""
    key = tokens.keyring.signing_key()
    return jwt.encode(
        claims_for(app, **changes), key.private_key, algorithm="RS256", headers={"kid": key.kid}
    )


def hand_made(
    header: dict[str, Any], claims: dict[str, Any], sign: Callable[[bytes], bytes]
) -> str:
    """A JWT assembled by hand, as an attacker would, with whatever header and signature."""

    def part(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    signed = part(json.dumps(header).encode()) + b"." + part(json.dumps(claims).encode())
    return (signed + b"." + part(sign(signed))).decode()


@pytest.fixture
def key(keys: KeyClient) -> KeyVaultKey:
    return keys.create_rsa_key("target")


def remote_client(sdk: Sdk, key: KeyVaultKey, credential: Any) -> CryptographyClient:
    client = sdk.crypto(key.id, credential)
    client._keys_get_forbidden = True
    return client


def assert_refused_with_the_challenge(error: HttpResponseError) -> None:
    response: Any = error.response
    assert response.headers["WWW-Authenticate"] == (
        f'Bearer authorization="{tokens.authority()}", resource="{tokens.vault_resource()}"'
    )
    assert error_code(error) == "Unauthorized"


# --- who is calling ---------------------------------------------------------------------------


def test_bad_tokens_are_refused_with_the_challenge(
    sdk: Sdk, vault: Vault, officer: RegisteredApp, key: KeyVaultKey, unchanged: None
) -> None:
    signing_key = tokens.keyring.signing_key()
    good = minted(officer)
    header, _, signature = good.split(".")
    someone_else = claims_for(officer, sub=str(sdk.system.oid))
    forged_payload = base64.urlsafe_b64encode(json.dumps(someone_else).encode()).rstrip(b"=")
    public_pem = signing_key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    foreign_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    bad = {
        "no token": "",
        "not a JWT": "garbage",
        "expired": minted(officer, exp=int(time.time()) - 600, nbf=int(time.time()) - 4000),
        "not yet valid": minted(officer, nbf=int(time.time()) + 600),
        "another audience": minted(officer, aud="https://vault.azure.net"),
        "another issuer": minted(officer, iss="https://login.microsoftonline.com/t/v2.0"),
        "tampered": f"{header}.{forged_payload.decode()}.{signature}",
        "alg none": hand_made({"alg": "none", "typ": "JWT"}, claims_for(officer), lambda _: b""),
        # The key-confusion attack: HMAC keyed with the public key a verifier may trust.
        "HS256 with the public key": hand_made(
            {"alg": "HS256", "typ": "JWT", "kid": signing_key.kid},
            claims_for(officer),
            lambda signed: hmac.new(public_pem, signed, hashlib.sha256).digest(),
        ),
        "PS256 with the signing key": jwt.encode(
            claims_for(officer), signing_key.private_key, "PS256", {"kid": signing_key.kid}
        ),
        "unknown kid": jwt.encode(
            claims_for(officer), signing_key.private_key, "RS256", {"kid": "0" * 32}
        ),
        "signed by a key not in the keyring": jwt.encode(
            claims_for(officer), foreign_key, "RS256", {"kid": signing_key.kid}
        ),
        "no expiry": jwt.encode(
            {name: value for name, value in claims_for(officer).items() if name != "exp"},
            signing_key.private_key,
            "RS256",
            {"kid": signing_key.kid},
        ),
    }
    for reason, token in bad.items():
        client = sdk.keys(vault.name, FixedToken(token))
        with pytest.raises(ClientAuthenticationError) as refused:
            client.get_key("target")
        assert refused.value.status_code == 401, reason
        assert_refused_with_the_challenge(refused.value)
        assert (last_entry().operation, last_entry().result) == ("KeyGet", "Unauthorized"), reason
    assert sdk.keys(vault.name, FixedToken(good)).get_key("target").id == key.id


def test_the_first_request_gets_the_challenge_before_its_body_is_read(
    sdk: Sdk, vault: Vault, officer: RegisteredApp, unchanged: None
) -> None:
    client = sdk.keys(vault.name, FixedToken(""))
    # Far over the size limit, and not JSON: neither is looked at before the 401.
    request = HttpRequest(
        "POST",
        "/keys/k/create?api-version=7.5",
        content=b"{" * (settings.KVCONSOLE_MAX_REQUEST_BYTES + 1),
        headers={"Content-Type": "application/json"},
    )
    response = client.send_request(request)
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge == (
        f'Bearer authorization="{tokens.authority()}", resource="{tokens.vault_resource()}"'
    )


def test_a_disabled_application_is_refused_at_once(
    sdk: Sdk, vault: Vault, officer: RegisteredApp, key: KeyVaultKey
) -> None:
    client = sdk.keys(vault.name, sdk.credential(officer))
    assert client.get_key("target").id == key.id
    vault_services.application_update(actor=sdk.system, client_id=officer.client_id, enabled=False)
    before = state()
    # Its token is still cached as verified: the grants query sees the change all the same
    # and answers 401 with the challenge (the SDK retries once with the token it holds).
    with pytest.raises(ClientAuthenticationError) as refused:
        client.get_key("target")
    assert "has been disabled" in refused.value.message
    assert_refused_with_the_challenge(refused.value)
    assert (last_entry().operation, last_entry().result) == ("KeyGet", "Unauthorized")
    with pytest.raises(ClientAuthenticationError) as no_token:
        sdk.keys(vault.name, sdk.credential(officer)).get_key("target")
    assert "AADSTS7000112" in no_token.value.message
    assert state() == before


def test_a_deleted_applications_token_is_refused(
    sdk: Sdk, vault: Vault, officer: RegisteredApp, key: KeyVaultKey
) -> None:
    client = sdk.keys(vault.name, sdk.credential(officer))
    assert client.get_key("target").id == key.id
    vault_services.application_delete(actor=sdk.system, client_id=officer.client_id)
    before = state()
    # The token is still cached as verified, and still unexpired: its principal is gone.
    with pytest.raises(ClientAuthenticationError) as refused:
        client.get_key("target")
    assert_refused_with_the_challenge(refused.value)
    assert (last_entry().operation, last_entry().result) == ("KeyGet", "Unauthorized")
    assert state() == before


def test_a_revoked_secret_gets_no_token(
    sdk: Sdk, vault: Vault, officer: RegisteredApp, unchanged: None
) -> None:
    listed = vault_services.application_credential_list(
        actor=sdk.system, client_id=officer.client_id
    )
    vault_services.application_credential_delete(
        actor=sdk.system, client_id=officer.client_id, key_id=str(listed.secrets[0].key_id)
    )
    with pytest.raises(ClientAuthenticationError) as refused:
        sdk.keys(vault.name, sdk.credential(officer)).get_key("target")
    assert "AADSTS7000215" in refused.value.message


def test_an_application_without_permission_gets_the_inner_code_of_the_model(
    sdk: Sdk, vault: Vault, key: KeyVaultKey
) -> None:
    reader = sdk.app("Key Vault Reader", vault=vault, name="reader")
    policies = VaultFactory.create(
        name="by-policy",
        resource_group=vault.resource_group,
        permission_model=Vault.PermissionModel.ACCESS_POLICY,
    )
    outsider = sdk.app(None, name="outsider")
    before = state()
    with pytest.raises(HttpResponseError) as rbac:
        remote_client(sdk, key, sdk.credential(reader)).sign(SignatureAlgorithm.rs256, bytes(32))
    assert rbac.value.status_code == 403 and inner_code(rbac.value) == "ForbiddenByRbac"
    assert "Microsoft.KeyVault/vaults/keys/sign/action" in rbac.value.message
    assert reader.client_id in rbac.value.message
    with pytest.raises(HttpResponseError) as denied:
        sdk.keys(policies.name, sdk.credential(outsider)).get_key("anything")
    assert denied.value.status_code == 403 and inner_code(denied.value) == "AccessDenied"
    assert "does not have keys get permission on key vault 'by-policy" in denied.value.message
    assert state() == before


# --- what is asked for --------------------------------------------------------------------------


def test_unknown_and_deleted_keys(keys: KeyClient, key: KeyVaultKey) -> None:
    with pytest.raises(ResourceNotFoundError) as unknown:
        keys.get_key("no-such-key")
    assert error_code(unknown.value) == "KeyNotFound"
    keys.begin_delete_key("target", _polling_interval=0.05).wait()
    before = state()
    with pytest.raises(ResourceNotFoundError):
        keys.get_key("target")
    with pytest.raises(ResourceExistsError) as taken:
        keys.create_rsa_key("target")
    assert inner_code(taken.value) == "ObjectIsDeletedButRecoverable"
    assert state() == before


def test_disabled_expired_and_restricted_versions(
    sdk: Sdk, keys: KeyClient, officer: RegisteredApp
) -> None:
    credential = sdk.credential(officer)
    disabled = keys.create_rsa_key("disabled", enabled=False)
    past = datetime.now(UTC) - timedelta(days=1)
    expired = keys.create_rsa_key("expired", not_before=past - timedelta(days=1), expires_on=past)
    verify_only = keys.create_ec_key("verify-only", key_operations=["verify"])
    before = state()
    with pytest.raises(HttpResponseError) as off:
        remote_client(sdk, disabled, credential).sign(SignatureAlgorithm.rs256, bytes(32))
    assert off.value.status_code == 403 and inner_code(off.value) == "KeyDisabled"
    with pytest.raises(HttpResponseError) as late:
        remote_client(sdk, expired, credential).encrypt(EncryptionAlgorithm.rsa_oaep, b"x")
    assert late.value.status_code == 403 and inner_code(late.value) == "KeyNotActive"
    # An expired key still decrypts what was encrypted for it while it was valid.
    jwk: Any = expired.key
    public = rsa.RSAPublicNumbers(
        int.from_bytes(jwk.e, "big"), int.from_bytes(jwk.n, "big")
    ).public_key()
    oaep = padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)
    sealed = public.encrypt(b"from before", oaep)
    client = remote_client(sdk, expired, credential)
    assert client.decrypt(EncryptionAlgorithm.rsa_oaep_256, sealed).plaintext == b"from before"
    with pytest.raises(HttpResponseError) as not_allowed:
        remote_client(sdk, verify_only, credential).sign(SignatureAlgorithm.es256, bytes(32))
    assert not_allowed.value.status_code == 403
    assert inner_code(not_allowed.value) == "KeyOperationForbidden"
    assert state() == before


def test_a_wrong_algorithm_for_the_key_type(
    sdk: Sdk, officer: RegisteredApp, key: KeyVaultKey, unchanged: None
) -> None:
    client = remote_client(sdk, key, sdk.credential(officer))
    with pytest.raises(HttpResponseError) as refused:
        client.sign(SignatureAlgorithm.es256, bytes(32))
    assert refused.value.status_code == 400 and error_code(refused.value) == "BadParameter"
    with pytest.raises(HttpResponseError) as short:
        client.sign(SignatureAlgorithm.rs256, bytes(20))
    assert short.value.status_code == 400


@pytest.mark.parametrize(
    ("what", "path", "content", "status"),
    [
        ("malformed JSON", "/keys/target//sign?api-version=7.5", b'{"alg": "RS256", "value":', 400),
        ("not an object", "/keys/target//sign?api-version=7.5", b'["RS256"]', 400),
        (
            "bad base64url",
            "/keys/target//sign?api-version=7.5",
            b'{"alg":"RS256","value":"*!"}',
            400,
        ),
        ("wrong type", "/keys/target//sign?api-version=7.5", b'{"alg":256,"value":"AAAA"}', 400),
        ("missing field", "/keys/target//sign?api-version=7.5", b'{"alg":"RS256"}', 400),
        ("unknown api-version", "/keys/target//sign?api-version=1999-01-01", b"{}", 400),
        ("no api-version", "/keys/target//sign", b"{}", 400),
        ("zero random bytes", "/rng?api-version=7.5", b'{"count": 0}', 400),
        ("unknown path", "/secrets/target?api-version=7.5", b"{}", 404),
        (
            "negative date",
            "/keys/new/create?api-version=7.5",
            b'{"kty":"EC","attributes":{"exp":-2085978496}}',
            400,
        ),
        ("bad skip token", "/keys?api-version=7.5&$skiptoken=bm90LWpzb24", b"", 400),
        ("page too large", "/keys?api-version=7.5&maxresults=26", b"", 400),
    ],
)
def test_malformed_requests(
    keys: KeyClient, key: KeyVaultKey, what: str, path: str, content: bytes, status: int
) -> None:
    before = state()
    method = "GET" if path.startswith("/keys?") else "POST"
    response = keys.send_request(
        HttpRequest(
            method, path, content=content or None, headers={"Content-Type": "application/json"}
        )
    )
    assert response.status_code == status, what
    assert set(response.json()["error"]) >= {"code", "message"}, what
    assert last_entry().status_code == status
    assert state() == before


def test_an_oversized_body_is_refused_unread(
    keys: KeyClient, key: KeyVaultKey, unchanged: None
) -> None:
    body = json.dumps({"value": "A" * settings.KVCONSOLE_MAX_REQUEST_BYTES}).encode()
    response = keys.send_request(
        HttpRequest(
            "POST",
            "/keys/restore?api-version=7.5",
            content=body,
            headers={"Content-Type": "application/json"},
        )
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "RequestBodyTooLarge"
