"""Console pages for applications (service principals): register, list, rename, disable,
delete; client secrets, certificates and the workloads bound to them.

The directory is readable by every signed-in principal, so only what does not exist is a
404. Whoever may manage an application (its owner or an administrator) is offered the
controls; the directory services refuse anyone else. A new client secret or workload
identity secret is shown in the one response that created it and nowhere else: not in a
message, the session, a later page or the browser's caches.
"""

from uuid import UUID

from django.conf import settings
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import Http404, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import tokens
from accounts.models import Application
from kvconsole.console import done, page, posted
from kvconsole.errors import BadParameter, Conflict
from kvconsole.http import AuthedRequest

from .. import selectors, services
from ..forms import ConfirmNameForm
from ..forms_applications import (
    ApplicationForm,
    CertificateAddForm,
    SecretAddForm,
    WorkloadIdentityForm,
)
from ..permissions import DEPLOYMENT, Action, capabilities

PAGE_SIZE = 50


def _application(request: AuthedRequest, client_id: UUID) -> Application:
    """The application, for anyone who may read the directory; 404 otherwise. Read through
    the directory's selectors: a page view is no operation to record."""
    application = selectors.application_list(actor=request.user).filter(client_id=client_id).first()
    if application is None:
        raise Http404(f"Application {client_id} does not exist.")
    return application


def _can(request: AuthedRequest, application: Application) -> dict[str, bool]:
    return capabilities(
        request.user,
        application,
        manage=Action.APPLICATION_UPDATE,
        delete=Action.APPLICATION_DELETE,
    )


def _detail_url(client_id: UUID | str) -> str:
    return reverse("application-detail", args=[client_id])


def _shown_once(response: HttpResponse) -> HttpResponse:
    """A response carrying a secret: never kept by the browser's or a proxy's cache."""
    add_never_cache_headers(response)
    return response


# --- the directory ---------------------------------------------------------------------------


