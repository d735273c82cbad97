"""Console pages for applications (service principals): the directory, credentials and
workload identities, with the console's personas.

The directory is readable by everyone signed in; an application's owner (whoever registered
it) and administrators manage it, and the services refuse everyone else.
"""

import hashlib
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.handlers.base import BaseHandler
from django.http import HttpRequest, HttpResponseBase
from django.test import Client
from django.utils import timezone

from accounts import tokens
from accounts.models import Application, CertificateCredential, ClientSecret, User
from kvconsole.errors import Unauthorized
from tests.accounts.certificates import der, key_body, make_certificate, pem, private_pem
from tests.conftest import Personas
from tests.console import htmx_get, htmx_post, is_fragment, text
from vaults import services
from vaults.models import ActivityEntry

pytestmark = pytest.mark.django_db

CONTROLS = ("New client secret", "Upload certificate", "Bind a workload", "Disable", "Rename")


@pytest.fixture
def as_(client: Client, personas: Personas) -> Any:
    def sign_in(name: str) -> Client:
        client.force_login(personas.each()[name])
        return client

    return sign_in


@pytest.fixture
def responses(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The body of every response served during the test, in order."""
    served: list[bytes] = []
    get_response = BaseHandler.get_response

    def recording(handler: BaseHandler, request: HttpRequest) -> HttpResponseBase:
        response = get_response(handler, request)
        served.append(b"" if response.streaming else response.content)  # type: ignore[attr-defined]
        return response

    monkeypatch.setattr(BaseHandler, "get_response", recording)
    return served


@pytest.fixture
def app(personas: Personas) -> Application:
    """An application registered, and so owned, by the group owner persona."""
    return services.application_create(actor=personas.owner, display_name="billing")


def url(app: Application, action: str = "") -> str:
    return f"/applications/{app.client_id}/{action}"


def shown_secret(response: Any) -> str:
    found = re.search(r'<code id="new-secret">([^<]+)</code>', text(response))
    assert found, "the new secret is not on the page"
    return found.group(1)


def sign_in_with(app: Application, secret: str) -> User:
    return services.application_sign_in(client_id=str(app.client_id), secret=secret)


def workload_token(secret: str) -> Any:
    issued, _ = services.managed_identity_token_issue(
        api_version="2019-08-01", identity_secret=secret, resource=tokens.vault_resource()
    )
    return issued


# --- the directory ---------------------------------------------------------------------------


def test_the_main_navigation_leads_to_applications(as_: Any) -> None:
    page = text(as_("reader").get("/applications/"))
    assert '<a href="/applications/" aria-current="page">Applications</a>' in page


def test_a_person_without_grants_registers_an_application_and_owns_it(as_: Any) -> None:
    client = as_("outsider")
    assert "Register application" in text(client.get("/applications/"))
    assert 'name="display_name"' in text(client.get("/applications/new/"))
    response = htmx_post(client, "/applications/new/", {"display_name": "  payments api "})
    application = Application.objects.get(display_name="payments api")
    assert response["HX-Redirect"] == f"/applications/{application.client_id}/"
    assert application.owner is not None and application.owner.username == "outsider"
    assert application.enabled and application.user.kind == User.Kind.APPLICATION
    page = text(client.get(response["HX-Redirect"]))
    assert "payments api registered; you own it." in page
    assert all(control in page for control in CONTROLS)


@pytest.mark.parametrize("name", ["   ", "x" * 121])
def test_a_bad_display_name_is_a_form_error_and_registers_nothing(as_: Any, name: str) -> None:
    response = htmx_post(as_("reader"), "/applications/new/", {"display_name": name})
    assert response.status_code == 200 and is_fragment(response)
    assert 'id="application-form"' in text(response) and "errorlist" in text(response)
    assert not Application.objects.exists()


def test_the_list_shows_each_application_with_its_credential_counts(
    as_: Any, app: Application, personas: Personas
) -> None:
    services.application_secret_add(actor=personas.owner, client_id=str(app.client_id))
    services.application_secret_add(actor=personas.owner, client_id=str(app.client_id))
    certificate, _ = make_certificate()
    services.application_certificate_add(
        actor=personas.owner, client_id=str(app.client_id), certificate=pem(certificate)
    )
    services.workload_identity_add(actor=personas.owner, client_id=str(app.client_id))
    stopped = services.application_create(actor=personas.reader, display_name="stopped")
    services.application_update(
        actor=personas.reader, client_id=str(stopped.client_id), enabled=False
    )
    page = text(as_("outsider").get("/applications/"))
    row = page[page.index(f"/applications/{app.client_id}/") :].split("</tr>")[0]
    assert str(app.client_id) in row and str(app.user.oid) in row
    assert '<span class="badge ok">Enabled</span>' in row
    assert personas.owner.display_name in row
    assert re.findall(r'<td class="num">(\d+)</td>', row) == ["2", "1", "1"]
    stopped_row = page[page.index(f"/applications/{stopped.client_id}/") :].split("</tr>")[0]
    assert '<span class="badge off">Disabled</span>' in stopped_row
    assert "Register application" in page


def test_the_list_searches_and_answers_htmx_with_the_table_only(
    as_: Any, app: Application, personas: Personas
) -> None:
    other = services.application_create(actor=personas.reader, display_name="reporting")
    client = as_("crypto_user")
    fragment = htmx_get(client, "/applications/", q="BILL")
    assert is_fragment(fragment) and 'id="application-table"' in text(fragment)
    assert "billing" in text(fragment) and "reporting" not in text(fragment)
    assert 'type="search"' not in text(fragment)
    by_client_id = text(htmx_get(client, "/applications/", q=str(other.client_id)))
    assert "reporting" in by_client_id and "billing" not in by_client_id
    by_object_id = text(client.get("/applications/", {"q": str(app.user.oid)}))
    assert "<html" in by_object_id and "billing" in by_object_id
    assert "reporting" not in by_object_id.split('id="application-table"')[1]
    nothing = text(htmx_get(client, "/applications/", q="nothing-like-it"))
    assert "No application matches" in nothing


def test_the_list_pages_fifty_at_a_time(as_: Any, personas: Personas) -> None:
    for number in range(51):
        services.application_create(actor=personas.owner, display_name=f"app-{number:02}")
    client = as_("reader")
    first = text(client.get("/applications/"))
    assert "app-49" in first and "app-50" not in first and "Page 1 of 2" in first
    second = htmx_get(client, "/applications/", page="2")
    assert is_fragment(second) and "app-50" in text(second) and "app-00" not in text(second)


def test_the_list_costs_the_same_queries_for_1_or_20_applications(
    as_: Any, app: Application, personas: Personas, django_assert_max_num_queries: Any
) -> None:
    client = as_("reader")
    client.get("/applications/")
    with django_assert_max_num_queries(15) as few:
        client.get("/applications/")
    for number in range(20):
        more = services.application_create(actor=personas.owner, display_name=f"many-{number}")
        services.application_secret_add(actor=personas.owner, client_id=str(more.client_id))
        services.workload_identity_add(actor=personas.owner, client_id=str(more.client_id))
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get("/applications/")


# --- the application's page ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("persona", "manages"),
    [("owner", True), ("crypto_user", False), ("reader", False), ("outsider", False)],
)
def test_the_detail_page_offers_controls_only_to_the_applications_owner(
    as_: Any, app: Application, persona: str, manages: bool
) -> None:
    response = as_(persona).get(url(app))
    assert response.status_code == 200
    page = text(response)
    assert str(app.client_id) in page and str(app.user.oid) in page
    assert 'data-copy="client-id"' in page and "/oauth2/v2.0/token" in page
    for control in CONTROLS:
        assert (control in page) is manages, control
    assert ('href="' + url(app, "delete/") + '"' in page) is manages


def test_a_superuser_manages_an_application_it_does_not_own(
    client: Client, owner: User, app: Application
) -> None:
    client.force_login(owner)
    page = text(client.get(url(app)))
    assert all(control in page for control in CONTROLS)
    response = client.post(url(app, "secrets/new/"), {"description": "ops", "lifetime": "90"})
    assert response.status_code == 200 and ClientSecret.objects.filter(application=app).exists()


def test_an_unknown_application_is_not_found(as_: Any) -> None:
    client = as_("owner")
    response = client.get("/applications/00000000-0000-0000-0000-000000000000/")
    assert response.status_code == 404
    assert "does not exist" in text(response)
    assert client.get("/applications/not-a-guid/").status_code == 404


def test_the_detail_page_costs_the_same_queries_for_few_or_many_credentials(
    as_: Any, app: Application, personas: Personas, django_assert_max_num_queries: Any
) -> None:
    client = as_("owner")
    client.get(url(app))
    with django_assert_max_num_queries(20) as few:
        client.get(url(app))
    for _ in range(10):
        services.application_secret_add(actor=personas.owner, client_id=str(app.client_id))
        services.workload_identity_add(actor=personas.owner, client_id=str(app.client_id))
        certificate, _key = make_certificate()
        services.application_certificate_add(
            actor=personas.owner, client_id=str(app.client_id), certificate=pem(certificate)
        )
    with django_assert_max_num_queries(len(few.captured_queries)):
        page = text(client.get(url(app)))
    assert page.count("Revoke<span") == 10 and page.count("Remove<span") == 10


def test_the_owner_renames_the_application(as_: Any, app: Application) -> None:
    client = as_("owner")
    fragment = htmx_get(client, url(app, "rename/"))
    assert is_fragment(fragment) and 'id="application-dialog"' in text(fragment)
    assert 'value="billing"' in text(fragment)
    refused = htmx_post(client, url(app, "rename/"), {"display_name": " "})
    assert refused.status_code == 200 and "This field is required" in text(refused)
    response = htmx_post(client, url(app, "rename/"), {"display_name": "billing v2"})
    assert response["HX-Redirect"] == url(app)
    assert Application.objects.get(pk=app.pk).display_name == "billing v2"


def test_disabling_confirms_then_refuses_tokens_and_enabling_restores_them(
    as_: Any, app: Application, personas: Personas
) -> None:
    issued = services.application_secret_add(actor=personas.owner, client_id=str(app.client_id))
    client = as_("owner")
    confirm = htmx_get(client, url(app, "disable/"))
    assert is_fragment(confirm) and "Disable <strong>billing</strong>?" in text(confirm)
    assert Application.objects.get(pk=app.pk).enabled  # asking changed nothing
    full = client.get(url(app, "disable/"))
    assert "<html" in text(full) and 'id="application-dialog"' in text(full)
    response = client.post(url(app, "disable/"))
    assert response.status_code == 303 and response["Location"] == url(app)
    assert not Application.objects.get(pk=app.pk).enabled
    with pytest.raises(Unauthorized, match="is disabled"):
        sign_in_with(app, issued.value)
    page = text(client.get(url(app)))
    assert "billing disabled" in page and '<span class="badge off">Disabled</span>' in page
    assert 'action="' + url(app, "enable/") + '"' in page
    response = htmx_post(client, url(app, "enable/"))
    assert response["HX-Redirect"] == url(app)
    assert sign_in_with(app, issued.value) == app.user
    assert client.get(url(app, "enable/")).status_code == 405


def test_deleting_needs_the_display_name_typed(as_: Any, app: Application) -> None:
    client = as_("owner")
    page = text(client.get(url(app, "delete/")))
    assert 'data-confirm-name="billing"' in page
    wrong = htmx_post(client, url(app, "delete/"), {"confirm": "billin"})
    assert wrong.status_code == 200 and "Type billing exactly" in text(wrong)
    assert Application.objects.filter(pk=app.pk).exists()
    response = htmx_post(client, url(app, "delete/"), {"confirm": "billing"})
    assert response["HX-Redirect"] == "/applications/"
    assert not Application.objects.filter(pk=app.pk).exists()
    assert not User.objects.filter(pk=app.user_id).exists()


# --- client secrets --------------------------------------------------------------------------


def test_a_new_secret_is_shown_once_works_and_stops_working_when_revoked(
    as_: Any, app: Application, responses: list[bytes]
) -> None:
    client = as_("owner")
    form = htmx_get(client, url(app, "secrets/new/"))
    assert is_fragment(form) and 'name="lifetime"' in text(form)
    response = htmx_post(
        client, url(app, "secrets/new/"), {"description": "ci pipeline", "lifetime": "90"}
    )
    assert response.status_code == 200 and is_fragment(response)
    value = shown_secret(response)
    page = text(response)
    assert '<div class="secret"' in page and 'data-copy="new-secret"' in page
    assert "will not be shown again" in page and 'hx-history="false"' in page
    assert "no-store" in response["Cache-Control"]
    secret = ClientSecret.objects.get(application=app)
    assert secret.description == "ci pipeline" and secret.hint == value[:3]
    expected_end = timezone.now() + timedelta(days=90)
    assert abs(secret.expires_at - expected_end) < timedelta(minutes=1)

    assert sign_in_with(app, value) == app.user

    later = [
        client.get(url(app)),
        client.get("/applications/"),
        client.get(url(app, "secrets/new/")),
        client.get(url(app, f"credentials/{secret.key_id}/revoke/")),
    ]
    for later_response in later:
        assert later_response.status_code == 200
        assert value not in text(later_response)
    assert value not in str(dict(client.session.items())) + str(client.cookies)
    assert f"{secret.hint}…" in text(later[0]) and "ci pipeline" in text(later[0])
    for entry in ActivityEntry.objects.all():
        assert value not in f"{entry.target} {entry.message}"

    assert "Revoke the client secret <strong>ci pipeline</strong>" in text(later[3])
    revoked = client.post(url(app, f"credentials/{secret.key_id}/revoke/"))
    assert revoked.status_code == 303 and revoked["Location"] == url(app)
    assert not ClientSecret.objects.filter(pk=secret.pk).exists()
    with pytest.raises(Unauthorized, match="Invalid client secret"):
        sign_in_with(app, value)
    assert "revoked; it no longer gets tokens" in text(client.get(url(app)))
    # Of every response in this test, only the one that created the secret holds it.
    holding = [body for body in responses if value.encode() in body]
    assert holding == [response.content] and len(responses) == 8


def test_a_secret_added_without_htmx_is_shown_on_a_whole_page(as_: Any, app: Application) -> None:
    response = as_("owner").post(url(app, "secrets/new/"), {"lifetime": "365"})
    assert response.status_code == 200 and "<html" in text(response)
    assert sign_in_with(app, shown_secret(response)) == app.user


def test_a_custom_secret_end_is_checked(as_: Any, app: Application) -> None:
    client = as_("owner")
    missing = htmx_post(client, url(app, "secrets/new/"), {"lifetime": "custom"})
    assert missing.status_code == 200 and "Choose the end date and time." in text(missing)
    too_late = (timezone.now() + timedelta(days=800)).strftime("%Y-%m-%dT%H:%M")
    refused = htmx_post(
        client, url(app, "secrets/new/"), {"lifetime": "custom", "expires_at": too_late}
    )
    assert "at most 2 years" in text(refused) and 'id="new-secret"' not in text(refused)
    past = (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    refused = htmx_post(
        client, url(app, "secrets/new/"), {"lifetime": "custom", "expires_at": past}
    )
    assert "must be in the future" in text(refused)
    assert not ClientSecret.objects.exists()
    end = (timezone.now() + timedelta(days=30)).replace(second=0, microsecond=0)
    response = htmx_post(
        client,
        url(app, "secrets/new/"),
        {"lifetime": "custom", "expires_at": end.strftime("%Y-%m-%dT%H:%M")},
    )
    shown_secret(response)
    assert ClientSecret.objects.get(application=app).expires_at == end


# --- certificates ----------------------------------------------------------------------------


def test_certificates_are_uploaded_as_pem_or_der_files_or_pasted_and_removed(
    as_: Any, app: Application
) -> None:
    client = as_("owner")
    form = htmx_get(client, url(app, "certificates/new/"))
    assert is_fragment(form) and 'hx-encoding="multipart/form-data"' in text(form)
    first, _ = make_certificate("first.example")
    second, _ = make_certificate("second.example")
    third, _ = make_certificate("third.example")
    uploads: list[dict[str, Any]] = [
        {"certificate_file": SimpleUploadedFile("first.pem", pem(first)), "description": "pem"},
        {"certificate_file": SimpleUploadedFile("second.cer", der(second))},
        {"certificate_pem": pem(third).decode()},
    ]
    for upload in uploads:
        response = htmx_post(client, url(app, "certificates/new/"), upload)
        assert response.status_code == 200 and response["HX-Redirect"] == url(app)
    page = text(client.get(url(app)))
    for certificate in (first, second, third):
        thumbprint = hashlib.sha1(der(certificate), usedforsecurity=False).hexdigest().upper()
        assert thumbprint in page
    assert "CN=first.example" in page and "uploaded." in page

    stored = CertificateCredential.objects.get(application=app, subject__contains="second")
    confirm = text(htmx_get(client, url(app, f"credentials/{stored.key_id}/revoke/")))
    assert "Remove the certificate" in confirm and stored.thumbprint_sha1 in confirm
    response = client.post(url(app, f"credentials/{stored.key_id}/revoke/"))
    assert response.status_code == 303
    assert not CertificateCredential.objects.filter(pk=stored.pk).exists()
    assert CertificateCredential.objects.filter(application=app).count() == 2
    assert f"Certificate {stored.thumbprint_sha1} removed." in text(client.get(url(app)))


def test_a_pasted_private_key_is_refused_and_never_shown_back(as_: Any, app: Application) -> None:
    certificate, key = make_certificate()
    pasted = (pem(certificate) + private_pem(key)).decode()
    response = htmx_post(as_("owner"), url(app, "certificates/new/"), {"certificate_pem": pasted})
    assert response.status_code == 200 and is_fragment(response)
    assert "contains a private key" in text(response)
    assert key_body(key) not in text(response)
    assert "BEGIN CERTIFICATE-----\n" not in text(response)
    assert not CertificateCredential.objects.exists()


def both_a_file_and_a_paste() -> dict[str, Any]:
    certificate, _ = make_certificate()
    return {
        "certificate_file": SimpleUploadedFile("a.pem", pem(certificate)),
        "certificate_pem": pem(certificate).decode(),
    }


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (dict, "Upload a certificate file or paste a PEM certificate."),
        (lambda: {"certificate_pem": "not a certificate"}, "neither a PEM nor a DER"),
        (both_a_file_and_a_paste, "not both"),
    ],
)
def test_certificate_input_mistakes_are_form_errors(
    as_: Any, app: Application, data: Callable[[], dict[str, Any]], error: str
) -> None:
    response = htmx_post(as_("owner"), url(app, "certificates/new/"), data())
    assert response.status_code == 200 and error in text(response)
    assert not CertificateCredential.objects.exists()


def test_the_same_certificate_twice_is_a_form_error(as_: Any, app: Application) -> None:
    certificate, _ = make_certificate()
    client = as_("owner")
    client.post(url(app, "certificates/new/"), {"certificate_pem": pem(certificate).decode()})
    response = client.post(
        url(app, "certificates/new/"), {"certificate_pem": pem(certificate).decode()}
    )
    assert response.status_code == 200 and "already has the certificate" in text(response)
    assert CertificateCredential.objects.filter(application=app).count() == 1


# --- workload identities ---------------------------------------------------------------------


def test_a_workload_is_bound_shown_its_secret_once_and_unbound(
    as_: Any, app: Application, responses: list[bytes]
) -> None:
    client = as_("owner")
    bound = htmx_post(client, url(app, "workloads/new/"), {"description": "billing-worker"})
    assert bound.status_code == 200 and is_fragment(bound)
    value = shown_secret(bound)
    page = text(bound)
    assert "/msi/token</code>" in page and "IDENTITY_HEADER" in page
    assert 'hx-history="false"' in page and "no-store" in bound["Cache-Control"]
    assert workload_token(value).access_token

    detail = text(client.get(url(app)))
    assert value not in detail and "billing-worker" in detail and f"{value[:3]}…" in detail
    identity = app.workload_identities.get()
    delete_url = url(app, f"workloads/{identity.key_id}/delete/")
    confirm = htmx_get(client, delete_url)
    assert is_fragment(confirm) and "Unbind the workload <strong>billing-worker</strong>" in text(
        confirm
    )
    assert value not in text(confirm)
    unbound = client.post(delete_url)
    assert unbound.status_code == 303 and unbound["Location"] == url(app)
    with pytest.raises(Unauthorized):
        workload_token(value)
    assert "Workload billing-worker unbound." in text(client.get(url(app)))
    assert client.get(delete_url).status_code == 404
    holding = [body for body in responses if value.encode() in body]
    assert holding == [bound.content] and len(responses) == 6


# --- who may not -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "form_page",
    ["rename/", "disable/", "delete/", "secrets/new/", "certificates/new/", "workloads/new/"],
)
def test_who_may_not_manage_sees_the_pages_without_their_forms(
    as_: Any, app: Application, form_page: str
) -> None:
    response = as_("reader").get(url(app, form_page))
    assert response.status_code == 200
    assert "Only the application's owner or an administrator may do this." in text(response)
    assert '<form class="stack"' not in text(response)


@pytest.mark.parametrize("persona", ["crypto_user", "reader", "outsider"])
def test_forged_posts_are_refused_and_change_nothing(
    as_: Any, app: Application, personas: Personas, persona: str
) -> None:
    issued = services.application_secret_add(actor=personas.owner, client_id=str(app.client_id))
    identity = services.workload_identity_add(actor=personas.owner, client_id=str(app.client_id))
    certificate, _ = make_certificate()
    client = as_(persona)
    attempts: list[tuple[str, dict[str, Any]]] = [
        ("rename/", {"display_name": "taken over"}),
        ("disable/", {}),
        ("enable/", {}),
        ("delete/", {"confirm": "billing"}),
        ("secrets/new/", {"lifetime": "90"}),
        ("certificates/new/", {"certificate_pem": pem(certificate).decode()}),
        (f"credentials/{issued.credential.key_id}/revoke/", {}),
        ("workloads/new/", {"description": "intruder"}),
        (f"workloads/{identity.identity.key_id}/delete/", {}),
    ]
    for action, data in attempts:
        response = client.post(url(app, action), data)
        assert response.status_code == 403, action
        assert "only the application&#x27;s owner or an administrator may" in text(response)
    refused = htmx_post(client, url(app, "disable/"))
    assert refused.status_code == 403 and refused["HX-Retarget"] == "#alerts"
    assert is_fragment(refused)
    unchanged = Application.objects.get(pk=app.pk)
    assert (unchanged.display_name, unchanged.enabled) == ("billing", True)
    assert ClientSecret.objects.filter(application=app).count() == 1
    assert not CertificateCredential.objects.exists()
    assert app.workload_identities.count() == 1
    assert sign_in_with(app, issued.value) == app.user
    assert workload_token(identity.secret).access_token
    actor_name = personas.each()[persona].username
    denied = ActivityEntry.objects.filter(result="Forbidden", actor_name=actor_name)
    assert denied.count() == len(attempts) + 1


def test_viewing_the_directory_records_nothing(
    as_: Any, personas: Personas, app: Application
) -> None:
    client = as_("owner")
    before = ActivityEntry.objects.count()
    for _ in range(2):
        assert client.get("/applications/", {"q": app.display_name[:3]}).status_code == 200
        assert client.get(url(app)).status_code == 200
    assert ActivityEntry.objects.count() == before
