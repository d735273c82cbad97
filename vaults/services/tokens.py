"""Signing applications in, for access tokens to the vaults.

The token endpoint's client-credentials grant authenticates an application by a client
secret or by a client assertion signed with a registered certificate; the managed-identity
endpoint authenticates a workload by the identity secret its host gave it. Each attempt is
one ApplicationSignIn entry, successful or not. Refusals carry Entra ID's error codes
(`invalid_client`, `unauthorized_client`, ...) and AADSTS-style descriptions.
"""

import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from accounts import tokens
from accounts.credentials import secret_hash
from accounts.models import (
    Application,
    CertificateCredential,
    ClientSecret,
    User,
    WorkloadIdentity,
)
from kvconsole.errors import BadParameter, NotFound, Unauthorized

from .. import activity, selectors
from ..activity import operation
from ..models import Operation
from ..permissions import DEPLOYMENT, Action, authorize
from .directory import (
    HINT_LENGTH,
    _authorized,
    _clean_description,
    _client_id_text,
    _locked,
    _target,
    _uuid_or_none,
)

CLIENT_CREDENTIALS = "client_credentials"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MANAGED_IDENTITY_API_VERSION = "2019-08-01"
# 32 random bytes: 43 URL-safe base64 characters.
IDENTITY_SECRET_BYTES = 32


@dataclass(frozen=True)
class Credential:
    """What a token request proves the application's identity with: one of these."""

    secret: str | None = field(default=None, repr=False)
    assertion: str | None = field(default=None, repr=False)
    assertion_type: str | None = None


# --- the token endpoint ----------------------------------------------------------------------


def application_sign_in(*, client_id: str, secret: str) -> User:
    """The application's principal, if `secret` is one of its live client secrets."""
    application = _application(client_id)
    return _sign_in(
        actor=_actor(application, client_id),
        client_id=client_id,
        application=application,
        credential=Credential(secret=secret),
    ).user


def token_issue(
    *, tenant: str, grant_type: str, client_id: str, scope: str, credential: Credential
) -> tokens.IssuedToken:
    """An access token for the vaults, for an application that proves who it is.

    With a client assertion the client id may be left out; the assertion names it.
    """
    if not client_id and credential.assertion:
        client_id = _assertion_client_id(credential.assertion)
    application = _application(client_id)
    return _token_issue(
        actor=_actor(application, client_id),
        tenant=tenant,
        grant_type=grant_type,
        client_id=client_id,
        scope=scope,
        application=application,
        credential=credential,
    )


@operation(Operation.APPLICATION_SIGN_IN)
def _token_issue(
    *,
    actor: User,
    tenant: str,
    grant_type: str,
    client_id: str,
    scope: str,
    application: Application | None,
    credential: Credential,
) -> tokens.IssuedToken:
    activity.describe(target=_target(_client_id_text(client_id)))
    _check_tenant(tenant)
    if grant_type != CLIENT_CREDENTIALS:
        raise BadParameter(
            f"AADSTS70003: The app requested an unsupported grant type '{grant_type[:40]}'; "
            "this token service issues tokens for the client_credentials grant only.",
            code="unsupported_grant_type",
        )
    audience = _audience(scope, tenant)
    signed_in = _authenticated(client_id, application, credential)
    return tokens.issue_access_token(signed_in, audience=audience)


@operation(Operation.APPLICATION_SIGN_IN)
def _sign_in(
    *, actor: User, client_id: str, application: Application | None, credential: Credential
) -> Application:
    activity.describe(target=_target(_client_id_text(client_id)))
    return _authenticated(client_id, application, credential)


def _authenticated(
    client_id: str, application: Application | None, credential: Credential
) -> Application:
    shown_id = _client_id_text(client_id)
    if application is None:
        raise Unauthorized(
            f"AADSTS700016: Application with identifier '{shown_id}' was not found in the "
            "directory. Check the client id, or register the application (kv ad app create).",
            code="unauthorized_client",
        )
    _refuse_if_disabled(application)
    if credential.assertion is not None:
        _check_assertion(application, credential)
    elif credential.secret is not None:
        _check_secret(application, credential.secret)
    else:
        raise Unauthorized(
            "AADSTS7000218: The request body must contain the following parameter: "
            "'client_assertion' or 'client_secret'.",
            code="invalid_client",
        )
    return application


def _refuse_if_disabled(application: Application) -> None:
    if not application.enabled or not application.user.is_active:
        raise Unauthorized(
            f"AADSTS7000112: Application '{application.client_id}'"
            f"({application.display_name}) is disabled.",
            code="unauthorized_client",
        )


