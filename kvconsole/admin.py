"""Admin plumbing: read-only inspection screens, screens that change objects only through
the services, and a paginator that never counts a whole table."""

from collections.abc import Callable
from typing import Any, cast
from weakref import WeakKeyDictionary

from django.contrib import admin, messages
from django.contrib.admin.models import DELETION, LogEntry
from django.core.paginator import Paginator
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.functional import cached_property

from .errors import ServiceError


class InspectionAdmin(admin.ModelAdmin):
    """Domain objects change only through the services, which authorize and record; the
    admin only shows them."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# Refusals seen while serving a request: the add, change and delete views go on to log and
# to report success after saving or deleting, and must not for a refused call.
_refusals: WeakKeyDictionary[HttpRequest, ServiceError] = WeakKeyDictionary()


class ServiceAdmin(admin.ModelAdmin):
    """Adds, changes and deletes through the services, which authorize and record; a
    refusal is shown as a message, and neither logged as a change nor reported as a success.
    The admin's own transaction around its views still commits when a service refuses, so
    the refusal's activity entry is kept.

    Subclasses say how, as methods: `service_save(request, obj, form, change)` returns the
    saved row or raises the service's ServiceError, and `service_delete(request, obj)`
    deletes one object or raises it.
    """

    service_save: Callable[[HttpRequest, Any, Any, bool], Model]
    service_delete: Callable[[HttpRequest, Any], None]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        try:
            saved = self.service_save(request, obj, form, change)
        except ServiceError as error:
            _refusals[request] = error
            return
        # The admin goes on with `obj` (to log it and redirect to it): make it the saved row.
        for field in self.opts.concrete_fields:
            setattr(obj, field.attname, getattr(saved, field.attname))
        obj._state.adding, obj._state.db = False, saved._state.db

    def refused(self, request: HttpRequest) -> bool:
        return request in _refusals

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        return None if self.refused(request) else super().log_addition(request, obj, message)

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        return None if self.refused(request) else super().log_change(request, obj, message)

    def response_add(
        self, request: HttpRequest, obj: Any, post_url_continue: str | None = None
    ) -> HttpResponse:
        if self.refused(request):
            return self._back_with_refusal(request)
        return super().response_add(request, obj, post_url_continue)

    def response_change(self, request: HttpRequest, obj: Any) -> HttpResponse:
        if self.refused(request):
            return self._back_with_refusal(request)
        return super().response_change(request, obj)

    def log_deletions(self, request: HttpRequest, queryset: Any) -> Any:
        # Django logs deletions before making them; here they are logged once the service
        # has deleted (in delete_model and delete_queryset), so refusals are not logged.
        return None

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        self._delete(request, [obj])

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._delete(request, list(queryset))

    def _delete(self, request: HttpRequest, objects: list[Any]) -> None:
        deleted = []
        for obj in objects:
            try:
                self.service_delete(request, obj)
            except ServiceError as error:
                _refusals[request] = error
                self.message_user(request, f"{obj}: {error.message}", messages.ERROR)
            else:
                deleted.append(obj)
        if deleted:
            assert request.user.pk is not None
            LogEntry.objects.log_actions(
                user_id=request.user.pk, queryset=deleted, action_flag=DELETION
            )

    def response_delete(self, request: HttpRequest, obj_display: str, obj_id: Any) -> HttpResponse:
        if self.refused(request):
            # The refusal was reported by _delete; back to the object, which still exists.
            opts = self.opts
            return HttpResponseRedirect(
                reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=(obj_id,))
            )
        return super().response_delete(request, obj_display, obj_id)

    def _back_with_refusal(self, request: HttpRequest) -> HttpResponse:
        self.message_user(request, _refusals[request].message, messages.ERROR)
        return HttpResponseRedirect(request.get_full_path())


class CappedCountPaginator(Paginator):
    """Counts at most CAP rows, so a page costs the same on a thousand rows or a billion."""

    CAP = 10_000

    @cached_property
    def count(self) -> int:
        return cast(QuerySet[Any], self.object_list)[: self.CAP].count()
