from django.contrib import admin
from django.urls import path

from vaults import views as vault_views

admin.site.site_header = "kvconsole administration"
admin.site.site_title = "kvconsole"

urlpatterns = [
    path("", vault_views.overview, name="overview"),
    path("admin/", admin.site.urls),
]
