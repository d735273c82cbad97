"""The admin's alert pages, imported by `vaults.admin`: events (read-only), alert rules
(changed only through the alert services, as applications are), and notifications
(read-only, with a requeue action for dead-lettered ones that calls the service)."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.cache import add_never_cache_headers

from accounts.models import User
from kvconsole.admin import CappedCountPaginator, InspectionAdmin, ServiceAdmin
from kvconsole.errors import ServiceError

from . import services
from .models import AlertRule, Event, Notification
from .services.alerts import SUBSCRIBABLE_EVENT_TYPES


@admin.register(Event)
class EventAdmin(InspectionAdmin):
    list_display = ("time", "event_type", "subject", "vault_name", "resource_group")
    list_filter = ("event_type", "time")
    search_fields = ("=subject", "=vault_name")
    paginator = CappedCountPaginator
    show_full_result_count = False


class AlertRuleForm(forms.ModelForm):
    event_types = forms.MultipleChoiceField(
        choices=[(kind.value, kind.label) for kind in SUBSCRIBABLE_EVENT_TYPES],
        widget=forms.CheckboxSelectMultiple,
    )

    class Meta:
        model = AlertRule
        fields = (
            "name",
            "resource_group",
            "vault_name",
            "key_name",
            "event_types",
            "channel",
            "target",
            "schema",
            "attempts",
            "window_seconds",
            "enabled",
        )
        help_texts = {
            "resource_group": "Empty for every group (or the vault's own).",
            "vault_name": "Empty for every vault in scope.",
            "key_name": "One key of the vault; empty for all of them.",
            "target": "Email: comma-separated addresses. Webhook: an https:// URL.",
            "schema": "A webhook's body: Event Grid's schema or CloudEvents 1.0.",
            "attempts": "UnauthorizedAccessAttempts: this many refusals of one principal on "
            "one vault within the window raise one event.",
            "window_seconds": "UnauthorizedAccessAttempts: the window, in seconds.",
        }


@admin.register(AlertRule)
class AlertRuleAdmin(ServiceAdmin):
    """Rules change only through the services (ServiceAdmin). A webhook's signing secret is
    shown on its own page, never cached."""

    form = AlertRuleForm
    list_display = ("name", "scope", "channel", "target", "event_type_names", "enabled")
    list_filter = ("enabled", "channel", "schema")
    search_fields = ("name", "=vault_name", "=resource_group")
    change_form_template = "admin/vaults/alertrule/change_form.html"

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        editable = ("event_types", "target", "schema", "attempts", "window_seconds", "enabled")
        if obj is None:
            return ("name", "resource_group", "vault_name", "key_name", "channel", *editable)
        return ("name", "scope", "channel", *editable, "created_by", "created_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return () if obj is None else ("name", "scope", "channel", "created_by", "created_at")

    @admin.display(description="scope")
    def scope(self, rule: AlertRule) -> str:
        return services.rule_scope(rule)

    @admin.display(description="event types")
    def event_type_names(self, rule: AlertRule) -> str:
        return ", ".join(services.short_event_name(kind) for kind in rule.event_types)

    # --- add, change, delete through the services ---

    def service_save(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> AlertRule:
        actor = _actor(request)
        data = form.cleaned_data
        if change:
            return services.alert_rule_update(
                actor=actor,
                name=obj.name,
                **{
                    field: data[field]
                    for field in (
                        "enabled",
                        "event_types",
                        "target",
                        "schema",
                        "attempts",
                        "window_seconds",
                    )
                    if field in form.changed_data
                },
            )
        return services.alert_rule_create(
            actor=actor,
            name=data["name"],
            resource_group=data["resource_group"],
            vault_name=data["vault_name"],
            key_name=data["key_name"],
            event_types=data["event_types"],
            channel=data["channel"],
            target=data["target"],
            schema=data["schema"],
            attempts=data["attempts"],
            window_seconds=data["window_seconds"],
            enabled=data["enabled"],
        ).rule

    def service_delete(self, request: HttpRequest, obj: Any) -> None:
        services.alert_rule_delete(actor=_actor(request), name=obj.name)

    def response_add(
        self, request: HttpRequest, obj: Any, post_url_continue: str | None = None
    ) -> HttpResponse:
        if not self.refused(request) and obj.channel == AlertRule.Channel.WEBHOOK:
            # Straight to the page that shows the new webhook's signing secret.
            return HttpResponseRedirect(reverse("admin:vaults_alertrule_secret", args=(obj.pk,)))
        return super().response_add(request, obj, post_url_continue)

    # --- the signing secret ---

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<path:object_id>/secret/",
                self.admin_site.admin_view(self.secret_view),
                name="vaults_alertrule_secret",
            ),
            *super().get_urls(),
        ]

    def secret_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Show (POST show) or replace (POST rekey) a webhook's signing secret. The value is
        on that response only: never in the session, a message or a cache."""
        rule = self.get_object(request, unquote(object_id))
        if rule is None:
            raise Http404("No such alert rule.")
        if not self.has_view_permission(request, rule):
            raise PermissionDenied
        secret, error = None, None
        if request.method == "POST":
            try:
                if request.POST.get("action") == "rekey":
                    secret = services.alert_rule_rekey(actor=_actor(request), name=rule.name).secret
                else:
                    secret = services.alert_rule_secret(actor=_actor(request), name=rule.name)
            except ServiceError as refused:
                error = refused.message
        response = TemplateResponse(
            request,
            "admin/vaults/alertrule/secret.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": "Webhook signing secret",
                "original": rule,
                "change_url": _change_url(rule.pk),
                "secret": secret,
                "error": error,
            },
        )
        add_never_cache_headers(response)
        return response


@admin.register(Notification)
class NotificationAdmin(InspectionAdmin):
    list_display = (
        "uid",
        "rule",
        "event_type",
        "channel",
        "target",
        "status",
        "attempts",
        "next_attempt_at",
        "delivered_at",
        "last_error",
    )
    list_filter = ("status", "channel")
    list_select_related = ("event", "rule")
    search_fields = ("=uid", "=rule__name")
    paginator = CappedCountPaginator
    show_full_result_count = False
    actions = ["requeue"]

    @admin.display(description="event type")
    def event_type(self, notification: Notification) -> str:
        return notification.event.event_type

    @admin.action(description="Requeue the selected dead-lettered notifications")
    def requeue(self, request: HttpRequest, queryset: QuerySet[Notification]) -> None:
        dead = queryset.filter(status=Notification.Status.DEAD)
        uids = [str(uid) for uid in dead.values_list("uid", flat=True)]
        if not uids:
            self.message_user(request, "None of those is dead-lettered.", messages.WARNING)
            return
        try:
            count = services.notification_requeue(actor=_actor(request), uids=uids)
        except ServiceError as error:
            self.message_user(request, error.message, messages.ERROR)
        else:
            self.message_user(request, f"Requeued {count} notification(s).", messages.SUCCESS)


def _actor(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _change_url(pk: Any) -> str:
    return reverse("admin:vaults_alertrule_change", args=(pk,))
