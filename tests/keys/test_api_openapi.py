"""The vault endpoint's OpenAPI document: served on the console host, valid OpenAPI 3.1, and
in step with the route table both ways."""

from typing import Any

import pytest
from django.test import Client, RequestFactory
from openapi_spec_validator import validate

from accounts import tokens
from keys.api import ROUTES, _route, openapi
from keys.api.views import DOCUMENTATION

pytestmark = pytest.mark.django_db

EXAMPLE_VALUES = {"{key-name}": "some-key", "{key-version}": "0123456789abcdef" * 2}


def test_the_document_is_served_to_anyone_on_the_console_host(client: Client) -> None:
    response = client.get("/openapi/vault.json")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert response.json() == openapi.document()


def test_the_document_is_valid_openapi() -> None:
    validate(openapi.document())


def test_every_route_and_method_is_documented_with_its_operation() -> None:
    paths = openapi.document()["paths"]
    documented = {(path, method.upper()) for path, item in paths.items() for method in item}
    routed = {(route.path, method) for route in ROUTES for method in route.methods}
    assert documented == routed
    for route in ROUTES:
        for method, (operation, view) in route.methods.items():
            assert view in DOCUMENTATION
            assert paths[route.path][method.lower()]["x-activity-operation"] == operation.value


@pytest.mark.parametrize("empty_version", [False, True])
def test_every_documented_path_reaches_its_view(empty_version: bool) -> None:
    paths = openapi.document()["paths"]
    for route in ROUTES:
        concrete = route.path
        for placeholder, value in EXAMPLE_VALUES.items():
            if empty_version and placeholder == "{key-version}":
                value = ""
            concrete = concrete.replace(placeholder, value)
        for method, (operation, view) in route.methods.items():
            request = RequestFactory().generic(method, concrete)
            assert _route(request)[:2] == (operation, view), (method, concrete)
            parameters = paths[route.path][method.lower()]["parameters"]
            names = {parameter["$ref"].rsplit("/", 1)[1] for parameter in parameters}
            assert {"api-version"} | {
                name for name in ("key-name", "key-version") if "{" + name + "}" in route.path
            } <= names


def test_operation_ids_are_azures_and_unique() -> None:
    operations: list[dict[str, Any]] = [
        operation for item in openapi.document()["paths"].values() for operation in item.values()
    ]
    ids = [operation["operationId"] for operation in operations]
    assert len(ids) == len(set(ids))
    assert {"CreateKey", "GetKey", "GetKeyCurrentVersion", "sign", "wrapKey", "GetRandomBytes"} <= (
        set(ids)
    )


def test_servers_and_token_url_are_this_deployments(settings: Any) -> None:
    settings.KVCONSOLE_VAULT_HOST_SUFFIX = "vault.example.com"
    settings.KVCONSOLE_VAULT_PORT = 443
    document = openapi.document()
    assert document["servers"][0]["url"] == "https://{vault}.vault.example.com"
    flow = document["components"]["securitySchemes"]["entraClientCredentials"]["flows"]
    assert flow["clientCredentials"]["tokenUrl"] == tokens.token_endpoint()
    assert list(flow["clientCredentials"]["scopes"]) == ["https://vault.example.com/.default"]
