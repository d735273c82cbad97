from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from vaults import views as vault_views

admin.site.site_header = "kvconsole administration"
admin.site.site_title = "kvconsole"

urlpatterns = [
    path("", vault_views.overview, name="overview"),
    path(
        "signin/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="signin",
    ),
    path("signout/", auth_views.LogoutView.as_view(next_page="signin"), name="signout"),
    path("admin/", admin.site.urls),
]
