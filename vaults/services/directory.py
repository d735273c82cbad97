"""Applications (service principals) and their client secrets and certificates.

The models are `accounts`'s; these services live in `vaults` because they authorize and
record activity, and `accounts` may not import `vaults`.
"""

import secrets
import uuid
from datetime import datetime

from django.db import IntegrityError
from django.db.models import QuerySet
from django.utils import timezone

from accounts.certificates import read_certificate
from accounts.credentials import ApplicationCredentials, IssuedSecret, secret_hash
from accounts.models import Application, CertificateCredential, ClientSecret, User
from kvconsole.errors import BadParameter, Conflict, NotFound

from .. import activity, selectors
from ..activity import operation
from ..models import Operation
from ..permissions import DEPLOYMENT, Action, authorize

DISPLAY_NAME_MAX_LENGTH = 120
DESCRIPTION_MAX_LENGTH = 120
# As `az ad app credential reset`: one year unless told otherwise, and Entra ID's recommended
# ceiling of two.
DEFAULT_SECRET_YEARS = 1
MAX_SECRET_YEARS = 2
# 30 random bytes are exactly 40 URL-safe base64 characters: about 240 bits.
SECRET_BYTES = 30
HINT_LENGTH = 3
SALT_BYTES = 16


def years_from(moment: datetime, years: int) -> datetime:
    """`moment` moved on by whole calendar years; 29 February becomes 28 February."""
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:
        return moment.replace(year=moment.year + years, day=28)


# --- the application itself ---------------------------------------------------------------


@operation(Operation.APPLICATION_CREATE)
def application_create(*, actor: User, display_name: str) -> Application:
    """Register an application, backed by a principal of kind application that owns its grants."""
    activity.describe(target="applications")
    authorize(actor, Action.APPLICATION_CREATE, DEPLOYMENT)
    name = _clean_display_name(display_name)
    client_id = uuid.uuid4()
    activity.describe(target=_target(client_id))
    user = User(username=f"app:{client_id}", kind=User.Kind.APPLICATION, display_name=name)
    user.set_unusable_password()
    application = Application(
        client_id=client_id,
        display_name=name,
        owner=actor if actor.kind == User.Kind.USER else None,
    )
    with activity.atomic():
        user.save()
        application.user = user
        application.save()
    return application


@operation(Operation.APPLICATION_LIST)
def application_list(*, actor: User) -> QuerySet[Application]:
    """Every registered application; the directory is readable by every active principal."""
    activity.describe(target="applications")
    authorize(actor, Action.APPLICATION_READ, DEPLOYMENT)
    return Application.objects.select_related("user", "owner")


@operation(Operation.APPLICATION_GET)
def application_get(*, actor: User, client_id: str) -> Application:
    return _authorized(actor, Action.APPLICATION_READ, client_id)


@operation(Operation.APPLICATION_UPDATE)
def application_update(
    *,
    actor: User,
    client_id: str,
    display_name: str | None = None,
    enabled: bool | None = None,
) -> Application:
    """Rename, disable or enable an application; disabling it refuses it everywhere."""
    application = _authorized(actor, Action.APPLICATION_UPDATE, client_id)
    changes: dict[str, object] = {}
    if display_name is not None:
        changes["display_name"] = _clean_display_name(display_name)
    if enabled is not None:
        if not isinstance(enabled, bool):
            raise BadParameter("accountEnabled must be true or false.")
        changes["enabled"] = enabled
    with activity.atomic():
        row = _locked(application)
        for name, value in changes.items():
            setattr(row, name, value)
        row.save(update_fields=[*changes, "updated_at"])
        # authorize() refuses inactive principals, so the backing user's is_active is what
        # makes a disabled application powerless on every face, whatever grants it holds.
        user = row.user
        user.display_name = row.display_name
        user.is_active = row.enabled
        user.save(update_fields=["display_name", "is_active"])
    return row


