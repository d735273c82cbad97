"""Access tokens for the vault endpoint, and the client assertions applications sign in with.

Tokens are JWTs (RS256) signed by the deployment's token-signing key. The keys live in a
keyring file: the newest signs, and a key replaced by a rotation keeps verifying until every
token it signed has expired, so a rotation never breaks a token already issued. PyJWT does
all of the JOSE work.

A verified token is remembered until it expires: a request that presents a known token
costs neither a signature check nor a query. Whether its application is still enabled is
decided on every request all the same, by the grants query (vaults/permissions.py).
"""

import base64
import binascii
import json
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from kvconsole import secretfiles
from kvconsole.errors import Unauthorized

from .models import Application, CertificateCredential, User

ALGORITHM = "RS256"
_KEY_BITS = 2048
# Clocks of two machines of one deployment may differ a little.
LEEWAY_SECONDS = 60
_CACHE_SIZE = 10_000
_FORMAT = 1


# --- where the token service and the vaults are --------------------------------------------


def authority() -> str:
    """The authority clients are sent to (the challenge's `authorization`)."""
    return f"https://{settings.KVCONSOLE_CONSOLE_HOST}/{settings.KVCONSOLE_TENANT_ID}"


def is_our_tenant(tenant: str) -> bool:
    return tenant.lower() == settings.KVCONSOLE_TENANT_ID.lower()


def issuer() -> str:
    return f"{authority()}/v2.0"


def token_endpoint() -> str:
    return f"{authority()}/oauth2/v2.0/token"


def vault_resource() -> str:
    """The resource every vault belongs to, and the audience of every access token.

    Vault hosts are `{vault}.{suffix}[:port]`; the SDKs accept a challenge only for a
    resource whose host (with its port, for Python) ends the vault's host.
    """
    port = settings.KVCONSOLE_VAULT_PORT
    return f"https://{settings.KVCONSOLE_VAULT_HOST_SUFFIX}{'' if port == 443 else f':{port}'}"


# --- the signing keys ----------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    kid: str
    created: int
    # When a newer key took over signing; it verifies until its last token has expired.
    retired: int | None
    private_key: rsa.RSAPrivateKey

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r}, retired={self.retired!r})"

    @property
    def public_jwk(self) -> dict[str, Any]:
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return {"kty": "RSA", "use": "sig", "alg": ALGORITHM, "kid": self.kid, **jwk}


class _Keyring:
    """The signing keyring, re-read whenever its file changes so every process follows a
    rotation made by another."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (path, stamp, keys): the path as a string, since comparing Path objects on each
        # request costs more than the stat that tells whether the file changed.
        self._loaded: tuple[str, tuple[int, int, int], list[SigningKey]] | None = None

    def current(self) -> list[SigningKey]:
        """Every key that still verifies, newest (the signing key) first."""
        path = str(settings.KVCONSOLE_TOKEN_KEY_FILE)
        with self._lock:
            try:
                stamp = secretfiles.stamp(path)
            except FileNotFoundError:
                # Losing this file only invalidates tokens issued under it (they last an
                # hour), so a development deployment may simply make a new one.
                secretfiles.create_development_file(Path(path), _document([_new_key()]))
                stamp = secretfiles.stamp(path)
            if self._loaded is None or self._loaded[:2] != (path, stamp):
                self._loaded = (path, stamp, _parse(Path(path)))
            return self._loaded[2]

    def signing_key(self) -> SigningKey:
        return self.current()[0]

    def verification_key(self, kid: str) -> SigningKey | None:
        return next((key for key in self.current() if key.kid == kid), None)


keyring = _Keyring()


def rotate_signing_key(*, drop_previous: bool = False) -> SigningKey:
    """Make a new signing key; the previous one keeps verifying the tokens it signed (unless
    `drop_previous`, for a key that leaked: its tokens are refused at once), and keys whose
    last token has expired are dropped."""
    path = Path(settings.KVCONSOLE_TOKEN_KEY_FILE)
    with secretfiles.exclusive(path, "Another token-signing key rotation is running."):
        now = int(time.time())
        horizon = now - settings.KVCONSOLE_TOKEN_LIFETIME_SECONDS - LEEWAY_SECONDS
        previous = [
            SigningKey(key.kid, key.created, key.retired or now, key.private_key)
            for key in keyring.current()
            if not drop_previous and (key.retired is None or key.retired > horizon)
        ]

        new = _new_key()
        secretfiles.write_secret_file(path, _document([new, *previous]))
    return new


def jwks() -> dict[str, Any]:
    """The public keys that verify tokens, as a JSON Web Key Set."""
    return {"keys": [key.public_jwk for key in keyring.current()]}


def _new_key() -> SigningKey:
    return SigningKey(
        kid=uuid.uuid4().hex,
        created=int(time.time()),
        retired=None,
        private_key=rsa.generate_private_key(public_exponent=65537, key_size=_KEY_BITS),
    )


def _document(keys: Iterable[SigningKey]) -> str:
    return json.dumps(
        {
            "format": _FORMAT,
            "keys": [
                {
                    "kid": key.kid,
                    "created": key.created,
                    "retired": key.retired,
                    "pem": key.private_key.private_bytes(
                        serialization.Encoding.PEM,
                        serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption(),
                    ).decode(),
                }
                for key in keys
            ],
        },
        indent=2,
    )


def _parse(path: Path) -> list[SigningKey]:
    try:
        document = json.loads(path.read_text())
        keys = []
        for entry in document["keys"]:
            private_key = serialization.load_pem_private_key(entry["pem"].encode(), None)
            if not isinstance(private_key, rsa.RSAPrivateKey):
                raise ValueError("not an RSA key")
            keys.append(SigningKey(entry["kid"], entry["created"], entry["retired"], private_key))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ImproperlyConfigured(f"The token-signing key file {path} is unreadable.") from error
    if not keys or keys[0].retired is not None:
        raise ImproperlyConfigured(f"The token-signing key file {path} has no signing key.")
    return keys


# --- issuing and checking access tokens ------------------------------------------------------


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    expires_on: int

    def __repr__(self) -> str:
        return f"IssuedToken(expires_on={self.expires_on})"


def issue_access_token(application: Application, *, audience: str) -> IssuedToken:
    """An access token for `application`'s principal to call the vaults with."""
    key = keyring.signing_key()
    now = int(time.time())
    lifetime = settings.KVCONSOLE_TOKEN_LIFETIME_SECONDS
    oid = str(application.user.oid)
    claims = {
        "aud": audience,
        "iss": issuer(),
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "sub": oid,
        "oid": oid,
        "appid": str(application.client_id),
        "azp": str(application.client_id),
        "tid": settings.KVCONSOLE_TENANT_ID,
        "idtyp": "app",
        "ver": "2.0",
        "uti": uuid.uuid4().hex,
    }
    token = jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid})
    return IssuedToken(token, lifetime, now + lifetime)


