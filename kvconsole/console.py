"""What every console view shares: full page or fragment, refusals as messages, and sign-in
for htmx requests.

Views call a service or selector and render its result; a service's typed error reaches
`ServiceErrorMiddleware`, which answers with the refusal's message (a page, or for htmx an
alert swapped into the page's alert region) and its status. No view checks permissions.
"""

import logging
from collections.abc import Callable, Mapping
from typing import Any

from django.contrib import messages
from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render, resolve_url
from django.template.loader import render_to_string
from django.views.csrf import csrf_failure as django_csrf_failure
from django_htmx.http import HttpResponseClientRedirect

from .errors import Forbidden, NotFound, ServiceError
from .http import AuthedRequest, is_partial

logger = logging.getLogger(__name__)

# The element every page keeps for alerts; htmx answers that carry a refusal are swapped in.
ALERTS_TARGET = "#alerts"


def page(
    request: AuthedRequest,
    template: str,
    context: Mapping[str, Any],
    *,
    partial: str | None = None,
    status: int = 200,
) -> HttpResponse:
    """The whole page, or for an htmx request the named partial of the same template with
    any pending messages swapped into the alert region out of band."""
    if partial is None or not is_partial(request):
        return render(request, template, context, status=status)
    response = render(request, f"{template}#{partial}", context, status=status)
    alerts = render_to_string("console/alerts.html", {"out_of_band": True}, request=request)
    response.content += alerts.encode()
    return response


def posted(request: HttpRequest) -> QueryDict | None:
    """A form's data: bound on every POST, even one whose fields are all empty (which
    `request.POST or None` would take for a first visit and answer with no errors)."""
    return request.POST if request.method == "POST" else None


def done(request: AuthedRequest, message: str, url: str) -> HttpResponse:
    """After an action: say what happened and show `url` (a full navigation for htmx)."""
    messages.success(request, message)
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return HttpResponse(status=303, headers={"Location": url})


def refusal(request: HttpRequest, error: ServiceError) -> HttpResponse:
    """A service's refusal as the console shows it: an alert for htmx, a page otherwise."""
    context = {"error": error, "title": _TITLES.get(error.status, "Something went wrong")}
    if getattr(request, "htmx", False):
        response = render(request, "console/refusal.html#alert", context, status=error.status)
        response["HX-Retarget"] = ALERTS_TARGET
        response["HX-Reswap"] = "innerHTML"
        return response
    return render(request, "console/refusal.html", context, status=error.status)


_TITLES = {
    400: "That did not work",
    401: "Sign in again",
    403: "Not allowed",
    404: "Not found",
    409: "Conflict",
}


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A request without a valid CSRF token: for htmx an alert (a stale tab whose token has
    changed), Django's own page otherwise."""
    if getattr(request, "htmx", False):
        return refusal(
            request,
            Forbidden("This page is out of date (its security token has changed); reload it."),
        )
    return django_csrf_failure(request, reason)


class ServiceErrorMiddleware:
    """Turns a service's typed error, raised through a console view, into its message."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, ServiceError):
            return refusal(request, exception)
        htmx = getattr(request, "htmx", False)
        if isinstance(exception, Http404):
            # Django's own 404 page, except that htmx gets it as an alert too.
            return refusal(request, NotFound(str(exception))) if htmx else None
        if htmx:
            # An htmx request must never swap in a stack trace or nothing at all.
            logger.exception("Console request failed: %s %s", request.method, request.path)
            return refusal(
                request, ServiceError("The server failed to do that; the failure is logged.")
            )
        return None


class SignInRequiredMiddleware(LoginRequiredMiddleware):
    """Django's sign-in requirement, which sends an htmx request's whole page to the sign-in
    form (where a redirect followed by htmx would put the form inside a fragment)."""

    def handle_no_permission(  # type: ignore[override]
        self, request: HttpRequest, view_func: Any
    ) -> HttpResponse:
        htmx = getattr(request, "htmx", None)
        if not htmx:
            return super().handle_no_permission(request, view_func)
        # Back to the page the fragment belonged to once signed in, on this host only.
        back = htmx.current_url_abs_path or "/"
        to_sign_in = redirect_to_login(
            back,
            resolve_url(self.get_login_url(view_func)),
            self.get_redirect_field_name(view_func),
        )
        return HttpResponseClientRedirect(to_sign_in["Location"])
