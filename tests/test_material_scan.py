"""The scan every test's responses go through finds key material where it must not be."""

from typing import Any

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path

from accounts.models import User
from keys.models import KeyVersion
from keys.services._shared import loaded_material
from tests.material import MaterialWatch, b64url, secret_parts

pytestmark = pytest.mark.django_db


def leaking_view(request: HttpRequest) -> HttpResponse:
    """A page that shows part of a key's private exponent, as no page may."""
    material = loaded_material(KeyVersion.objects.get())
    return HttpResponse(f"<p>{b64url(secret_parts(material)[0])[5:40]}</p>")


urlpatterns = [path("leak/", leaking_view)]


def test_a_page_showing_part_of_a_private_key_is_reported(
    client: Client,
    owner: User,
    make_key: Any,
    settings: Any,
    no_key_material_in_responses: MaterialWatch,
) -> None:
    make_key("scanned")
    settings.ROOT_URLCONF = __name__
    client.force_login(owner)
    client.get("/leak/")
    found = list(no_key_material_in_responses.leaks)
    # This test's own leak must not fail it at teardown.
    no_key_material_in_responses.leaks.clear()
    assert found == ["GET /leak/ holds a key's private material"]


@pytest.mark.parametrize(
    "body",
    [
        b"-----BEGIN PRIVATE KEY-----\nMIIE...",
        b'{"kty": "RSA", "d": "AbCdEfGhIjKlMnOp"}',
        b'{"kty":"oct","k":"c2VjcmV0c2VjcmV0"}',
    ],
)
def test_anything_shaped_like_a_private_key_is_reported(body: bytes) -> None:
    with pytest.raises(AssertionError):
        MaterialWatch().scan(body, "a body")


def test_public_parts_pass() -> None:
    MaterialWatch().scan(b'{"kty": "RSA", "n": "AbCdEfGhIjKlMnOp", "e": "AQAB"}', "a body")
