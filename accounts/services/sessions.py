"""Console sign-in and sign-out: every attempt, its outcome and any lockout, in the activity log.

Django's authentication backends and django-axes decide whether a sign-in succeeds; these
services are what records the decision, called from their signals (`accounts.signals`).
A refusal is recorded by raising the matching typed error, as every other service does, so
callers that only want the record suppress it.
"""

from datetime import timedelta

from kvconsole.errors import Forbidden, Unauthorized
from vaults.activity import operation
from vaults.models import Operation

from ..models import User

# One message for every refused sign-in: Django's backends do not say why (no such name, a
# wrong password, a principal that may not sign in). The actor columns show whether the
# name exists.
SIGN_IN_REFUSED = "Sign-in refused: wrong user name or password."


def sign_in_claimant(*, username: str) -> User:
    """The principal a sign-in attempt names, or an unsaved stand-in carrying the attempted
    name (with no object id) when there is none, so that the attempt can still be recorded."""
    username = username[: User._meta.get_field("username").max_length]
    found = User.objects.filter(username=username).first()
    if found is not None:
        return found
    # Never saved, so it gets no object id rather than a made-up one that names nobody.
    return User(username=username, oid=None)  # type: ignore[misc]


@operation(Operation.SIGN_IN)
def session_sign_in(*, actor: User) -> None:
    """Record that `actor` signed in."""


@operation(Operation.SIGN_IN)
def session_sign_in_refuse(*, actor: User) -> None:
    """Record a refused sign-in attempt as `actor` (never its password)."""
    raise Unauthorized(SIGN_IN_REFUSED)


@operation(Operation.SIGN_IN_LOCKOUT)
def session_lockout(*, actor: User, began: bool, cool_off: timedelta | None) -> None:
    """Record that sign-in as `actor` from this address is locked out: `began` for the
    failure that reached the limit, otherwise for an attempt refused during the lockout."""
    if not began:
        raise Forbidden("Sign-in refused: locked out after too many failed sign-ins.")
    if cool_off is None:
        raise Forbidden("Too many failed sign-ins: locked out until an administrator unlocks it.")
    minutes = max(1, round(cool_off.total_seconds() / 60))
    raise Forbidden(
        f"Too many failed sign-ins: locked out for {minutes} minute{'s' if minutes != 1 else ''}."
    )


@operation(Operation.SIGN_OUT)
def session_sign_out(*, actor: User) -> None:
    """Record that `actor` signed out."""
