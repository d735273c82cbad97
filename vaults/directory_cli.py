"""`kv ad app ...`: applications and their credentials, shaped like `az ad app`.

Here rather than in `accounts` because it calls the directory services, which authorize and
record activity in `vaults`; the Graph shapes it prints are `accounts`'s.
"""

import argparse
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from accounts import shapes
from accounts.models import WorkloadIdentity
from kvconsole.cli import Invocation, boolean, group, leaf, moment
from kvconsole.errors import BadParameter

from . import services
from .services.directory import DEFAULT_SECRET_YEARS, MAX_SECRET_YEARS

_APP_COLUMNS = ("appId", "displayName", "accountEnabled", "owner", "createdDateTime")


def register(commands: Any) -> None:
    directory = group(commands, "ad", "Manage the directory: applications and their credentials.")
    apps = group(directory, "app", "Manage applications (service principals).")
    _register_apps(apps)
    _register_credentials(group(apps, "credential", "Manage an application's credentials."))
    _register_certificates(group(apps, "cert", "Manage an application's certificates."))
    _register_identities(
        group(apps, "identity", "Bind workloads to an application (managed identities).")
    )
    users = group(directory, "user", "Manage people's sign-in.")
    two_factor = group(users, "two-factor", "Manage a person's authenticator (TOTP).")
    reset = leaf(
        two_factor,
        "reset",
        _two_factor_reset,
        "Remove a person's authenticator (one who lost it): they sign in with the password "
        "again, and a superuser enrols a new one at the next sign-in.",
    )
    reset.add_argument("--name", required=True, dest="username", help="The person's user name.")
    token_key = group(commands, "token-key", "Manage the token service's signing key.")
    rotate = leaf(
        token_key,
        "rotate",
        _token_key_rotate,
        "Make a new signing key; tokens signed by the previous one stay valid until they expire.",
    )
    rotate.add_argument(
        "--drop-previous",
        action="store_true",
        help="After a leak: refuse every token the previous keys signed, at once.",
    )


