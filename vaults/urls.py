"""Console URLs for resource groups and vaults."""

from django.urls import path

from .views import overview, resources

urlpatterns = [
    path("", overview.overview, name="overview"),
    path("groups/", resources.group_list, name="group-list"),
    path("groups/new/", resources.group_create, name="group-create"),
    path("groups/<str:name>/", resources.group_detail, name="group-detail"),
    path("groups/<str:name>/delete/", resources.group_delete, name="group-delete"),
    path("vaults/", resources.vault_list, name="vault-list"),
    path("vaults/new/", resources.vault_create, name="vault-create"),
    path("vaults/<str:name>/", resources.vault_detail, name="vault-detail"),
    path("vaults/<str:name>/properties/", resources.vault_properties, name="vault-properties"),
    path("vaults/<str:name>/delete/", resources.vault_delete, name="vault-delete"),
]