def _check_secret(application: Application, secret: str) -> None:
    matched = _matching_secret(application, secret)
    if matched is None:
        raise Unauthorized(
            "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the "
            "request is the client secret value, not the client secret ID, for a secret added "
            f"to app '{application.client_id}'.",
            code="invalid_client",
        )
    if matched.expires_at <= timezone.now():
        raise Unauthorized(
            f"AADSTS7000222: The provided client secret keys for app '{application.client_id}' "
            "are expired. Create a new secret (kv ad app credential reset --append) or use a "
            "certificate credential.",
            code="invalid_client",
        )


def _matching_secret(application: Application, secret: str) -> ClientSecret | None:
    if not isinstance(secret, str) or not secret:
        return None
    matched = None
    for candidate in ClientSecret.objects.filter(application=application).only(
        "key_id", "salt", "secret_hash", "expires_at"
    ):
        # Every candidate is compared, in constant time, so timing says nothing about which
        # stored hash came close.
        if hmac.compare_digest(secret_hash(candidate.salt, secret), candidate.secret_hash):
            matched = candidate
    return matched


def _check_assertion(application: Application, credential: Credential) -> None:
    if credential.assertion_type != JWT_BEARER:
        raise BadParameter(
            f"AADSTS50027: client_assertion_type must be '{JWT_BEARER}'.", code="invalid_request"
        )
    assert credential.assertion is not None
    header = tokens.read_assertion(credential.assertion)
    if header.client_id != str(application.client_id):
        raise Unauthorized(
            "AADSTS700021: The client assertion's issuer is not the client id of the request.",
            code="invalid_client",
        )
    lookup = {
        "thumbprint_sha1" if header.thumbprint_field == "x5t" else "thumbprint_sha256": (
            header.thumbprint
        )
    }
    certificate = CertificateCredential.objects.filter(application=application, **lookup).first()
    if certificate is None:
        raise Unauthorized(
            f"AADSTS700027: The certificate with identifier used to sign the client assertion "
            f"is not registered on application '{application.client_id}'.",
            code="invalid_client",
        )
    # The jti is not held against reuse: MSAL signs one assertion and sends it with every
    # token request for ten minutes, as Entra ID allows; its short life is the bound.
    tokens.verify_assertion(credential.assertion, header, certificate, now=time.time())


def _check_tenant(tenant: str) -> None:
    if not tokens.is_our_tenant(tenant):
        raise BadParameter(
            f"AADSTS90002: Tenant '{tenant[:64]}' not found. This token service serves tenant "
            f"'{settings.KVCONSOLE_TENANT_ID}'.",
            code="invalid_request",
        )


def _audience(scope: str, tenant: str) -> str:
    """The vault resource a `.default` scope asks for; other resources are not ours."""
    resource = tokens.vault_resource()
    requested = [part for part in scope.split() if part.endswith("/.default")]
    if len(requested) != 1:
        raise BadParameter(
            f"AADSTS1002012: The provided value for scope is not valid: ask for "
            f"'{resource}/.default'.",
            code="invalid_scope",
        )
    asked = requested[0].removesuffix("/.default").rstrip("/")
    if asked.lower() != resource.lower():
        raise BadParameter(
            f"AADSTS500011: The resource principal named {asked[:200]} was not found in the "
            f"tenant named {tenant}. This token service issues tokens for {resource}.",
            code="invalid_scope",
        )
    return resource


def _assertion_client_id(assertion: str) -> str:
    try:
        return tokens.read_assertion(assertion).client_id
    except Unauthorized:
        # The sign-in records and reports the malformed assertion.
        return ""


def _application(client_id: str) -> Application | None:
    parsed = _uuid_or_none(client_id)
    if parsed is None:
        return None
    return Application.objects.select_related("user").filter(client_id=parsed).first()


def _actor(application: Application | None, client_id: str) -> User:
    if application is not None:
        return application.user
    # No object id: none exists, and a made-up one would look like a real principal's.
    return User(  # type: ignore[misc]
        username=_client_id_text(client_id), kind=User.Kind.APPLICATION, oid=None
    )


@operation(Operation.TOKEN_KEY_ROTATE)
def token_signing_key_rotate(*, actor: User, drop_previous: bool = False) -> tokens.SigningKey:
    """A new token-signing key; tokens signed by the previous one stay valid until they
    expire (unless `drop_previous`: after a leak, refused at once), and keys whose tokens
    have all expired are dropped."""
    activity.describe(target="tokenSigningKeys")
    authorize(actor, Action.TOKEN_KEY_ROTATE, DEPLOYMENT)
    return tokens.rotate_signing_key(drop_previous=drop_previous)


