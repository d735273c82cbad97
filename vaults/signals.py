"""Sign-in events from Django's auth and django-axes, recorded through the session services.

Django and django-axes decide sign-ins and lockouts in their own code, so their signals are
the one place where every decision can be seen; `connect()` is called from the app's ready().
The request's face and client IP reach the activity log from the middleware, not from here.
"""

from contextlib import suppress
from datetime import timedelta
from typing import Any

from axes.helpers import get_cool_off
from axes.models import AccessAttempt
from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.http import HttpRequest

from accounts.models import User
from kvconsole.errors import Forbidden, Unauthorized

from . import services


def connect() -> None:
    user_logged_in.connect(_signed_in, dispatch_uid="vaults.signed_in")
    user_login_failed.connect(_sign_in_failed, dispatch_uid="vaults.sign_in_failed")
    user_locked_out.connect(_locked_out, dispatch_uid="vaults.locked_out")
    user_logged_out.connect(_signed_out, dispatch_uid="vaults.signed_out")


def axes_username(request: HttpRequest, credentials: dict[str, Any] | None) -> str | None:
    """The user name django-axes files an attempt under (AXES_USERNAME_CALLABLE): the name as
    typed, cut to what its tables hold. PostgreSQL refuses a longer one where SQLite keeps
    it, and the sign-in would fail with a server error instead of being refused."""
    field = getattr(settings, "AXES_USERNAME_FORM_FIELD", "username")
    typed = (credentials or getattr(request, "data", request.POST)).get(field)
    return typed[: AccessAttempt._meta.get_field("username").max_length] if typed else typed


def _signed_in(sender: Any, request: HttpRequest | None, user: User, **kwargs: Any) -> None:
    services.session_sign_in(actor=user)


def _sign_in_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    # An attempt refused because of a lockout is recorded once, as the lockout.
    if not _refused_during_lockout(request):
        # `credentials` comes cleansed (the password masked); only the user name is read.
        _record_failure(request, str(credentials.get(User.USERNAME_FIELD) or ""))


def _locked_out(
    sender: Any, request: HttpRequest | None, username: str | None, **kwargs: Any
) -> None:
    began = not _refused_during_lockout(request)
    if began:
        # The failure that reached the limit goes in the log before the lockout it brought.
        _record_failure(request, username or "")
    with suppress(Forbidden):
        services.session_lockout(
            actor=services.sign_in_claimant(username=username or ""),
            began=began,
            cool_off=get_cool_off(request),
        )


def _signed_out(sender: Any, request: HttpRequest | None, user: User | None, **kwargs: Any) -> None:
    # Signing out without a session (a stale page's button) has nobody to record.
    if user is not None:
        services.session_sign_out(actor=user)


def second_factor_refused(request: HttpRequest, user: User) -> None:
    """A wrong authenticator code after the right password: recorded as a refused sign-in,
    and told to django-axes as a failed one, so that wrong codes count towards the lockout
    of the user name and address exactly as wrong passwords do."""
    setattr(request, _FAILURE_RECORDED, True)
    with suppress(Unauthorized):
        services.session_second_factor_refuse(actor=user)
    user_login_failed.send(
        sender=__name__, credentials={User.USERNAME_FIELD: user.get_username()}, request=request
    )


def refused_during_lockout(request: HttpRequest, user: User, cool_off: timedelta | None) -> None:
    """A sign-in's second step reached while its user name and address are locked out."""
    with suppress(Forbidden):
        services.session_lockout(actor=user, began=False, cool_off=cool_off)


def _refused_during_lockout(request: HttpRequest | None) -> bool:
    """Whether django-axes refused this attempt for an existing lockout, before any password
    was checked: its backend marks such a request locked out, and (with
    AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT off, as in settings) only an attempt whose
    password was checked is counted in `axes_failures_since_start`. A checked attempt is
    marked locked out only after it is counted, so the answer does not depend on whether
    django-axes's receivers or ours run first."""
    return (
        getattr(request, "axes_locked_out", False) is True
        and getattr(request, "axes_failures_since_start", None) is None
    )


# Set on a request whose failed attempt has been recorded. Both receivers above may see the
# same failure, and which of them runs first depends on the order django-axes's receivers
# and ours were connected in.
_FAILURE_RECORDED = "kvconsole_sign_in_failure_recorded"


def _record_failure(request: HttpRequest | None, username: str) -> None:
    if getattr(request, _FAILURE_RECORDED, False):
        return
    if request is not None:
        setattr(request, _FAILURE_RECORDED, True)
    with suppress(Unauthorized):
        services.session_sign_in_refuse(actor=services.sign_in_claimant(username=username))
