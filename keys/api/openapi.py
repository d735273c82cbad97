"""The vault endpoint's OpenAPI 3.1 document, made from the route table (`keys.api.ROUTES`),
each view's declaration (`views.documented`) and the body schemas (schemas.py), so every
route is documented and every documented path is served.

It is served on the console host, at `/openapi/vault.json`, without signing in: a vault's
host answers nothing without a bearer token, and every request it serves is an entry in the
activity log, while this document is the same for every vault and no secret.
"""

import inspect
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from accounts import tokens

from . import API_VERSIONS, LATEST_API_VERSION, PATH_PARAMETERS, ROUTES, Route
from .schemas import KEY_NAME_PATTERN, SCHEMAS
from .views import DOCUMENTATION, View

SECURITY_SCHEME = "entraClientCredentials"

_PARAMETERS: dict[str, dict[str, Any]] = {
    "api-version": {
        "name": "api-version",
        "in": "query",
        "required": True,
        "description": "The API version; the SDKs' names for the same surface.",
        "schema": {"type": "string", "enum": list(API_VERSIONS)},
    },
    "key-name": {
        "name": "key-name",
        "in": "path",
        "required": True,
        "description": "The key's name: 1-127 letters, digits and hyphens, in any case.",
        "schema": {"type": "string", "pattern": KEY_NAME_PATTERN},
    },
    "key-version": {
        "name": "key-version",
        "in": "path",
        "required": True,
        "description": "A version (32 hex digits); an empty segment means the current one.",
        "schema": {"type": "string", "pattern": "^([0-9a-f]{32})?$"},
    },
    "maxresults": {
        "name": "maxresults",
        "in": "query",
        "required": False,
        "description": "How many items a page holds (25 when absent).",
        "schema": {"type": "integer", "minimum": 1, "maximum": 25},
    },
    "skiptoken": {
        "name": "$skiptoken",
        "in": "query",
        "required": False,
        "description": "Where the previous page ended; taken from its nextLink.",
        "schema": {"type": "string"},
    },
}


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _json(schema: str) -> dict[str, Any]:
    return {"application/json": {"schema": _ref("schemas", schema)}}


def _error(description: str, **extra: Any) -> dict[str, Any]:
    return {"description": description, "content": _json("KeyVaultError"), **extra}


def _operation(route: Route, operation: str, view: View) -> dict[str, Any]:
    documentation = DOCUMENTATION[view]
    operation_id = documentation.operation_id
    # GET and PATCH /keys/{key-name}: the version views, for the current version.
    if "version" in inspect.signature(view).parameters and "{key-version}" not in route.path:
        operation_id += "CurrentVersion"
    parameters = [_ref("parameters", "api-version")]
    parameters += [
        _ref("parameters", name) for name in PATH_PARAMETERS if "{" + name + "}" in route.path
    ]
    if documentation.paged:
        parameters += [_ref("parameters", "maxresults"), _ref("parameters", "skiptoken")]
    if documentation.response is None:
        success: dict[str, Any] = {"204": {"description": "Done; no body."}}
    else:
        success = {"200": {"description": "Done.", "content": _json(documentation.response)}}
    described: dict[str, Any] = {
        "operationId": operation_id,
        "summary": documentation.summary,
        "x-activity-operation": operation,
        "parameters": parameters,
        "responses": {
            **success,
            "401": _error(
                "No token, or one this deployment does not accept; the challenge says where "
                "to get one.",
                headers={"WWW-Authenticate": _ref("headers", "WWW-Authenticate")},
            ),
            "default": _error("Refused: Azure's error body."),
        },
    }
    if documentation.request is not None:
        described["requestBody"] = {"required": True, "content": _json(documentation.request)}
    return described


def document() -> dict[str, Any]:
    """The OpenAPI document of this deployment's vault endpoint."""
    port = settings.KVCONSOLE_VAULT_PORT
    scope = f"{tokens.vault_resource()}/.default"
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        for method, (operation, view) in route.methods.items():
            paths.setdefault(route.path, {})[method.lower()] = _operation(
                route, operation.value, view
            )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "kvconsole vault endpoint",
            "version": LATEST_API_VERSION,
            "description": (
                "The Azure Key Vault keys data-plane operations this deployment serves, on "
                "each vault's own host. Every request needs a bearer token from the "
                "deployment's token service (client credentials)."
            ),
        },
        "servers": [
            {
                "url": "https://{vault}."
                + settings.KVCONSOLE_VAULT_HOST_SUFFIX
                + ("" if port == 443 else f":{port}"),
                "variables": {"vault": {"default": "vault", "description": "The vault's name."}},
            }
        ],
        "security": [{SECURITY_SCHEME: [scope]}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "parameters": _PARAMETERS,
            "headers": {
                "WWW-Authenticate": {
                    "description": "The bearer challenge: the authority and the resource.",
                    "schema": {"type": "string"},
                }
            },
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "oauth2",
                    "flows": {
                        "clientCredentials": {
                            "tokenUrl": tokens.token_endpoint(),
                            "scopes": {scope: "Every vault of this deployment."},
                        }
                    },
                }
            },
        },
    }


@login_not_required
@require_GET
def openapi_document(request: HttpRequest) -> JsonResponse:
    return JsonResponse(document())