def _app_id(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--id", required=True, dest="app_id", help="The application (client) id.")


def _register_apps(commands: Any) -> None:
    create = leaf(commands, "create", _create, "Register an application.")
    create.add_argument("--display-name", required=True)
    leaf(commands, "list", _list, "List applications.", columns=_APP_COLUMNS)
    show = leaf(commands, "show", _show, "Show an application.")
    _app_id(show)
    update = leaf(commands, "update", _update, "Rename, disable or enable an application.")
    _app_id(update)
    update.add_argument("--display-name")
    update.add_argument(
        "--enabled", type=boolean, help="false: the application can no longer sign in or act."
    )
    delete = leaf(
        commands, "delete", _delete, "Delete an application, its credentials and its grants."
    )
    _app_id(delete)


def _register_credentials(commands: Any) -> None:
    reset = leaf(
        commands,
        "reset",
        _reset,
        "Create a client secret and print it once; without --append it replaces the others.",
    )
    _app_id(reset)
    reset.add_argument("--display-name", default="", help="A description of the secret.")
    validity = reset.add_mutually_exclusive_group()
    validity.add_argument(
        "--years",
        type=int,
        help=f"Valid for this many years (default {DEFAULT_SECRET_YEARS}, at most "
        f"{MAX_SECRET_YEARS}).",
    )
    validity.add_argument("--end-date", type=moment, help="Expiry, ISO-8601 (UTC if no zone).")
    reset.add_argument(
        "--append", action="store_true", help="Keep the application's existing secrets."
    )
    listing = leaf(commands, "list", _credential_list, "List an application's credentials.")
    _app_id(listing)
    delete = leaf(
        commands, "delete", _credential_delete, "Revoke (delete) a client secret or certificate."
    )
    _app_id(delete)
    delete.add_argument("--key-id", required=True, help="The credential's keyId.")


def _register_certificates(commands: Any) -> None:
    upload = leaf(commands, "upload", _cert_upload, "Add a public certificate credential.")
    _app_id(upload)
    upload.add_argument(
        "--cert", required=True, help="A PEM or DER certificate file (PATH or @PATH)."
    )
    upload.add_argument("--display-name", default="", help="A description of the certificate.")


def _register_identities(commands: Any) -> None:
    add = leaf(
        commands,
        "add",
        _identity_add,
        "Bind a workload to the application; prints its IDENTITY_ENDPOINT and IDENTITY_HEADER "
        "once.",
    )
    _app_id(add)
    add.add_argument("--display-name", default="", help="Which workload this is.")
    listing = leaf(commands, "list", _identity_list, "List the workloads bound to an application.")
    _app_id(listing)
    delete = leaf(commands, "delete", _identity_delete, "Unbind a workload.")
    _app_id(delete)
    delete.add_argument("--key-id", required=True, help="The workload identity's keyId.")


def _identity(identity: WorkloadIdentity) -> dict[str, Any]:
    return {
        "keyId": str(identity.key_id),
        "displayName": identity.description or None,
        "hint": identity.hint,
        "createdDateTime": identity.created_at.isoformat(),
    }


def _identity_add(run: Invocation) -> Any:
    issued = services.workload_identity_add(
        actor=run.actor, client_id=run.options.app_id, description=run.options.display_name
    )
    return {
        **_identity(issued.identity),
        "identityEndpoint": f"https://{settings.KVCONSOLE_CONSOLE_HOST}/msi/token",
        "identityHeader": issued.secret,
    }


def _identity_list(run: Invocation) -> Any:
    return [
        _identity(identity)
        for identity in services.workload_identity_list(
            actor=run.actor, client_id=run.options.app_id
        )
    ]


def _identity_delete(run: Invocation) -> Any:
    services.workload_identity_delete(
        actor=run.actor, client_id=run.options.app_id, key_id=run.options.key_id
    )


def _token_key_rotate(run: Invocation) -> Any:
    key = services.token_signing_key_rotate(
        actor=run.actor, drop_previous=run.options.drop_previous
    )
    return {"kid": key.kid, "created": key.created}


def _two_factor_reset(run: Invocation) -> Any:
    removed = services.two_factor_reset(actor=run.actor, username=run.options.username)
    return {"userPrincipalName": run.options.username, "authenticatorsRemoved": removed}


def _create(run: Invocation) -> Any:
    return shapes.application(
        services.application_create(actor=run.actor, display_name=run.options.display_name)
    )


def _list(run: Invocation) -> Any:
    return [shapes.application(item) for item in services.application_list(actor=run.actor)]


def _show(run: Invocation) -> Any:
    return shapes.application(
        services.application_get(actor=run.actor, client_id=run.options.app_id)
    )


def _update(run: Invocation) -> Any:
    options = run.options
    return shapes.application(
        services.application_update(
            actor=run.actor,
            client_id=options.app_id,
            display_name=options.display_name,
            enabled=options.enabled,
        )
    )


def _delete(run: Invocation) -> Any:
    services.application_delete(actor=run.actor, client_id=run.options.app_id)


def _reset(run: Invocation) -> Any:
    options = run.options
    expires_at = options.end_date
    if options.years is not None:
        if options.years < 1:
            raise BadParameter("--years must be at least 1.")
        expires_at = services.years_from(timezone.now(), options.years)
    issued = services.application_secret_add(
        actor=run.actor,
        client_id=options.app_id,
        description=options.display_name,
        expires_at=expires_at,
        replace=not options.append,
    )
    return shapes.issued_secret(issued)


def _credential_list(run: Invocation) -> Any:
    return shapes.credentials(
        services.application_credential_list(actor=run.actor, client_id=run.options.app_id)
    )


def _credential_delete(run: Invocation) -> Any:
    services.application_credential_delete(
        actor=run.actor, client_id=run.options.app_id, key_id=run.options.key_id
    )


def _cert_upload(run: Invocation) -> Any:
    options = run.options
    # az takes `@file` for file contents; a bare path works too.
    path = Path(options.cert.removeprefix("@"))
    try:
        certificate = path.read_bytes()
    except OSError as error:
        raise BadParameter(f"Cannot read {path}: {error.strerror}.") from None
    return shapes.key_credential(
        services.application_certificate_add(
            actor=run.actor,
            client_id=options.app_id,
            certificate=certificate,
            description=options.display_name,
        )
    )
