"""Microsoft Graph shapes of applications and their credentials, as `az ad app` prints them.

Credentials are described by their metadata only; no shape here can hold a secret's value,
salt or hash.
"""

from datetime import UTC, datetime
from typing import Any

from .credentials import ApplicationCredentials, IssuedSecret
from .models import Application, CertificateCredential, ClientSecret


def graph_time(moment: datetime) -> str:
    """Graph's DateTimeOffset: UTC with a trailing Z."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def application(app: Application) -> dict[str, Any]:
    return {
        "appId": str(app.client_id),
        "displayName": app.display_name,
        # The service principal's object id is the backing principal's: grants name it.
        "id": str(app.user.oid),
        "accountEnabled": app.enabled,
        "owner": app.owner.username if app.owner else None,
        "createdDateTime": graph_time(app.created_at),
    }


def password_credential(secret: ClientSecret) -> dict[str, Any]:
    return {
        "keyId": str(secret.key_id),
        "displayName": secret.description or None,
        "hint": secret.hint,
        "startDateTime": graph_time(secret.created_at),
        "endDateTime": graph_time(secret.expires_at),
    }


def key_credential(certificate: CertificateCredential) -> dict[str, Any]:
    return {
        "keyId": str(certificate.key_id),
        "displayName": certificate.description or None,
        "customKeyIdentifier": certificate.thumbprint_sha1,
        "thumbprintSha256": certificate.thumbprint_sha256,
        "subject": certificate.subject,
        "startDateTime": graph_time(certificate.not_before),
        "endDateTime": graph_time(certificate.not_after),
        "type": "AsymmetricX509Cert",
        "usage": "Verify",
    }


def credentials(found: ApplicationCredentials) -> dict[str, Any]:
    return {
        "appId": str(found.application.client_id),
        "passwordCredentials": [password_credential(secret) for secret in found.secrets],
        "keyCredentials": [key_credential(certificate) for certificate in found.certificates],
    }


def issued_secret(issued: IssuedSecret) -> dict[str, Any]:
    """What `az ad app credential reset` prints: the only time the value is ever shown."""
    # az also prints "tenant"; the deployment has no tenant id, and none is made up.
    return {
        "appId": str(issued.credential.application.client_id),
        "password": issued.value,
    }
