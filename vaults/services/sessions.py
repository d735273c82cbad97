"""Console sign-in and sign-out: every attempt, its outcome and any lockout, in the activity log.

Django's authentication backends and django-axes decide whether a sign-in succeeds; these
services are what records the decision, called from their signals (`vaults.signals`).
A refusal is recorded by raising the matching typed error, as every other service does, so
callers that only want the record suppress it.
"""

from datetime import timedelta

from django.utils.crypto import salted_hmac

from accounts.models import User
from kvconsole.errors import Forbidden, Unauthorized

from .. import security
from ..activity import operation
from ..models import Operation

# One message for every refused sign-in: Django's backends do not say why (no such name, a
# wrong password, a principal that may not sign in). The actor columns show whether the
# name exists.
SIGN_IN_REFUSED = "Sign-in refused: wrong user name or password."
SECOND_FACTOR_REFUSED = "Sign-in refused: wrong or expired authenticator code."

# Stands in for a user name that matches no account, followed by a keyed digest of the name.
# Django's user-name validator allows no spaces or brackets, so no person can be named so.
UNKNOWN_USER = "(unknown user)"
UNKNOWN_USER_DIGEST_LENGTH = 12


def sign_in_claimant(*, username: str) -> User:
    """The principal a sign-in attempt names, or, when it names none, an unsaved stand-in
    (with no object id) so that the attempt can still be recorded."""
    found = User.objects.filter(
        username=username[: User._meta.get_field("username").max_length]
    ).first()
    if found is not None:
        return found
    # Never saved, so it gets no object id rather than a made-up one that names nobody.
    return User(username=unknown_user_name(username), oid=None)  # type: ignore[misc]


def unknown_user_name(username: str) -> str:
    """How a user name that matches no account is recorded: never the name itself, which may
    be a password typed into the wrong field, and the activity log is append-only. A short
    digest lets repeated attempts with one name be correlated; it is keyed with SECRET_KEY
    so that nobody who reads the log can confirm a guessed name by hashing it."""
    digest = salted_hmac("vaults.sign_in.unknown_user", username, algorithm="sha256")
    return f"{UNKNOWN_USER} {digest.hexdigest()[:UNKNOWN_USER_DIGEST_LENGTH]}"


@operation(Operation.SIGN_IN)
def session_sign_in(*, actor: User) -> None:
    """Record that `actor` signed in."""


@operation(Operation.SIGN_IN)
def session_sign_in_refuse(*, actor: User) -> None:
    """Record a refused sign-in attempt as `actor` (never its password)."""
    raise Unauthorized(SIGN_IN_REFUSED)


@operation(Operation.SIGN_IN)
def session_second_factor_refuse(*, actor: User) -> None:
    """Record a sign-in as `actor` refused at its second step: the password was right, the
    authenticator's code was not."""
    raise Unauthorized(SECOND_FACTOR_REFUSED)


@operation(Operation.SIGN_IN_LOCKOUT)
def session_lockout(*, actor: User, began: bool, cool_off: timedelta | None) -> None:
    """Record that sign-in as `actor` from this address is locked out: `began` for the
    failure that reached the limit (which raises SignInLockout), otherwise for an attempt
    refused during the lockout."""
    if not began:
        raise Forbidden("Sign-in refused: locked out after too many failed sign-ins.")
    security.lockout_began(claimant=actor, cool_off=cool_off)
    if cool_off is None:
        raise Forbidden("Too many failed sign-ins: locked out until an administrator unlocks it.")
    minutes = max(1, round(cool_off.total_seconds() / 60))
    raise Forbidden(
        f"Too many failed sign-ins: locked out for {minutes} minute{'s' if minutes != 1 else ''}."
    )


@operation(Operation.SIGN_OUT)
def session_sign_out(*, actor: User) -> None:
    """Record that `actor` signed out."""
