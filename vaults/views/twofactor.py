"""Two-factor pages: sign-in with its second step, the admin's sign-in (the same one), and a
person's authenticator: enrol it, with its QR code.

The QR code is an SVG image served by its own URL from the key held in the session while
enrolling, so the page needs neither inline images (`data:` URIs) nor scripts beyond what
its Content-Security-Policy allows. The key is shown in the responses of the enrolment and
never cached.
"""

import base64
import io
from typing import Any
from urllib.parse import urlencode

import qrcode
from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_cool_off, get_lockout_response
from django import forms
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import AuthenticationForm
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods
from django_otp import login as otp_login
from django_otp import verify_token
from django_otp.plugins.otp_totp.models import TOTPDevice, default_key
from qrcode.image.svg import SvgPathImage

from kvconsole.console import done, page, posted
from kvconsole.errors import BadParameter
from kvconsole.http import AuthedRequest

from .. import services, signals, twofactor
from ..services.twofactor import AUTHENTICATOR_NAME


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Code from your authenticator app",
        max_length=10,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}
        ),
    )


class SignInView(auth_views.LoginView):
    """Django's sign-in, which for a person with an authenticator waits for its code."""

    redirect_authenticated_user = True

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        user = form.get_user()
        if twofactor.device_of(user) is None:
            return super().form_valid(form)
        twofactor.begin(self.request, user, self.get_success_url())
        return redirect("signin-code")


@login_not_required
def admin_sign_in(request: HttpRequest, extra_context: Any = None) -> HttpResponse:
    """The admin signs in through the console's sign-in, so that it asks for the code too."""
    destination = request.GET.get("next") or reverse("admin:index")
    return redirect(f"{reverse('signin')}?{urlencode({'next': destination})}")


@login_not_required
@sensitive_post_parameters("code")
@require_http_methods(["GET", "POST"])
def sign_in_code(request: HttpRequest) -> HttpResponseBase:
    """The second step of a sign-in: the authenticator's code. A wrong one counts as a
    failed sign-in towards django-axes' lockout."""
    waiting = twofactor.pending(request)
    if waiting is None:
        return redirect("signin")
    credentials = {"username": waiting.user.get_username()}
    if AxesProxyHandler.is_locked(request, credentials):
        # Locked out meanwhile (from another tab or browser): no code is checked.
        twofactor.abandon(request)
        signals.refused_during_lockout(request, waiting.user, get_cool_off(request))
        return get_lockout_response(request, credentials=credentials)
    form = CodeForm(posted(request))
    if form.is_valid():
        device = twofactor.device_of(waiting.user)
        if device is not None and verify_token(
            waiting.user, device.persistent_id, form.cleaned_data["code"].strip()
        ):
            twofactor.finish(request, waiting, device)
            return redirect(waiting.redirect_to)
        signals.second_factor_refused(request, waiting.user)
        if getattr(request, "axes_locked_out", False):
            # django-axes' middleware answers with its lockout page.
            twofactor.abandon(request)
        form.add_error("code", "That code is wrong or expired.")
    return render(request, "registration/signin_code.html", {"form": form})


@sensitive_post_parameters("code")
@sensitive_variables("key")
@require_http_methods(["GET", "POST"])
def two_factor(request: AuthedRequest) -> HttpResponse:
    """One's authenticator: whether it is enrolled, and if not, enrol one."""
    if twofactor.device_of(request.user) is not None:
        return page(request, "vaults/two_factor.html", {"enrolled": True})
    key = request.session.get(twofactor.ENROLLING) or default_key()
    request.session[twofactor.ENROLLING] = key
    form = CodeForm(posted(request))
    if form.is_valid():
        try:
            device = services.two_factor_enrol(
                actor=request.user, key=key, code=form.cleaned_data["code"]
            )
        except BadParameter as refusal:
            form.add_error("code", refusal.message)
        else:
            del request.session[twofactor.ENROLLING]
            otp_login(request, device)
            return done(
                request,
                "Your authenticator is enrolled: from now on, signing in asks for its code.",
                reverse("overview"),
            )
    response = page(
        request,
        "vaults/two_factor.html",
        {
            "enrolled": False,
            "form": form,
            "required": request.user.is_superuser,
            "secret": _grouped(base64.b32encode(bytes.fromhex(key)).decode()),
        },
    )
    add_never_cache_headers(response)
    return response


@require_GET
@sensitive_variables("key")
def two_factor_qr(request: AuthedRequest) -> HttpResponse:
    """The QR code of the authenticator being enrolled, as an SVG image."""
    key = request.session.get(twofactor.ENROLLING)
    if not key:
        raise Http404("No authenticator is being enrolled.")
    device = TOTPDevice(user=request.user, key=key, name=AUTHENTICATOR_NAME)
    image = qrcode.make(device.config_url, image_factory=SvgPathImage, border=2)
    svg = io.BytesIO()
    image.save(svg)
    response = HttpResponse(svg.getvalue(), content_type="image/svg+xml")
    add_never_cache_headers(response)
    return response


def _grouped(secret: str) -> str:
    """A base32 secret in groups of four, as authenticator apps show it for typing."""
    secret = secret.rstrip("=")
    return " ".join(secret[start : start + 4] for start in range(0, len(secret), 4))