class _VerifiedTokens:
    """Tokens already verified, with the principal each one names and the key that signed
    it, until they expire."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, User, str]] = OrderedDict()

    def get(self, token: str, now: float) -> tuple[User, str] | None:
        with self._lock:
            entry = self._entries.get(token)
            if entry is None:
                return None
            if entry[0] <= now:
                del self._entries[token]
                return None
            self._entries.move_to_end(token)
            return entry[1], entry[2]

    def put(self, token: str, expires: float, principal: User, kid: str) -> None:
        with self._lock:
            self._entries[token] = (expires, principal, kid)
            self._entries.move_to_end(token)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


verified_tokens = _VerifiedTokens(_CACHE_SIZE)


def principal_for(token: str) -> User:
    """The application principal an access token was issued to, once the token is shown to
    be ours, for the vaults, current, and of an application that exists and is enabled."""
    now = time.time()
    known = verified_tokens.get(token, now)
    # Still signed by a key of the keyring: one dropped after a leak (by any process) ends
    # the tokens it signed at once.
    if known is not None and keyring.verification_key(known[1]) is not None:
        return known[0]
    claims, kid = _verified_claims(token)
    application = (
        Application.objects.select_related("user")
        .filter(user__oid=claims["sub"], user__kind=User.Kind.APPLICATION)
        .first()
    )
    if application is None:
        raise Unauthorized("The application this access token was issued to no longer exists.")
    if not application.enabled or not application.user.is_active:
        raise Unauthorized(
            f"Application '{application.client_id}' is disabled; its tokens are refused."
        )
    principal = application.user
    principal.application = application
    verified_tokens.put(token, float(claims["exp"]) + LEEWAY_SECONDS, principal, kid)
    return principal


def _verified_claims(token: str) -> tuple[dict[str, Any], str]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise Unauthorized("The bearer token is not a well-formed JWT.") from None
    if header.get("alg") != ALGORITHM:
        raise Unauthorized(f"The bearer token must be signed with {ALGORITHM}.")
    key = keyring.verification_key(str(header.get("kid", "")))
    if key is None:
        raise Unauthorized("The bearer token was not signed by this deployment's token service.")
    try:
        claims = jwt.decode(
            token,
            key.private_key.public_key(),
            algorithms=[ALGORITHM],
            audience=vault_resource(),
            issuer=issuer(),
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "nbf", "iat", "iss", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("The access token has expired; get a new one.") from None
    except jwt.ImmatureSignatureError:
        raise Unauthorized("The access token is not valid yet (nbf).") from None
    except jwt.InvalidAudienceError:
        raise Unauthorized(
            f"The access token is for another resource; ask for '{vault_resource()}/.default'."
        ) from None
    except jwt.InvalidIssuerError:
        raise Unauthorized(f"The access token was not issued by '{issuer()}'.") from None
    except jwt.InvalidTokenError:
        raise Unauthorized("The access token's signature or claims are invalid.") from None
    # The token service never issues longer tokens, and a replaced key signs none after its
    # replacement: a token that claims otherwise was not made by the token service (a key
    # rotated because it leaked must not go on signing).
    if (
        float(claims["exp"]) - float(claims["iat"])
        > settings.KVCONSOLE_TOKEN_LIFETIME_SECONDS + LEEWAY_SECONDS
    ):
        raise Unauthorized("The access token claims a longer life than this token service gives.")
    if key.retired is not None and float(claims["iat"]) > key.retired + LEEWAY_SECONDS:
        raise Unauthorized("The access token was signed by a key that had been replaced.")
    return claims, key.kid


# --- client assertions (certificate credentials) ---------------------------------------------

# MSAL signs with RS256 and names the certificate by its SHA-1 thumbprint (x5t), or with
# PS256 and its SHA-256 thumbprint (x5t#S256).
ASSERTION_ALGORITHMS = {"RS256": "x5t", "PS256": "x5t#S256"}
MAX_ASSERTION_LIFETIME_SECONDS = 600


@dataclass(frozen=True)
class AssertionHeader:
    """What an assertion says of itself before it is verified: enough to find the
    certificate that must verify it."""

    algorithm: str
    thumbprint_field: str
    thumbprint: str
    client_id: str


def read_assertion(assertion: str) -> AssertionHeader:
    """The unverified header facts of a client assertion; Unauthorized if it is not one."""
    try:
        header = jwt.get_unverified_header(assertion)
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        raise Unauthorized(
            "AADSTS50027: JWT token is invalid or malformed.", code="invalid_client"
        ) from None
    algorithm = header.get("alg")
    if algorithm not in ASSERTION_ALGORITHMS:
        raise Unauthorized(
            "AADSTS5002738: The client assertion must be signed with RS256 (naming the "
            "certificate with x5t) or PS256 (x5t#S256).",
            code="invalid_client",
        )
    field = ASSERTION_ALGORITHMS[algorithm]
    thumbprint = _thumbprint_hex(header.get(field))
    if thumbprint is None:
        raise Unauthorized(
            f"AADSTS700027: The client assertion's header has no valid {field} thumbprint.",
            code="invalid_client",
        )
    return AssertionHeader(algorithm, field, thumbprint, str(claims.get("iss", "")))


def verify_assertion(
    assertion: str, header: AssertionHeader, credential: CertificateCredential, *, now: float
) -> dict[str, Any]:
    """The claims of `assertion`, once `credential`'s certificate verifies it and it is
    addressed to our token endpoint by the application itself, for a short while."""
    certificate = x509.load_pem_x509_certificate(credential.certificate_pem.encode())
    if not credential.not_before.timestamp() <= now < credential.not_after.timestamp():
        raise Unauthorized(
            "AADSTS700027: The certificate this assertion is signed with is outside its "
            "validity period.",
            code="invalid_client",
        )
    try:
        claims = jwt.decode(
            assertion,
            certificate.public_key(),  # type: ignore[arg-type]
            algorithms=[header.algorithm],
            audience=token_endpoint(),
            issuer=header.client_id,
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "iss", "sub", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized(
            "AADSTS700024: Client assertion is not within its valid time range.",
            code="invalid_client",
        ) from None
    except jwt.InvalidAudienceError:
        raise Unauthorized(
            f"AADSTS700016: The client assertion's audience must be '{token_endpoint()}'.",
            code="invalid_client",
        ) from None
    except (jwt.InvalidTokenError, TypeError, ValueError):
        # TypeError: a certificate whose key cannot make the assertion's algorithm (an EC
        # certificate named by an RS256 assertion).
        raise Unauthorized(
            "AADSTS700027: Client assertion failed signature validation.", code="invalid_client"
        ) from None
    if claims["sub"] != header.client_id:
        raise Unauthorized(
            "AADSTS700021: The client assertion's sub and iss must both be the client id.",
            code="invalid_client",
        )
    if float(claims["exp"]) - now > MAX_ASSERTION_LIFETIME_SECONDS + LEEWAY_SECONDS:
        raise Unauthorized(
            "AADSTS700024: Client assertion is valid for too long; "
            f"at most {MAX_ASSERTION_LIFETIME_SECONDS} seconds are accepted.",
            code="invalid_client",
        )
    return claims


def _thumbprint_hex(value: object) -> str | None:
    """A base64url thumbprint (MSAL pads it) as the upper-case hex it is stored as."""
    if not isinstance(value, str) or not value:
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw.hex().upper() if len(raw) in (20, 32) else None