@operation(Operation.APPLICATION_DELETE)
def application_delete(*, actor: User, client_id: str) -> None:
    """Delete an application with its principal, credentials, grants and policy entries."""
    application = _authorized(actor, Action.APPLICATION_DELETE, client_id)
    with activity.atomic():
        # Deleting the principal cascades to the application, its credentials and every
        # permission row held by it, so no grant outlives the application.
        deleted, _ = User.objects.filter(
            pk=application.user_id, kind=User.Kind.APPLICATION
        ).delete()
        if not deleted:
            raise _not_found(application.client_id)


# --- credentials ----------------------------------------------------------------------------


@operation(Operation.APPLICATION_SECRET_ADD)
def application_secret_add(
    *,
    actor: User,
    client_id: str,
    description: str = "",
    expires_at: datetime | None = None,
    replace: bool = False,
) -> IssuedSecret:
    """Add a client secret (`replace`: instead of all others); its value is returned only here."""
    application = _authorized(actor, Action.APPLICATION_UPDATE, client_id)
    description = _clean_description(description)
    expires_at = _clean_secret_expiry(expires_at)
    value = secrets.token_urlsafe(SECRET_BYTES)
    salt = secrets.token_hex(SALT_BYTES)
    credential = ClientSecret(
        application=application,
        description=description,
        hint=value[:HINT_LENGTH],
        salt=salt,
        secret_hash=secret_hash(salt, value),
        expires_at=expires_at,
    )
    target = _target(application.client_id)
    activity.describe(target=f"{target}/passwordCredentials/{credential.key_id}")
    with activity.atomic():
        _locked(application)
        if replace:
            # `az ad app credential reset` without --append: the new secret is the only one.
            ClientSecret.objects.filter(application=application).delete()
        credential.save()
    return IssuedSecret(credential=credential, value=value)


@operation(Operation.APPLICATION_CERTIFICATE_ADD)
def application_certificate_add(
    *, actor: User, client_id: str, certificate: bytes, description: str = ""
) -> CertificateCredential:
    """Register a public X.509 certificate (PEM or DER) whose private key the application holds."""
    application = _authorized(actor, Action.APPLICATION_UPDATE, client_id)
    description = _clean_description(description)
    facts = read_certificate(certificate)
    if facts.not_after <= timezone.now():
        raise BadParameter(
            f"The certificate expired on {facts.not_after:%Y-%m-%d %H:%M} UTC; upload a "
            "certificate that is still valid."
        )
    credential = CertificateCredential(
        application=application,
        description=description,
        certificate_pem=facts.pem,
        thumbprint_sha1=facts.thumbprint_sha1,
        thumbprint_sha256=facts.thumbprint_sha256,
        subject=facts.subject,
        not_before=facts.not_before,
        not_after=facts.not_after,
    )
    target = _target(application.client_id)
    activity.describe(target=f"{target}/keyCredentials/{credential.key_id}")
    duplicate = Conflict(
        f"The application already has the certificate with thumbprint {facts.thumbprint_sha1}.",
        code="CertificateAlreadyExists",
    )
    if application.certificates.filter(thumbprint_sha256=facts.thumbprint_sha256).exists():
        raise duplicate
    try:
        with activity.atomic():
            _locked(application)
            credential.save()
    except IntegrityError:
        raise duplicate from None
    return credential


@operation(Operation.APPLICATION_CREDENTIAL_LIST)
def application_credential_list(*, actor: User, client_id: str) -> ApplicationCredentials:
    """An application's client secrets and certificates: metadata only."""
    application = _authorized(actor, Action.APPLICATION_READ, client_id)
    return selectors.application_credentials(application=application)


@operation(Operation.APPLICATION_CREDENTIAL_DELETE)
def application_credential_delete(*, actor: User, client_id: str, key_id: str) -> None:
    """Revoke a client secret or a certificate: it is deleted, and no longer signs anyone in."""
    application = _authorized(actor, Action.APPLICATION_UPDATE, client_id)
    key = _parse_uuid(key_id, "keyId")
    target = _target(application.client_id)
    kinds: list[tuple[str, type[ClientSecret] | type[CertificateCredential]]] = [
        ("passwordCredentials", ClientSecret),
        ("keyCredentials", CertificateCredential),
    ]
    for kind, model in kinds:
        if model.objects.filter(application=application, key_id=key).exists():
            activity.describe(target=f"{target}/{kind}/{key}")
            with activity.atomic():
                _locked(application)
                deleted, _ = model.objects.filter(application=application, key_id=key).delete()
                if not deleted:
                    raise _credential_not_found(application, key)
            return
    activity.describe(target=f"{target}/credentials/{key}")
    raise _credential_not_found(application, key)


