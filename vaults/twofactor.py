"""Two-factor sign-in with TOTP authenticators (django-otp): who needs a code, the sign-in
that waits for one, and the middleware that holds superusers to it.

A person who has enrolled an authenticator signs in in two steps: the password first, then
a code. Between the two the session holds only who is half signed in, for a few minutes;
Django's `login()` runs after the code, so the session, the SignIn record and django-axes'
reset of earlier failures all wait for it. Superusers must have an authenticator: one who
has none yet is signed in with the password and sent to enrol one, and reaches nothing else
until the code confirms it. django-otp marks a session verified by the device that passed;
each request reloads that device, so a reset ends the verification of every session at once.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

from django.contrib.auth import login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import Resolver404, resolve, reverse
from django_htmx.http import HttpResponseClientRedirect
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import User

# Who is half signed in: their id, backend, where they were going and since when.
PENDING = "kvconsole_two_factor_pending"
PENDING_SECONDS = 300
# An authenticator being enrolled: its key, until a code confirms it.
ENROLLING = "kvconsole_two_factor_enrolling"

# What a superuser without an authenticator may still reach.
ENROLMENT_PATHS = ("two-factor", "two-factor-qr", "signout")


def device_of(user: User) -> TOTPDevice | None:
    """The person's confirmed authenticator, if any."""
    return TOTPDevice.objects.devices_for_user(user, confirmed=True).first()


@dataclass(frozen=True)
class Pending:
    user: User
    backend: str
    redirect_to: str


def begin(request: HttpRequest, user: User, redirect_to: str) -> None:
    """The password was right: wait for the code before signing `user` in."""
    backend = getattr(user, "backend", "")
    request.session.cycle_key()
    request.session[PENDING] = {
        "user": user.pk,
        "backend": backend,
        "next": redirect_to,
        "since": time.time(),
    }


def pending(request: HttpRequest) -> Pending | None:
    """Who is half signed in on this session, unless that has lapsed."""
    state = request.session.get(PENDING)
    if not state or time.time() - state["since"] > PENDING_SECONDS:
        return None
    user = User.objects.filter(pk=state["user"], is_active=True, kind=User.Kind.USER).first()
    if user is None:
        return None
    return Pending(user, state["backend"], state["next"])


def abandon(request: HttpRequest) -> None:
    request.session.pop(PENDING, None)


def finish(request: HttpRequest, waiting: Pending, device: TOTPDevice) -> None:
    """The code was right: sign in, verified by `device`."""
    abandon(request)
    login(request, waiting.user, backend=waiting.backend)
    otp_login(request, device)


class TwoFactorRequiredMiddleware:
    """Superusers reach the console and the admin only with a session an authenticator
    verified; one who has none yet is sent to enrol it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if not (user.is_authenticated and user.is_superuser) or user.is_verified():  # type: ignore[attr-defined]
            return self.get_response(request)
        if _url_name(request) in ENROLMENT_PATHS:
            return self.get_response(request)
        if device_of(user) is not None:
            # Signed in without the code (a session from before the authenticator was
            # enrolled, or one whose verification a reset ended): sign in again, with it.
            request.session.flush()
            target = f"{reverse('signin')}?{urlencode({'next': request.get_full_path()})}"
        else:
            target = reverse("two-factor")
        # django-htmx's middleware runs later; an htmx request says so in its header.
        if request.headers.get("HX-Request") == "true":
            return HttpResponseClientRedirect(target)
        return redirect(target)


def _url_name(request: HttpRequest) -> str | None:
    try:
        return resolve(request.path_info).url_name
    except Resolver404:
        return None
