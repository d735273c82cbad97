"""The admin's Application pages (the model is `accounts`'s), imported by `vaults.admin`.

Here rather than in `accounts.admin` because every change goes through the directory
services, which authorize and record activity in `vaults`; `accounts` may not import `vaults`.
"""

from typing import Any
from uuid import UUID

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import InlineModelAdmin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html

from accounts.certificates import MAX_CERTIFICATE_BYTES
from accounts.models import Application, CertificateCredential, ClientSecret, User
from kvconsole.admin import ServiceAdmin
from kvconsole.errors import ServiceError

from . import services


class _CredentialInline(admin.TabularInline):
    """Credentials are listed, never edited here: adding and revoking go through the
    application's own pages, which call the services."""

    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="")
    def revoke(self, credential: ClientSecret | CertificateCredential) -> str:
        url = reverse(
            "admin:accounts_application_credential_revoke",
            args=(credential.application_id, credential.key_id),
        )
        return format_html('<a href="{}" class="deletelink">Revoke</a>', url)


class ClientSecretInline(_CredentialInline):
    model = ClientSecret
    verbose_name = "client secret"
    fields = readonly_fields = (
        "key_id",
        "description",
        "hint",
        "created_at",
        "expires_at",
        "revoke",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[ClientSecret]:
        # The salt and hash are never even read for display.
        return (
            super()
            .get_queryset(request)
            .only("id", "application", "key_id", "description", "hint", "created_at", "expires_at")
        )


class CertificateInline(_CredentialInline):
    model = CertificateCredential
    verbose_name = "certificate"
    fields = readonly_fields = (
        "key_id",
        "description",
        "subject",
        "thumbprint_sha1",
        "not_before",
        "not_after",
        "revoke",
    )


class SecretAddForm(forms.Form):
    description = forms.CharField(max_length=120, required=False)
    expires_at = forms.DateTimeField(
        label="Expires",
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text="Default: one year from now. At most two years.",
    )


class CertificateAddForm(forms.Form):
    certificate = forms.FileField(
        help_text="The public certificate only (PEM or DER), never its private key."
    )
    description = forms.CharField(max_length=120, required=False)


@admin.register(Application)
class ApplicationAdmin(ServiceAdmin):
    """Applications change only through the services (ServiceAdmin)."""

    list_display = ("display_name", "client_id", "enabled", "owner", "created_at")
    list_filter = ("enabled",)
    list_select_related = ("owner",)
    search_fields = ("display_name", "=client_id")
    inlines = [ClientSecretInline, CertificateInline]
    change_form_template = "admin/accounts/application/change_form.html"

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if obj is None:
            return ("display_name",)
        return ("display_name", "enabled", *self.get_readonly_fields(request, obj))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if obj is None:
            return ()
        return ("client_id", "object_id", "owner", "created_at", "updated_at")

    def get_inlines(
        self, request: HttpRequest, obj: Any
    ) -> "list[type[InlineModelAdmin[Any, Any]]]":
        # A new application has no credentials yet; they are added once it exists.
        return [] if obj is None else list(self.inlines)

    @admin.display(description="Object id (service principal)")
    def object_id(self, application: Application) -> UUID:
        return application.user.oid

    # --- add, change, delete through the services ---

    def service_save(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> Application:
        actor = _actor(request)
        if change:
            return services.application_update(
                actor=actor,
                client_id=str(obj.client_id),
                display_name=_changed(form, "display_name"),
                enabled=_changed(form, "enabled"),
            )
        return services.application_create(
            actor=actor, display_name=form.cleaned_data["display_name"]
        )

    def service_delete(self, request: HttpRequest, obj: Any) -> None:
        services.application_delete(actor=_actor(request), client_id=str(obj.client_id))

    # --- credentials ---

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/secrets/add/",
                view(self.secret_add_view),
                name="accounts_application_secret_add",
            ),
            path(
                "<path:object_id>/certificates/add/",
                view(self.certificate_add_view),
                name="accounts_application_certificate_add",
            ),
            path(
                "<path:object_id>/credentials/<uuid:key_id>/revoke/",
                view(self.credential_revoke_view),
                name="accounts_application_credential_revoke",
            ),
            *super().get_urls(),
        ]

    def secret_add_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Add a client secret and show its value on this response only: it is never stored
        in the clear, in the session or in a message, and the page may not be cached."""
        application = self._application(request, object_id)
        form = SecretAddForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            try:
                issued = services.application_secret_add(
                    actor=_actor(request),
                    client_id=str(application.client_id),
                    description=form.cleaned_data["description"],
                    expires_at=form.cleaned_data["expires_at"],
                )
            except ServiceError as error:
                form.add_error(None, error.message)
            else:
                response = self._render(
                    request,
                    application,
                    "secret_created.html",
                    "Client secret added",
                    {"credential": issued.credential, "secret_value": issued.value},
                )
                add_never_cache_headers(response)
                return response
        return self._render(
            request, application, "secret_add.html", "Add a client secret", {"form": form}
        )

    def certificate_add_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        application = self._application(request, object_id)
        form = CertificateAddForm(
            request.POST if request.method == "POST" else None,
            request.FILES if request.method == "POST" else None,
        )
        if form.is_valid():
            upload = form.cleaned_data["certificate"]
            try:
                # One byte over the limit is enough for the service to refuse an oversized file.
                certificate = services.application_certificate_add(
                    actor=_actor(request),
                    client_id=str(application.client_id),
                    certificate=upload.read(MAX_CERTIFICATE_BYTES + 1),
                    description=form.cleaned_data["description"],
                )
            except ServiceError as error:
                form.add_error(None, error.message)
            else:
                self.message_user(
                    request,
                    f"Certificate {certificate.thumbprint_sha1} added.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(_change_url(application.pk))
        return self._render(
            request, application, "certificate_add.html", "Upload a certificate", {"form": form}
        )

    def credential_revoke_view(
        self, request: HttpRequest, object_id: str, key_id: UUID
    ) -> HttpResponse:
        application = self._application(request, object_id)
        secret = (
            ClientSecret.objects.filter(application=application, key_id=key_id)
            .only("key_id", "description", "hint", "expires_at")
            .first()
        )
        certificate = (
            CertificateCredential.objects.filter(application=application, key_id=key_id)
            .only("key_id", "description", "subject", "thumbprint_sha1", "not_after")
            .first()
        )
        if secret is None and certificate is None:
            raise Http404("No such credential.")
        if request.method == "POST":
            try:
                services.application_credential_delete(
                    actor=_actor(request),
                    client_id=str(application.client_id),
                    key_id=str(key_id),
                )
            except ServiceError as error:
                self.message_user(request, error.message, messages.ERROR)
            else:
                self.message_user(request, f"Credential {key_id} revoked.", messages.SUCCESS)
            return HttpResponseRedirect(_change_url(application.pk))
        return self._render(
            request,
            application,
            "credential_revoke.html",
            "Revoke a credential",
            {"secret": secret, "certificate": certificate},
        )

    def _application(self, request: HttpRequest, object_id: str) -> Application:
        application = self.get_object(request, unquote(object_id))
        if application is None:
            raise Http404("No such application.")
        if not self.has_change_permission(request, application):
            raise PermissionDenied
        return application

    def _render(
        self,
        request: HttpRequest,
        application: Application,
        template: str,
        title: str,
        context: dict[str, Any],
    ) -> TemplateResponse:
        return TemplateResponse(
            request,
            f"admin/accounts/application/{template}",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": title,
                "original": application,
                "change_url": _change_url(application.pk),
                **context,
            },
        )


def _actor(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _changed(form: "forms.ModelForm[Application]", name: str) -> Any:
    """The form's value of `name` if it was changed, else None: the service leaves None alone."""
    return form.cleaned_data[name] if name in form.changed_data else None


def _change_url(pk: Any) -> str:
    return reverse("admin:accounts_application_change", args=(pk,))