@require_GET
def application_list(request: AuthedRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    applications = (
        selectors.application_list(actor=request.user)
        .annotate(
            secret_count=Count("client_secrets", distinct=True),
            certificate_count=Count("certificates", distinct=True),
            workload_count=Count("workload_identities", distinct=True),
        )
        # Aggregating drops the model's default ordering, which paging needs.
        .order_by("display_name", "client_id")
    )
    if query:
        matches = Q(display_name__icontains=query)
        try:
            guid = UUID(query)
        except ValueError:
            pass
        else:
            matches |= Q(client_id=guid) | Q(user__oid=guid)
        applications = applications.filter(matches)
    context = {
        "applications": Paginator(applications, PAGE_SIZE).get_page(request.GET.get("page")),
        "query": query,
        "can": capabilities(request.user, DEPLOYMENT, register=Action.APPLICATION_CREATE),
    }
    return page(request, "vaults/application_list.html", context, partial="application-table")


@require_http_methods(["GET", "POST"])
def application_create(request: AuthedRequest) -> HttpResponse:
    form = ApplicationForm(posted(request))
    if request.method == "POST" and form.is_valid():
        try:
            application = services.application_create(
                actor=request.user, display_name=form.cleaned_data["display_name"]
            )
        except BadParameter as error:
            form.refuse(error)
        else:
            message = f"Application {application.display_name} registered; you own it."
            return done(request, message, _detail_url(application.client_id))
    can = capabilities(request.user, DEPLOYMENT, register=Action.APPLICATION_CREATE)
    return page(request, "vaults/application_form.html", {"form": form, "can": can}, partial="form")


@require_GET
def application_detail(request: AuthedRequest, client_id: UUID) -> HttpResponse:
    application = _application(request, client_id)
    credentials = selectors.application_credentials(application=application)
    context = {
        "application": application,
        "secrets": credentials.secrets,
        "certificates": credentials.certificates,
        "identities": selectors.workload_identity_list(application=application),
        "can": _can(request, application),
        "now": timezone.now(),
        "tenant_id": settings.KVCONSOLE_TENANT_ID,
        "token_endpoint": tokens.token_endpoint(),
    }
    return page(request, "vaults/application_detail.html", context)


@require_http_methods(["GET", "POST"])
def application_rename(request: AuthedRequest, client_id: UUID) -> HttpResponse:
    application = _application(request, client_id)
    form = ApplicationForm(posted(request), initial={"display_name": application.display_name})
    if request.method == "POST" and form.is_valid():
        try:
            renamed = services.application_update(
                actor=request.user,
                client_id=str(client_id),
                display_name=form.cleaned_data["display_name"],
            )
        except BadParameter as error:
            form.refuse(error)
        else:
            return done(
                request, f"Application renamed {renamed.display_name}.", _detail_url(client_id)
            )
    context = {"application": application, "form": form, "can": _can(request, application)}
    return page(request, "vaults/application_rename.html", context, partial="dialog")


@require_http_methods(["GET", "POST"])
def application_disable(request: AuthedRequest, client_id: UUID) -> HttpResponse:
    if request.method == "POST":
        application = services.application_update(
            actor=request.user, client_id=str(client_id), enabled=False
        )
        message = f"{application.display_name} disabled: its credentials get no more tokens."
        return done(request, message, _detail_url(client_id))
    application = _application(request, client_id)
    context = {"application": application, "can": _can(request, application)}
    return page(request, "vaults/application_disable.html", context, partial="dialog")


@require_POST
def application_enable(request: AuthedRequest, client_id: UUID) -> HttpResponse:
    application = services.application_update(
        actor=request.user, client_id=str(client_id), enabled=True
    )
    return done(request, f"{application.display_name} enabled.", _detail_url(client_id))


@require_http_methods(["GET", "POST"])
def application_delete(request: AuthedRequest, client_id: UUID) -> HttpResponse:
    application = _application(request, client_id)
    form = ConfirmNameForm(posted(request), expected=application.display_name)
    if request.method == "POST" and form.is_valid():
        services.application_delete(actor=request.user, client_id=str(client_id))
        message = f"Application {application.display_name} deleted with its credentials and grants."
        return done(request, message, reverse("application-list"))
    context = {"application": application, "form": form, "can": _can(request, application)}
    return page(request, "vaults/application_delete.html", context, partial="dialog")


# --- credentials -----------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@sensitive_variables()  # a new secret is in hand: never in an error report
def application_secret_add(request: AuthedRequest, client_id: UUID) -> HttpResponse:
    """Add a client secret; its value is in this response only."""
    application = _application(request, client_id)
    form = SecretAddForm(posted(request))
    issued = None
    if request.method == "POST" and form.is_valid():
        try:
            issued = services.application_secret_add(
                actor=request.user,
                client_id=str(client_id),
                description=form.cleaned_data["description"],
                expires_at=form.cleaned_data["expires_at"],
            )
        except BadParameter as error:
            form.refuse(error)
    context = {
        "application": application,
        "form": form,
        "issued": issued,
        "can": _can(request, application),
    }
    response = page(request, "vaults/application_secret_form.html", context, partial="dialog")
    return _shown_once(response) if issued else response


@require_http_methods(["GET", "POST"])
# Pasted by mistake, the text may be a private key: never in an error report.
@sensitive_post_parameters("certificate_pem")
def application_certificate_add(request: AuthedRequest, client_id: UUID) -> HttpResponse:
    application = _application(request, client_id)
    form = CertificateAddForm(posted(request), request.FILES if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            certificate = services.application_certificate_add(
                actor=request.user,
                client_id=str(client_id),
                certificate=form.certificate(),
                description=form.cleaned_data["description"],
            )
        except (BadParameter, Conflict) as error:
            form.refuse(error)
        else:
            message = f"Certificate {certificate.thumbprint_sha1} uploaded."
            return done(request, message, _detail_url(client_id))
    context = {"application": application, "form": form, "can": _can(request, application)}
    return page(request, "vaults/application_certificate_form.html", context, partial="dialog")


@require_http_methods(["GET", "POST"])
def application_credential_revoke(
    request: AuthedRequest, client_id: UUID, key_id: UUID
) -> HttpResponse:
    """Revoke a client secret or remove a certificate, after confirmation."""
    credentials = selectors.application_credentials(application=_application(request, client_id))
    secret = next((item for item in credentials.secrets if item.key_id == key_id), None)
    certificate = next((item for item in credentials.certificates if item.key_id == key_id), None)
    if secret is None and certificate is None:
        raise Http404("The application has no such client secret or certificate.")
    if request.method == "POST":
        services.application_credential_delete(
            actor=request.user, client_id=str(client_id), key_id=str(key_id)
        )
        if secret is not None:
            message = f"Client secret {secret.hint}… revoked; it no longer gets tokens."
        else:
            assert certificate is not None
            message = f"Certificate {certificate.thumbprint_sha1} removed."
        return done(request, message, _detail_url(client_id))
    application = credentials.application
    context = {
        "application": application,
        "key_id": key_id,
        "secret": secret,
        "certificate": certificate,
        "can": _can(request, application),
    }
    return page(request, "vaults/application_credential_revoke.html", context, partial="dialog")


# --- workload identities ---------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@sensitive_variables()  # a new secret is in hand: never in an error report
def application_identity_add(request: AuthedRequest, client_id: UUID) -> HttpResponse:
    """Bind a workload; its identity secret is in this response only."""
    application = _application(request, client_id)
    form = WorkloadIdentityForm(posted(request))
    issued = None
    if request.method == "POST" and form.is_valid():
        try:
            issued = services.workload_identity_add(
                actor=request.user,
                client_id=str(client_id),
                description=form.cleaned_data["description"],
            )
        except BadParameter as error:
            form.refuse(error)
    context = {
        "application": application,
        "form": form,
        "issued": issued,
        "identity_endpoint": f"https://{settings.KVCONSOLE_CONSOLE_HOST}"
        f"{reverse('managed-identity-token')}",
        "can": _can(request, application),
    }
    response = page(request, "vaults/application_identity_form.html", context, partial="dialog")
    return _shown_once(response) if issued else response


@require_http_methods(["GET", "POST"])
def application_identity_delete(
    request: AuthedRequest, client_id: UUID, key_id: UUID
) -> HttpResponse:
    application = _application(request, client_id)
    identity = (
        selectors.workload_identity_list(application=application).filter(key_id=key_id).first()
    )
    if identity is None:
        raise Http404("The application has no such workload identity.")
    if request.method == "POST":
        services.workload_identity_delete(
            actor=request.user, client_id=str(client_id), key_id=str(key_id)
        )
        message = f"Workload {identity.description or identity.hint + '…'} unbound."
        return done(request, message, _detail_url(client_id))
    context = {"application": application, "identity": identity, "can": _can(request, application)}
    return page(request, "vaults/application_identity_delete.html", context, partial="dialog")
