from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from keys.api import openapi
from vaults import oauth
from vaults.views import twofactor

admin.site.site_header = "kvconsole administration"
admin.site.site_title = "kvconsole"
# One sign-in for the console and the admin: the one that asks for an authenticator's code.
admin.site.login = twofactor.admin_sign_in  # type: ignore[method-assign]

urlpatterns = [
    path("", include("vaults.urls")),
    path("", include("keys.urls")),
    path("signin/", twofactor.SignInView.as_view(), name="signin"),
    path("signin/code/", twofactor.sign_in_code, name="signin-code"),
    path("account/two-factor/", twofactor.two_factor, name="two-factor"),
    path("account/two-factor/qr.svg", twofactor.two_factor_qr, name="two-factor-qr"),
    path("signout/", auth_views.LogoutView.as_view(next_page="signin"), name="signout"),
    path("admin/", admin.site.urls),
    # The token service (the authority clients are sent to by the vaults' challenge).
    path(
        "<str:tenant>/v2.0/.well-known/openid-configuration",
        oauth.openid_configuration,
        name="openid-configuration",
    ),
    path("<str:tenant>/discovery/v2.0/keys", oauth.signing_keys, name="token-signing-keys"),
    path("<str:tenant>/oauth2/v2.0/authorize", oauth.authorize_endpoint, name="authorize"),
    path("<str:tenant>/oauth2/v2.0/token", oauth.token, name="token"),
    path("msi/token", oauth.managed_identity_token, name="managed-identity-token"),
    # The vault endpoint's OpenAPI document (served here: vault hosts answer only with a token).
    path("openapi/vault.json", openapi.openapi_document, name="vault-openapi"),
]
