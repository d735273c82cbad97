"""Admin plumbing: read-only inspection screens and a paginator that never counts a whole table."""

from typing import Any, cast

from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property


class InspectionAdmin(admin.ModelAdmin):
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
    def count(self) -> int:
        return cast(QuerySet[Any], self.object_list)[: self.CAP].count()
