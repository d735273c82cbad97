from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.http import HttpRequest

from .models import User


@admin.register(User)
class PrincipalAdmin(UserAdmin):
    list_display = ("username", "display_name", "kind", "is_active", "is_superuser", "last_login")
    list_filter = ("kind", "is_active", "is_superuser")
    search_fields = ("username", "display_name", "email", "=oid")
    readonly_fields = ("oid",)
    fieldsets = (
        *(UserAdmin.fieldsets or ()),
        ("Principal", {"fields": ("oid", "kind", "display_name")}),
    )

    # An application's principal changes only through the application's services (the
    # Application pages), which keep it in step with the application and record the change.
    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.kind == User.Kind.APPLICATION:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.kind == User.Kind.APPLICATION:
            return False
        return super().has_delete_permission(request, obj)
