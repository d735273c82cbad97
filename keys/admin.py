from django.contrib import admin
from django.http import HttpRequest

from kvconsole.admin import InspectionAdmin

from .models import Key, KeyVersion

# Protected material (the sealed key and its wrapped data key) is left out of every screen.
_VERSION_FIELDS = (
    "key",
    "version",
    "kty",
    "size",
    "curve",
    "public_jwk",
    "key_ops",
    "enabled",
    "not_before",
    "expires",
    "tags",
    "origin",
    "source_version",
    "created_at",
    "updated_at",
    "master_key_id",
)


class KeyVersionInline(admin.TabularInline):
    model = KeyVersion
    fk_name = "key"
    fields = ("version", "kty", "size", "curve", "enabled", "not_before", "expires", "origin")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Key | None = None) -> bool:
        return False


@admin.register(Key)
class KeyAdmin(InspectionAdmin):
    list_display = ("name", "vault", "current_version", "created_at", "deleted_at")
    list_filter = ("vault",)
    list_select_related = ("vault", "current_version")
    search_fields = ("name",)
    fields = (
        "vault",
        "name",
        "current_version",
        "created_at",
        "updated_at",
        "deleted_at",
        "scheduled_purge_at",
    )
    inlines = (KeyVersionInline,)


@admin.register(KeyVersion)
class KeyVersionAdmin(InspectionAdmin):
    list_display = ("key", "version", "kty", "enabled", "expires", "origin", "created_at")
    list_filter = ("kty", "enabled", "origin")
    list_select_related = ("key__vault",)
    search_fields = ("=version", "key__name")
    fields = _VERSION_FIELDS