# --- managed identities ----------------------------------------------------------------------


def managed_identity_token_issue(
    *, api_version: str, identity_secret: str, resource: str, client_id: str = ""
) -> tuple[tokens.IssuedToken, Application]:
    """A token for the application a workload's identity secret is bound to.

    As App Service's identity endpoint: the workload's host gives it IDENTITY_ENDPOINT and
    IDENTITY_HEADER; `client_id`, when given, must name the bound application.
    """
    identity = (
        WorkloadIdentity.objects.select_related("application__user")
        .filter(secret_hash=_identity_hash(identity_secret))
        .first()
        if identity_secret
        else None
    )
    application = identity.application if identity else None
    actor = _actor(application, str(application.client_id) if application else "")
    issued = _managed_identity_issue(
        actor=actor,
        api_version=api_version,
        identity=identity,
        resource=resource,
        client_id=client_id,
    )
    assert application is not None
    return issued, application


@operation(Operation.APPLICATION_SIGN_IN)
def _managed_identity_issue(
    *,
    actor: User,
    api_version: str,
    identity: WorkloadIdentity | None,
    resource: str,
    client_id: str,
) -> tokens.IssuedToken:
    if api_version != MANAGED_IDENTITY_API_VERSION:
        activity.describe(target="applications/workloadIdentities")
        raise BadParameter(
            f"The api-version must be {MANAGED_IDENTITY_API_VERSION}.", code="invalid_request"
        )
    if identity is None:
        activity.describe(target="applications/workloadIdentities")
        raise Unauthorized(
            "The identity header is missing or names no workload identity of this deployment.",
            code="invalid_client",
        )
    application = identity.application
    activity.describe(
        target=f"{_target(application.client_id)}/workloadIdentities/{identity.key_id}"
    )
    if client_id and _uuid_or_none(client_id) != application.client_id:
        raise BadParameter(
            f"This workload's identity is application '{application.client_id}', not "
            f"'{_client_id_text(client_id)}'.",
            code="invalid_request",
        )
    _refuse_if_disabled(application)
    wanted = resource.removesuffix("/.default").rstrip("/")
    if wanted.lower() != tokens.vault_resource().lower():
        raise BadParameter(
            f"This identity endpoint issues tokens for {tokens.vault_resource()}, not "
            f"'{wanted[:200]}'.",
            code="invalid_resource",
        )
    return tokens.issue_access_token(application, audience=tokens.vault_resource())


def _identity_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class IssuedIdentity:
    """A new workload identity: its record and, this one time only, its secret."""

    identity: WorkloadIdentity
    secret: str = field(repr=False)


@operation(Operation.WORKLOAD_IDENTITY_ADD)
def workload_identity_add(*, actor: User, client_id: str, description: str = "") -> IssuedIdentity:
    """Bind a new workload to the application: its identity secret is returned only here."""
    application = _authorized(actor, Action.APPLICATION_UPDATE, client_id)
    description = _clean_description(description)
    secret = secrets.token_urlsafe(IDENTITY_SECRET_BYTES)
    identity = WorkloadIdentity(
        application=application,
        description=description,
        hint=secret[:HINT_LENGTH],
        secret_hash=_identity_hash(secret),
    )
    activity.describe(
        target=f"{_target(application.client_id)}/workloadIdentities/{identity.key_id}"
    )
    with activity.atomic():
        _locked(application)
        identity.save()
    return IssuedIdentity(identity, secret)


@operation(Operation.WORKLOAD_IDENTITY_LIST)
def workload_identity_list(*, actor: User, client_id: str) -> QuerySet[WorkloadIdentity]:
    application = _authorized(actor, Action.APPLICATION_READ, client_id)
    return selectors.workload_identity_list(application=application)


@operation(Operation.WORKLOAD_IDENTITY_DELETE)
def workload_identity_delete(*, actor: User, client_id: str, key_id: str) -> None:
    """Unbind a workload: its identity secret buys no more tokens."""
    application = _authorized(actor, Action.APPLICATION_UPDATE, client_id)
    parsed = _uuid_or_none(key_id) or uuid.UUID(int=0)
    activity.describe(target=f"{_target(application.client_id)}/workloadIdentities/{parsed}")
    with activity.atomic():
        _locked(application)
        deleted, _ = WorkloadIdentity.objects.filter(
            application=application, key_id=parsed
        ).delete()
        if not deleted:
            raise NotFound(
                f"Application '{application.client_id}' has no workload identity with keyId "
                f"'{str(key_id)[:40]}'.",
                code="CredentialNotFound",
            )
