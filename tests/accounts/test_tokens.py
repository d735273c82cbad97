"""Access tokens: issuing, checking (once per token), and rotating the signing key."""

import json
import time
from pathlib import Path

import jwt
import pytest
from django.conf import settings

from accounts import tokens
from accounts.models import Application, User
from kvconsole.errors import Unauthorized
from vaults import services

pytestmark = pytest.mark.django_db


@pytest.fixture
def application(system: User) -> Application:
    return services.application_create(actor=system, display_name="token-test")


def token_for(application: Application) -> str:
    return tokens.issue_access_token(application, audience=tokens.vault_resource()).access_token


def test_a_token_names_the_application_for_the_vaults(application: Application) -> None:
    issued = tokens.issue_access_token(application, audience=tokens.vault_resource())
    header = jwt.get_unverified_header(issued.access_token)
    assert header["alg"] == "RS256" and header["kid"] == tokens.keyring.signing_key().kid
    claims = jwt.decode(issued.access_token, options={"verify_signature": False})
    assert (
        claims["aud"]
        == tokens.vault_resource()
        == f"https://vault.localhost:{settings.KVCONSOLE_VAULT_PORT}"
    )
    assert claims["iss"] == tokens.issuer() and claims["sub"] == str(application.user.oid)
    assert issued.expires_in == settings.KVCONSOLE_TOKEN_LIFETIME_SECONDS
    assert tokens.principal_for(issued.access_token) == application.user


def test_a_known_token_costs_no_query_and_no_signature_check(
    application: Application, django_assert_num_queries, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = token_for(application)
    tokens.principal_for(token)

    def no_verification(*args: object, **kwargs: object) -> None:
        raise AssertionError("the signature was checked again")

    monkeypatch.setattr(jwt, "decode", no_verification)
    with django_assert_num_queries(0):
        assert tokens.principal_for(token) == application.user


def test_a_cached_token_is_dropped_when_it_expires(system: User) -> None:
    cache = tokens._VerifiedTokens(size=2)
    now = time.time()
    cache.put("live", now + 10, system, "kid")
    cache.put("expired", now - 1, system, "kid")
    assert cache.get("live", now) == (system, "kid")
    assert cache.get("expired", now) is None
    cache.put("third", now + 10, system, "kid")
    cache.put("fourth", now + 10, system, "kid")
    # Bounded: the least recently used entry goes first.
    assert cache.get("live", now) is None and cache.get("fourth", now) == (system, "kid")


def test_tokens_of_disabled_or_deleted_applications_are_refused_when_checked(
    system: User, application: Application
) -> None:
    token = token_for(application)
    services.application_update(actor=system, client_id=str(application.client_id), enabled=False)
    with pytest.raises(Unauthorized, match="disabled"):
        tokens.principal_for(token)
    services.application_delete(actor=system, client_id=str(application.client_id))
    with pytest.raises(Unauthorized, match="no longer exists"):
        tokens.principal_for(token)


@pytest.mark.usefixtures("fresh_token_keys")
def test_rotation_keeps_old_keys_until_their_tokens_have_expired(
    application: Application, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = tokens.keyring.signing_key()
    old_token = token_for(application)
    second = tokens.rotate_signing_key()
    assert tokens.keyring.signing_key().kid == second.kid
    tokens.verified_tokens.clear()
    assert tokens.principal_for(old_token) == application.user
    document = json.loads(Path(settings.KVCONSOLE_TOKEN_KEY_FILE).read_text())
    assert [entry["kid"] for entry in document["keys"]] == [second.kid, first.kid]
    assert document["keys"][1]["retired"] is not None
    assert Path(settings.KVCONSOLE_TOKEN_KEY_FILE).stat().st_mode & 0o777 == 0o600
    # Once every token the first key signed has expired, the next rotation drops it.
    later = time.time() + settings.KVCONSOLE_TOKEN_LIFETIME_SECONDS + tokens.LEEWAY_SECONDS + 5
    monkeypatch.setattr(time, "time", lambda: later)
    third = tokens.rotate_signing_key()
    assert [key.kid for key in tokens.keyring.current()] == [third.kid, second.kid]
    assert [key["kid"] for key in tokens.jwks()["keys"]] == [third.kid, second.kid]


def test_the_keyring_never_shows_private_material() -> None:
    key = tokens.keyring.signing_key()
    assert "PRIVATE" not in repr(key)
    assert {"kty", "kid", "n", "e"} <= set(key.public_jwk)
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key.public_jwk)


@pytest.mark.usefixtures("fresh_token_keys")
def test_a_replaced_key_signs_no_new_tokens(
    application: Application, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = tokens.keyring.signing_key()
    now = int(time.time())
    # The rotation happened five minutes ago; the token is made now by someone holding the key.
    with monkeypatch.context() as earlier:
        earlier.setattr(time, "time", lambda: now - 300)
        tokens.rotate_signing_key()
    claims = {
        "aud": tokens.vault_resource(),
        "iss": tokens.issuer(),
        "sub": str(application.user.oid),
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    forged = jwt.encode(claims, old.private_key, algorithm="RS256", headers={"kid": old.kid})
    with pytest.raises(Unauthorized, match="replaced"):
        tokens.principal_for(forged)


def test_a_token_longer_than_the_service_gives_is_refused(application: Application) -> None:
    key = tokens.keyring.signing_key()
    now = int(time.time())
    claims = {
        "aud": tokens.vault_resource(),
        "iss": tokens.issuer(),
        "sub": str(application.user.oid),
        "iat": now,
        "nbf": now,
        "exp": now + 365 * 86400,
    }
    token = jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})
    with pytest.raises(Unauthorized, match="longer life"):
        tokens.principal_for(token)


@pytest.mark.usefixtures("fresh_token_keys")
def test_dropping_the_previous_keys_ends_their_tokens_even_cached(
    application: Application,
) -> None:
    token = token_for(application)
    assert tokens.principal_for(token) == application.user
    tokens.rotate_signing_key(drop_previous=True)
    assert len(tokens.keyring.current()) == 1
    with pytest.raises(Unauthorized, match="not signed by this deployment"):
        tokens.principal_for(token)
