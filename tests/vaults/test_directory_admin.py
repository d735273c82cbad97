"""The Django admin's application pages: every change through the services, secrets shown once."""

from datetime import timedelta
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Application, CertificateCredential, ClientSecret, User
from tests.accounts.certificates import key_body, make_certificate, pem, private_pem
from tests.factories import UserFactory
from vaults import services
from vaults.models import ActivityEntry, Face, Operation, Result

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as Response

pytestmark = pytest.mark.django_db


class _FormFields(HTMLParser):
    """The values a browser would submit from a page's forms: inputs, checkboxes, textareas."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        name = found.get("name")
        if not name:
            return
        if tag == "input" and found.get("type") not in {"submit", "checkbox", "file"}:
            self.values[name] = found.get("value", "")
        elif tag == "input" and found.get("type") == "checkbox" and "checked" in found:
            self.values[name] = found.get("value", "on")
        elif tag == "textarea":
            self._textarea = name
            self.values[name] = ""

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.values[self._textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._textarea = None


def form_values(response: "Response") -> dict[str, str]:
    parser = _FormFields()
    parser.feed(response.content.decode())
    return parser.values


def url(view: str, *args: Any) -> str:
    return reverse(f"admin:accounts_application_{view}", args=args)


@pytest.fixture
def app(admin_user: User) -> Application:
    """Registered by the superuser behind pytest-django's admin_client, who owns it."""
    return services.application_create(actor=admin_user, display_name="billing-service")


@pytest.fixture
def staff(db: None) -> User:
    """A staff person whom the admin lets manage applications, who owns none of them."""
    person = UserFactory.create(username="staffer", is_staff=True)
    person.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="accounts",
            codename__in=["view_application", "change_application", "delete_application"],
        )
    )
    return person


def last_entry() -> ActivityEntry:
    entry = ActivityEntry.objects.order_by("-seq").first()
    assert entry is not None
    return entry


def page_messages(response: "Response") -> list[str]:
    return [str(message) for message in response.context["messages"]]


# --- add, change, delete ---------------------------------------------------------------------


def test_add_registers_through_the_service(admin_client: Client, admin_user: User) -> None:
    response = admin_client.post(url("add"), {"display_name": "from-admin", "_save": "Save"})
    assert response.status_code == 302
    app = Application.objects.select_related("user").get(display_name="from-admin")
    assert app.owner == admin_user and app.user.kind == User.Kind.APPLICATION
    assert response["Location"] == url("changelist")
    entry = last_entry()
    assert (entry.operation, entry.result, entry.face, entry.actor_name) == (
        Operation.APPLICATION_CREATE,
        Result.SUCCESS,
        Face.CONSOLE,
        "admin",
    )
    assert LogEntry.objects.filter(action_flag=ADDITION, object_id=str(app.pk)).exists()


def test_change_renames_and_disables_through_the_service(
    admin_client: Client, app: Application
) -> None:
    page = admin_client.get(url("change", app.pk))
    assert page.status_code == 200
    values = form_values(page)
    values.pop("enabled")  # unticked
    values |= {"display_name": "billing", "_save": "Save"}
    response = admin_client.post(url("change", app.pk), values)
    assert response.status_code == 302, response.content.decode()[:2000]
    app.refresh_from_db()
    app.user.refresh_from_db()
    assert app.display_name == "billing" and not app.enabled and not app.user.is_active
    assert last_entry().operation == Operation.APPLICATION_UPDATE
    assert LogEntry.objects.filter(action_flag=CHANGE, object_id=str(app.pk)).exists()