# --- shared ---------------------------------------------------------------------------------


def _authorized(actor: User, action: Action, client_id: str) -> Application:
    """The application `client_id`, once `actor` may perform `action` on it.

    Anyone who may read the directory may learn whether an application exists, so reading is
    authorized first and the specific action once the application is found.
    """
    activity.describe(target=_target(_client_id_text(client_id)))
    authorize(actor, Action.APPLICATION_READ, DEPLOYMENT)
    parsed = _parse_uuid(client_id, "application (client) id")
    activity.describe(target=_target(parsed))
    application = (
        Application.objects.select_related("user", "owner").filter(client_id=parsed).first()
    )
    if application is None:
        raise _not_found(parsed)
    if action is not Action.APPLICATION_READ:
        authorize(actor, action, application)
    return application


def _locked(application: Application) -> Application:
    """`application` read again and locked inside the caller's transaction: it may have been
    changed or deleted since it was authorized."""
    row = (
        Application.objects.select_for_update(of=("self",), no_key=True)
        .select_related("user", "owner")
        .filter(pk=application.pk)
        .first()
    )
    if row is None:
        raise _not_found(application.client_id)
    return row


def _not_found(client_id: uuid.UUID) -> NotFound:
    return NotFound(
        f"Resource '{client_id}' does not exist or one of its queried reference-property "
        "objects are not present.",
        code="ApplicationNotFound",
    )


def _credential_not_found(application: Application, key_id: uuid.UUID) -> NotFound:
    return NotFound(
        f"Application '{application.client_id}' has no client secret or certificate with "
        f"keyId '{key_id}'.",
        code="CredentialNotFound",
    )


def _target(client_id: object) -> str:
    return f"applications/{client_id}"


def _uuid_or_none(text: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(text))
    except ValueError:
        return None


def _parse_uuid(text: object, what: str) -> uuid.UUID:
    parsed = _uuid_or_none(text)
    if parsed is None:
        # Not echoed, for the reason _client_id_text gives.
        raise BadParameter(
            f"The {what} must be a GUID, such as 00000000-0000-0000-0000-000000000000."
        )
    return parsed


def _client_id_text(client_id: object) -> str:
    """A client id as it may be shown in messages and the activity log.

    Anything that is not a GUID is left out: the likeliest such value is a secret pasted
    into the wrong field, and the activity log is append-only.
    """
    parsed = _uuid_or_none(client_id)
    return str(parsed) if parsed is not None else "(not a GUID)"


def _clean_display_name(display_name: object) -> str:
    name = display_name.strip() if isinstance(display_name, str) else ""
    if not name or len(name) > DISPLAY_NAME_MAX_LENGTH:
        raise BadParameter(
            f"The display name must be 1-{DISPLAY_NAME_MAX_LENGTH} characters (not only spaces)."
        )
    return name


def _clean_description(description: object) -> str:
    if description is None:
        return ""
    if not isinstance(description, str) or len(description.strip()) > DESCRIPTION_MAX_LENGTH:
        raise BadParameter(
            f"The credential's display name must be text of at most {DESCRIPTION_MAX_LENGTH} "
            "characters."
        )
    return description.strip()


def _clean_secret_expiry(expires_at: datetime | None) -> datetime:
    now = timezone.now()
    if expires_at is None:
        return years_from(now, DEFAULT_SECRET_YEARS)
    if not isinstance(expires_at, datetime) or timezone.is_naive(expires_at):
        raise BadParameter("The end date must be a date and time with a time zone.")
    if expires_at <= now:
        raise BadParameter("The end date must be in the future.")
    if expires_at > years_from(now, MAX_SECRET_YEARS):
        raise BadParameter(
            f"A client secret may be valid for at most {MAX_SECRET_YEARS} years; choose an "
            "earlier end date."
        )
    return expires_at
