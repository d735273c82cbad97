"""Vault endpoint requests that are refused before they reach an operation.

No credential, a token that does not verify, an api-version the endpoint does not serve, a
body that is not JSON or too large, a path the endpoint does not have: each is still a
request, and each is recorded, under the operation it asked for.
"""

import contextlib

from accounts.models import User
from kvconsole.errors import ServiceError

from .. import activity


def anonymous_caller() -> User:
    """The actor of a request that presented no usable credential: unsaved, so it has no
    object id rather than a made-up one."""
    return User(  # type: ignore[misc]
        username="(anonymous)",
        display_name="Unauthenticated caller",
        kind=User.Kind.APPLICATION,
        oid=None,
    )


def request_refuse(
    *, actor: User, operation: str, error: ServiceError, vault_name: str, target: str = ""
) -> None:
    """Record `error` as the outcome of a request for `operation` on `vault_name`."""

    @activity.operation(operation)  # type: ignore[arg-type]
    def refuse(*, actor: User) -> None:
        activity.describe(vault=vault_name, target=target or f"vaults/{vault_name}")
        raise error

    with contextlib.suppress(ServiceError):
        refuse(actor=actor)
