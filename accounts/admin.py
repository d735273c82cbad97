from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

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
