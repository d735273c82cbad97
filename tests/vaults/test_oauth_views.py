"""The token endpoint's view, without a server: what Django's error reports may show."""

import pytest
from django.conf import settings
from django.test import RequestFactory

from vaults import oauth

pytestmark = pytest.mark.django_db


def test_the_token_forms_secrets_are_hidden_from_error_reports(rf: RequestFactory) -> None:
    request = rf.post(
        f"/{settings.KVCONSOLE_TENANT_ID}/oauth2/v2.0/token",
        {"grant_type": "client_credentials", "client_id": "x", "client_secret": "s3cret"},
    )
    response = oauth.token(request, settings.KVCONSOLE_TENANT_ID)
    assert response.status_code == 400
    assert set(request.sensitive_post_parameters) == {"client_secret", "client_assertion"}  # type: ignore[attr-defined]
