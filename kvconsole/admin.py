"""Admin plumbing: read-only inspection screens and a paginator that never counts a whole table."""

from typing import Any

from django.contrib import admin
from django.core.paginator import Paginator
from django.http import HttpRequest
from django.utils.functional import cached_property


class InspectionAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Domain objects change only through the services, which authorize and record; the
    admin only shows them."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class CappedCountPaginator(Paginator):
    """Counts at most CAP rows, so a page costs the same on a thousand rows or a billion."""

    CAP = 10_000

    @cached_property
    def count(self) -> int:  # type: ignore[override]
        return self.object_list[: self.CAP].count()  # type: ignore[no-any-return, index]
