"""Console URLs for keys and the search across vaults and keys."""

from django.urls import path

from .views import keys, overview, playground, search, versions

# Pages about the vault's keys as a whole sit beside the Keys tab, not under it: every
# word is a valid key name, so keys/new/ would hide a key named "new".
KEY = "vaults/<str:vault>/keys/<str:key>/"
VERSION = f"{KEY}versions/<str:version>/"

urlpatterns = [
    path("", overview.overview, name="overview"),
    path("search/", search.search, name="search"),
    path("vaults/<str:vault>/keys/", keys.key_list, name="key-list"),
    path("vaults/<str:vault>/new-key/", keys.key_create, name="key-create"),
    path("vaults/<str:vault>/import-key/", keys.key_import, name="key-import"),
    path("vaults/<str:vault>/restore-key/", keys.key_restore, name="key-restore"),
    path("vaults/<str:vault>/deleted-keys/", keys.deleted_key_list, name="deleted-key-list"),
    path(
        "vaults/<str:vault>/deleted-keys/<str:key>/recover/",
        keys.key_recover,
        name="deleted-key-recover",
    ),
    path(
        "vaults/<str:vault>/deleted-keys/<str:key>/purge/",
        keys.key_purge,
        name="deleted-key-purge",
    ),
    path(KEY, versions.key_detail, name="key-detail"),
    path(f"{KEY}rotate/", versions.key_rotate, name="key-rotate"),
    path(f"{KEY}rotation-policy/", versions.key_rotation_policy, name="key-rotation-policy"),
    path(f"{KEY}delete/", versions.key_delete, name="key-delete"),
    path(f"{KEY}backup/", versions.key_backup, name="key-backup"),
    path(VERSION, versions.version_detail, name="key-version"),
    path(f"{VERSION}enabled/", versions.version_enabled, name="key-version-enabled"),
    path(f"{VERSION}revert/", versions.version_revert, name="key-version-revert"),
    path(f"{VERSION}playground/", playground.key_playground, name="key-playground"),
]