def test_delete_goes_through_the_service(
    admin_client: Client, app: Application, admin_user: User
) -> None:
    services.application_secret_add(actor=admin_user, client_id=str(app.client_id))
    confirm = admin_client.get(url("delete", app.pk))
    assert confirm.status_code == 200
    response = admin_client.post(url("delete", app.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not Application.objects.exists() and not User.objects.filter(pk=app.user_id).exists()
    entry = last_entry()
    assert (entry.operation, entry.result) == (Operation.APPLICATION_DELETE, Result.SUCCESS)
    assert LogEntry.objects.filter(action_flag=DELETION, object_id=str(app.pk)).exists()


def test_bulk_delete_goes_through_the_service(admin_client: Client, admin_user: User) -> None:
    apps = [services.application_create(actor=admin_user, display_name=name) for name in ("a", "b")]
    response = admin_client.post(
        url("changelist"),
        {"action": "delete_selected", "_selected_action": [a.pk for a in apps], "post": "yes"},
    )
    assert response.status_code == 302
    assert not Application.objects.exists()
    assert (
        ActivityEntry.objects.filter(
            operation=Operation.APPLICATION_DELETE, result=Result.SUCCESS
        ).count()
        == 2
    )


def test_a_refused_change_is_shown_recorded_and_changes_nothing(
    client: Client, staff: User, app: Application
) -> None:
    client.force_login(staff)
    page = client.get(url("change", app.pk))
    values = form_values(page) | {"display_name": "hijacked", "_save": "Save"}
    response = client.post(url("change", app.pk), values, follow=True)
    assert any("only the application's owner" in text for text in page_messages(response))
    assert Application.objects.get(pk=app.pk).display_name == "billing-service"
    # The refusal's record survived the admin's transaction.
    entry = last_entry()
    assert (entry.operation, entry.result, entry.actor_name) == (
        Operation.APPLICATION_UPDATE,
        Result.FORBIDDEN,
        "staffer",
    )
    assert not LogEntry.objects.filter(action_flag=CHANGE).exists()


def test_a_refused_delete_is_shown_recorded_and_deletes_nothing(
    client: Client, staff: User, app: Application
) -> None:
    client.force_login(staff)
    response = client.post(url("delete", app.pk), {"post": "yes"}, follow=True)
    assert any("only the application's owner" in text for text in page_messages(response))
    assert Application.objects.filter(pk=app.pk).exists()
    assert last_entry().result == Result.FORBIDDEN
    assert not LogEntry.objects.filter(action_flag=DELETION).exists()


def test_the_owner_changes_its_own_application_as_staff(client: Client, staff: User) -> None:
    own = services.application_create(actor=staff, display_name="own")
    client.force_login(staff)
    values = form_values(client.get(url("change", own.pk))) | {"display_name": "renamed"}
    assert client.post(url("change", own.pk), values).status_code == 302
    assert Application.objects.get(pk=own.pk).display_name == "renamed"


# --- client secrets: shown once ---------------------------------------------------------------


def test_a_new_secret_is_shown_once_on_an_uncached_page(
    admin_client: Client, app: Application
) -> None:
    form = admin_client.get(url("secret_add", app.pk))
    assert form.status_code == 200 and b'name="description"' in form.content
    response = admin_client.post(url("secret_add", app.pk), {"description": "deploy"})
    assert response.status_code == 200
    secret = ClientSecret.objects.get()
    value = response.context["secret_value"]
    assert len(value) == 40 and value.startswith(secret.hint)
    assert response.content.decode().count(value) == 1
    assert "no-store" in response["Cache-Control"]
    entry = last_entry()
    assert (entry.operation, entry.result, entry.face) == (
        Operation.APPLICATION_SECRET_ADD,
        Result.SUCCESS,
        Face.CONSOLE,
    )

    # Never again: not in the session or its messages, nor on any page that lists it.
    assert value not in str(dict(admin_client.session.items()))
    assert all(value not in morsel.value for morsel in admin_client.cookies.values())
    change = admin_client.get(url("change", app.pk)).content.decode()
    assert str(secret.key_id) in change and "deploy" in change
    for page in (
        change,
        admin_client.get(url("changelist")).content.decode(),
        admin_client.get(url("secret_add", app.pk)).content.decode(),
    ):
        assert value not in page
        assert secret.salt not in page and secret.secret_hash not in page
    assert value not in str(list(ActivityEntry.objects.values_list()))


def test_a_refused_secret_shows_the_reason_and_creates_nothing(
    admin_client: Client, app: Application
) -> None:
    past = (timezone.localtime() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    response = admin_client.post(url("secret_add", app.pk), {"expires_at": past})
    assert response.status_code == 200
    assert "The end date must be in the future." in response.content.decode()
    assert "secret_value" not in response.context
    assert not ClientSecret.objects.exists()


def test_a_staff_non_owner_cannot_add_secrets(
    client: Client, staff: User, app: Application
) -> None:
    client.force_login(staff)
    response = client.post(url("secret_add", app.pk), {})
    assert response.status_code == 200
    [error] = response.context["form"].non_field_errors()
    assert "only the application's owner" in error
    assert not ClientSecret.objects.exists()
    assert last_entry().result == Result.FORBIDDEN


def test_people_without_admin_rights_get_no_credential_pages(
    client: Client, app: Application
) -> None:
    client.force_login(UserFactory.create(is_staff=True))
    assert client.get(url("secret_add", app.pk)).status_code == 403
    assert client.post(url("secret_add", app.pk), {}).status_code == 403
    assert not ClientSecret.objects.exists()


# --- certificates and revoking -----------------------------------------------------------------


def test_certificate_upload(admin_client: Client, app: Application) -> None:
    certificate, _ = make_certificate("uploaded.example")
    upload = SimpleUploadedFile("app.pem", pem(certificate), "application/x-pem-file")
    response = admin_client.post(
        url("certificate_add", app.pk), {"certificate": upload, "description": "prod"}, follow=True
    )
    stored = CertificateCredential.objects.get()
    assert stored.description == "prod"
    assert any(stored.thumbprint_sha1 in text for text in page_messages(response))
    assert "CN=uploaded.example" in response.content.decode()  # listed on the change page
    assert last_entry().operation == Operation.APPLICATION_CERTIFICATE_ADD


def test_a_private_key_upload_is_refused_without_echoing_it(
    admin_client: Client, app: Application
) -> None:
    certificate, key = make_certificate()
    upload = SimpleUploadedFile("bundle.pem", pem(certificate) + private_pem(key))
    response = admin_client.post(url("certificate_add", app.pk), {"certificate": upload})
    assert response.status_code == 200
    page = response.content.decode()
    assert "only the public certificate" in page and key_body(key) not in page
    assert not CertificateCredential.objects.exists()


def test_revoke_asks_then_deletes_through_the_service(
    admin_client: Client, app: Application, admin_user: User
) -> None:
    issued = services.application_secret_add(actor=admin_user, client_id=str(app.client_id))
    revoke_url = url("credential_revoke", app.pk, issued.credential.key_id)
    confirm = admin_client.get(revoke_url)
    assert confirm.status_code == 200
    assert str(issued.credential.key_id) in confirm.content.decode()
    assert issued.value not in confirm.content.decode()
    assert ClientSecret.objects.exists()
    response = admin_client.post(revoke_url)
    assert response.status_code == 302 and response["Location"] == url("change", app.pk)
    assert not ClientSecret.objects.exists()
    entry = last_entry()
    assert (entry.operation, entry.result) == (
        Operation.APPLICATION_CREDENTIAL_DELETE,
        Result.SUCCESS,
    )
    assert admin_client.get(revoke_url).status_code == 404


def test_the_change_page_links_to_the_credential_pages(
    admin_client: Client, app: Application, admin_user: User
) -> None:
    issued = services.application_secret_add(actor=admin_user, client_id=str(app.client_id))
    page = admin_client.get(url("change", app.pk)).content.decode()
    for link in (
        url("secret_add", app.pk),
        url("certificate_add", app.pk),
        url("credential_revoke", app.pk, issued.credential.key_id),
    ):
        assert link in page


# --- the principal behind an application --------------------------------------------------------


def test_an_application_principal_is_read_only_in_the_principal_admin(
    admin_client: Client, app: Application
) -> None:
    principal_url = reverse("admin:accounts_user_change", args=(app.user_id,))
    assert admin_client.get(principal_url).status_code == 200
    refused = admin_client.post(principal_url, {"username": "renamed", "is_active": ""})
    assert refused.status_code == 403
    assert (
        admin_client.post(
            reverse("admin:accounts_user_delete", args=(app.user_id,)), {"post": "yes"}
        ).status_code
        == 403
    )
    assert User.objects.get(pk=app.user_id).is_active
