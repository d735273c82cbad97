"""The token service on the console host: OpenID discovery, the signing keys, the OAuth2
token endpoint (client-credentials grant) and an App-Service-style managed-identity endpoint.

Enough of Entra ID's v2.0 endpoints for MSAL, and with it azure-identity's
ClientSecretCredential, CertificateCredential and ManagedIdentityCredential, to sign
applications in. The views parse the request and call one service; the services
authenticate and record each attempt.
"""

import re
import uuid
from collections.abc import Callable
from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_POST

from accounts import tokens
from kvconsole.errors import BadParameter, ServiceError
from kvconsole.middleware import client_ip

from . import activity, services
from .models import Face

_AADSTS = re.compile(r"AADSTS(\d+)")


def _api_context(request: HttpRequest) -> Any:
    """Token requests come from applications, like vault endpoint requests."""
    correlation = (
        request.headers.get("client-request-id")
        or request.headers.get("x-ms-client-request-id")
        or request.POST.get("client-request-id", "")
    )
    return activity.request_context(
        face=Face.API, client_ip=client_ip(request), correlation_id=correlation
    )


def _error(error: ServiceError) -> JsonResponse:
    """Entra ID's error body; `invalid_client` is 401, every other refusal 400."""
    codes = [int(code) for code in _AADSTS.findall(error.message)]
    body = {
        "error": error.code,
        "error_description": error.message,
        "error_codes": codes,
        "timestamp": timezone.now().strftime("%Y-%m-%d %H:%M:%SZ"),
        "trace_id": str(uuid.uuid4()),
        "correlation_id": str(uuid.uuid4()),
    }
    return JsonResponse(body, status=401 if error.code == "invalid_client" else 400)


def _no_store(response: JsonResponse) -> JsonResponse:
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    return response


def _known_tenant(view: Callable[..., JsonResponse]) -> Callable[..., JsonResponse]:
    def checked(request: HttpRequest, tenant: str) -> JsonResponse:
        if not tokens.is_our_tenant(tenant):
            return _error(
                BadParameter(
                    f"AADSTS90002: Tenant '{tenant[:64]}' not found.", code="invalid_request"
                )
            )
        return view(request, tenant)

    return checked


@login_not_required
@require_GET
@_known_tenant
def openid_configuration(request: HttpRequest, tenant: str) -> JsonResponse:
    base = tokens.authority()
    return JsonResponse(
        {
            "issuer": tokens.issuer(),
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": tokens.token_endpoint(),
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS256", "PS256"],
            "grant_types_supported": ["client_credentials"],
            "response_types_supported": ["token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": [tokens.ALGORITHM],
            "scopes_supported": [f"{tokens.vault_resource()}/.default"],
            "tenant_region_scope": None,
        }
    )


@login_not_required
@require_GET
@_known_tenant
def signing_keys(request: HttpRequest, tenant: str) -> JsonResponse:
    return JsonResponse(tokens.jwks())


@login_not_required
@_known_tenant
def authorize_endpoint(request: HttpRequest, tenant: str) -> JsonResponse:
    return _error(
        BadParameter(
            "AADSTS70000: This token service has no interactive sign-in; applications use the "
            "client_credentials grant at the token endpoint.",
            code="unsupported_response_type",
        )
    )


@csrf_exempt
@login_not_required
@require_POST
@sensitive_post_parameters("client_secret", "client_assertion")
def token(request: HttpRequest, tenant: str) -> JsonResponse:
    """The client-credentials grant; `claims` and `client_info` are accepted and ignored."""
    form = request.POST
    with _api_context(request):
        try:
            issued = services.token_issue(
                tenant=tenant,
                grant_type=form.get("grant_type", ""),
                client_id=form.get("client_id", ""),
                scope=form.get("scope", ""),
                credential=services.Credential(
                    secret=form.get("client_secret"),
                    assertion=form.get("client_assertion"),
                    assertion_type=form.get("client_assertion_type"),
                ),
            )
        except ServiceError as error:
            return _no_store(_error(error))
    return _no_store(
        JsonResponse(
            {
                "token_type": "Bearer",
                "expires_in": issued.expires_in,
                "ext_expires_in": issued.expires_in,
                "access_token": issued.access_token,
            }
        )
    )


@login_not_required
@require_GET
def managed_identity_token(request: HttpRequest) -> JsonResponse:
    """App Service's identity endpoint (api-version 2019-08-01): the workload authenticates
    with the IDENTITY_HEADER secret its host gave it."""
    with _api_context(request):
        try:
            issued, application = services.managed_identity_token_issue(
                api_version=request.GET.get("api-version", ""),
                identity_secret=request.headers.get("x-identity-header", ""),
                resource=request.GET.get("resource", ""),
                client_id=request.GET.get("client_id", ""),
            )
        except ServiceError as error:
            return _no_store(_error(error))
    return _no_store(
        JsonResponse(
            {
                "access_token": issued.access_token,
                "expires_on": str(issued.expires_on),
                "resource": tokens.vault_resource(),
                "token_type": "Bearer",
                "client_id": str(application.client_id),
            }
        )
    )
