"""Every change to principals: people, applications and their credentials."""

from .applications import (
    ApplicationCredentials,
    IssuedSecret,
    application_certificate_add,
    application_create,
    application_credential_delete,
    application_credential_list,
    application_delete,
    application_get,
    application_list,
    application_secret_add,
    application_sign_in,
    application_update,
    years_from,
)
from .principals import cli_principal, principal_get, system_principal
from .sessions import (
    session_lockout,
    session_sign_in,
    session_sign_in_refuse,
    session_sign_out,
    sign_in_claimant,
)

__all__ = ["cli_principal", "principal_get", "system_principal"]

__all__ += [
    "ApplicationCredentials",
    "IssuedSecret",
    "application_certificate_add",
    "application_create",
    "application_credential_delete",
    "application_credential_list",
    "application_delete",
    "application_get",
    "application_list",
    "application_secret_add",
    "application_sign_in",
    "application_update",
    "years_from",
]
__all__ += [
    "session_lockout",
    "session_sign_in",
    "session_sign_in_refuse",
    "session_sign_out",
    "sign_in_claimant",
]
