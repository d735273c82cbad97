from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import roles
from kvconsole.admin import CappedCountPaginator, InspectionAdmin

# The admin discovers only `admin` modules; importing the Application and alert pages here
# is what registers them, once.
from . import alerts_admin, directory_admin  # noqa: F401
from .models import ActivityEntry, ResourceGroup, Result, RoleAssignment, Vault

# Authenticators change only through the two-factor services (enrolled by their owner, reset
# by a deployment principal, each recorded); django-otp's own page would also show secrets.
admin.site.unregister(TOTPDevice)


@admin.register(ResourceGroup)
class ResourceGroupAdmin(InspectionAdmin):
    list_display = ("name", "location", "created_at")
    search_fields = ("name",)
    readonly_fields = ("uid", "name", "location", "tags", "created_at", "updated_at")


@admin.register(Vault)
class VaultAdmin(InspectionAdmin):
    list_display = (
        "name",
        "resource_group",
        "location",
        "sku",
        "permission_model",
        "purge_protection",
        "deleted_at",
    )
    list_filter = ("sku", "permission_model", "purge_protection", "location")
    list_select_related = ("resource_group",)
    search_fields = ("name",)


@admin.register(RoleAssignment)
class RoleAssignmentAdmin(InspectionAdmin):
    """Assignments are made and removed with `kv role assignment` (and the console)."""

    list_display = ("role", "principal", "scope", "created_by_name", "created_at")
    list_select_related = ("user", "group")
    search_fields = ("scope", "user__username", "group__name")

    @admin.display(description="role")
    def role(self, assignment: RoleAssignment) -> str:
        return roles.ROLES_BY_ID[str(assignment.role_id)].name

    @admin.display(description="principal")
    def principal(self, assignment: RoleAssignment) -> str:
        if assignment.group is not None:
            return f"group {assignment.group.name}"
        return str(assignment.user)


class VaultNameFilter(admin.SimpleListFilter):
    """Choices come from the small vault table, never from a DISTINCT over the log."""

    title = "vault"
    parameter_name = "vault"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            (name, name) for name in Vault.objects.order_by("name").values_list("name", flat=True)
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(vault_name=self.value()) if self.value() else queryset


class ResultFilter(admin.SimpleListFilter):
    """By result, through the query that can use the failures' partial index."""

    title = "result"
    parameter_name = "result__exact"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(Result.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.with_result(value) if value else queryset  # type: ignore[attr-defined]


@admin.register(ActivityEntry)
class ActivityEntryAdmin(InspectionAdmin):
    list_display = (
        "seq",
        "time",
        "actor_name",
        "operation",
        "target",
        "result",
        "status_code",
        "duration_ms",
        "face",
        "client_ip",
    )
    list_filter = (VaultNameFilter, "operation", ResultFilter, "face", "time")
    search_fields = ("actor_name", "target")
    search_help_text = "A principal's exact user name, or the start of a target path."
    ordering = ("-seq",)
    paginator = CappedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50

    def get_ordering(self, request: HttpRequest) -> tuple[str, ...]:
        # Within a time range, newest first by time walks the (time, seq) index; by seq
        # alone the database would sort every entry in the range.
        if any(name.startswith("time__") for name in request.GET):
            return ("-time", "-seq")
        return ("-seq",)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        """Exact name or target prefix, both answered from an index; the admin's default
        LIKE '%term%' reads every row of a log that only grows."""
        term = search_term.strip()
        if not term:
            return queryset, False
        # A range over the binary-ordered index: every string that starts with `term`.
        prefix = Q(target__gte=term, target__lte=term + "\U0010ffff")
        return queryset.filter(Q(actor_name=term) | prefix), False
