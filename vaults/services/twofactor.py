"""A person's TOTP authenticator (django-otp): enrolled by its owner, reset by a deployment
principal when it is lost. Checking a code at sign-in is part of signing in, recorded as
SignIn through the session services (vaults/signals.py)."""

from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import User
from kvconsole.errors import BadParameter, Conflict, Forbidden, NotFound

from .. import activity
from ..activity import operation
from ..models import Operation
from ..permissions import DEPLOYMENT, Action, authorize

AUTHENTICATOR_NAME = "Authenticator app"


def _target(username: str) -> str:
    return f"users/{username}/authenticator"


@operation(Operation.TWO_FACTOR_ENROL)
def two_factor_enrol(*, actor: User, key: str, code: str) -> TOTPDevice:
    """Enrol the authenticator holding `key` (hex), once `code` shows that it works."""
    activity.describe(target=_target(actor.username))
    if actor.kind != User.Kind.USER:
        raise Forbidden("Only people sign in, so only people enrol an authenticator.")
    if TOTPDevice.objects.devices_for_user(actor, confirmed=True).exists():
        raise Conflict(
            "You already have an authenticator. To replace it, ask a superuser to reset it."
        )
    with activity.atomic():
        TOTPDevice.objects.devices_for_user(actor, confirmed=False).delete()
        device = TOTPDevice.objects.create(
            user=actor, name=AUTHENTICATOR_NAME, key=key, confirmed=False
        )
        if not device.verify_token(code.strip()):
            # Rolled back with the device: nothing of a failed enrolment stays.
            raise BadParameter(
                "That code is wrong or expired. Enter the code your authenticator shows now."
            )
        device.confirmed = True
        device.save(update_fields=["confirmed"])
    return device


@operation(Operation.TWO_FACTOR_RESET)
def two_factor_reset(*, actor: User, username: str) -> int:
    """Remove every authenticator of the person named `username` (one who lost theirs), so
    that they sign in with the password again, or as a superuser enrol a new one; sessions
    the removed authenticator verified lose that at once. How many were removed."""
    activity.describe(target=_target(username)[:400])
    authorize(actor, Action.TWO_FACTOR_RESET, DEPLOYMENT)
    person = User.objects.filter(username=username, kind=User.Kind.USER).first()
    if person is None:
        raise NotFound(f"No person is named '{username}'.")
    with activity.atomic():
        removed, _ = TOTPDevice.objects.filter(user=person).delete()
    return removed
