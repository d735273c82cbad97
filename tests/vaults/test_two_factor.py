"""Two-factor sign-in: the code after the password for whoever enrolled an authenticator,
superusers held to it, enrolment from the console, wrong codes counted by the sign-in
lockout, and the reset by a deployment principal."""

import base64
import re
import time
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import User
from kvconsole.errors import Conflict, Forbidden
from tests.cli import kv, kv_fails
from tests.factories import SuperuserFactory, UserFactory
from tests.twofactor import code, enrol, wrong_code
from vaults import services, twofactor
from vaults.models import ActivityEntry, Face, Operation, Result

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"
ADDRESS = "203.0.113.7"


@pytest.fixture(autouse=True)
def _no_device_throttle(settings: Any) -> None:
    # django-otp makes a device wait 1, 2, 4... seconds after each wrong code; the lockout
    # tested here is django-axes', which counts wrong codes whatever the device says.
    settings.OTP_TOTP_THROTTLE_FACTOR = 0


def password_step(client: Client, user: User, next_url: str = "") -> Any:
    data = {"username": user.username, "password": PASSWORD}
    if next_url:
        data["next"] = next_url
    return client.post("/signin/", data, REMOTE_ADDR=ADDRESS)


def code_step(client: Client, value: str) -> Any:
    return client.post("/signin/code/", {"code": value}, REMOTE_ADDR=ADDRESS)


def signed_in(client: Client) -> str | None:
    return client.session.get("_auth_user_id")


def entries(*operations: str) -> list[tuple[str, str, str]]:
    return [
        (entry.operation, entry.result, entry.message)
        for entry in ActivityEntry.objects.filter(operation__in=operations).order_by("seq")
    ]


# --- signing in with a code ------------------------------------------------------------------


def test_an_enrolled_person_signs_in_with_password_then_code(client: Client) -> None:
    person = UserFactory.create()
    device = enrol(person)

    first = password_step(client, person, next_url="/vaults/")

    assert first.status_code == 302 and first["Location"] == "/signin/code/"
    assert signed_in(client) is None
    assert entries(Operation.SIGN_IN) == []  # not signed in until the code
    assert client.get("/").status_code == 302
    page = client.get("/signin/code/")
    assert page.status_code == 200 and 'autocomplete="one-time-code"' in page.content.decode()

    second = code_step(client, code(device))

    assert second.status_code == 302 and second["Location"] == "/vaults/"
    assert signed_in(client) == str(person.pk)
    assert client.session[DEVICE_ID_SESSION_KEY] == device.persistent_id
    assert entries(Operation.SIGN_IN) == [(Operation.SIGN_IN, Result.SUCCESS, "")]
    entry = ActivityEntry.objects.get(operation=Operation.SIGN_IN)
    assert (entry.face, entry.client_ip, entry.actor_oid) == (Face.CONSOLE, ADDRESS, person.oid)


def test_a_person_without_an_authenticator_signs_in_with_the_password(client: Client) -> None:
    person = UserFactory.create()
    response = password_step(client, person)
    assert response.status_code == 302 and response["Location"] == "/"
    assert signed_in(client) == str(person.pk)


def test_a_wrong_code_is_refused_and_recorded(client: Client) -> None:
    person = UserFactory.create()
    device = enrol(person)
    password_step(client, person)

    response = code_step(client, wrong_code(device))

    assert response.status_code == 200
    assert "That code is wrong or expired." in response.content.decode()
    assert signed_in(client) is None
    assert entries(Operation.SIGN_IN) == [
        (
            Operation.SIGN_IN,
            Result.UNAUTHORIZED,
            "Sign-in refused: wrong or expired authenticator code.",
        )
    ]
    # The right code still works afterwards, within the limit.
    assert code_step(client, code(device)).status_code == 302
    assert signed_in(client) == str(person.pk)


def test_a_code_is_taken_once(client: Client) -> None:
    person = UserFactory.create()
    device = enrol(person)
    used = code(device)
    password_step(client, person)
    assert code_step(client, used).status_code == 302
    client.post("/signout/")
    password_step(client, person)
    assert code_step(client, used).status_code == 200
    assert signed_in(client) is None


def test_wrong_codes_count_towards_the_lockout_with_wrong_passwords(client: Client) -> None:
    person = UserFactory.create()
    device = enrol(person)
    limit = django_settings.AXES_FAILURE_LIMIT
    client.post("/signin/", {"username": person.username, "password": "no"}, REMOTE_ADDR=ADDRESS)
    password_step(client, person)
    for attempt in range(2, limit + 1):
        response = code_step(client, wrong_code(device))
        assert response.status_code == (429 if attempt == limit else 200), attempt

    # Locked out: the right password and the right code are refused alike.
    assert password_step(client, person).status_code == 429
    assert code_step(client, code(device)).status_code == 302  # back to the password step
    assert signed_in(client) is None
    recorded = entries(Operation.SIGN_IN, Operation.SIGN_IN_LOCKOUT)
    assert [result for _, result, _ in recorded[:limit]] == [Result.UNAUTHORIZED] * limit
    assert recorded[limit][:2] == (Operation.SIGN_IN_LOCKOUT, Result.FORBIDDEN)


def test_the_code_step_refuses_a_pair_locked_out_meanwhile(client: Client, settings: Any) -> None:
    person = UserFactory.create()
    device = enrol(person)
    password_step(client, person)
    elsewhere = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        elsewhere.post(
            "/signin/", {"username": person.username, "password": "no"}, REMOTE_ADDR=ADDRESS
        )

    response = code_step(client, code(device))

    assert response.status_code == 429
    assert signed_in(client) is None
    assert entries(Operation.SIGN_IN_LOCKOUT)[-1][:2] == (
        Operation.SIGN_IN_LOCKOUT,
        Result.FORBIDDEN,
    )


def test_the_code_step_lapses(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    person = UserFactory.create()
    device = enrol(person)
    password_step(client, person)
    later = time.time() + twofactor.PENDING_SECONDS + 1
    monkeypatch.setattr(twofactor.time, "time", lambda: later)
    response = code_step(client, code(device))
    assert response.status_code == 302 and response["Location"] == "/signin/"
    assert signed_in(client) is None


def test_the_code_step_without_a_password_sends_to_sign_in(client: Client) -> None:
    assert client.get("/signin/code/")["Location"] == "/signin/"


# --- superusers --------------------------------------------------------------------------------


def test_a_superuser_without_an_authenticator_must_enrol_before_anything_else(
    client: Client,
) -> None:
    admin = SuperuserFactory.create()
    assert password_step(client, admin).status_code == 302
    for path in ("/", "/vaults/", "/admin/", "/activity/"):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"] == "/account/two-factor/"
    htmx = client.get("/vaults/", headers={"HX-Request": "true"})
    assert htmx["HX-Redirect"] == "/account/two-factor/"

    page = client.get("/account/two-factor/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "Superusers must sign in with an authenticator" in html
    assert '<img class="qr" src="/account/two-factor/qr.svg"' in html
    assert "no-store" in page["Cache-Control"]
    # The secret to type by hand is the key being enrolled.
    secret = re.search(r"<code>([A-Z2-7 ]+)</code>", html)
    assert secret is not None
    key = bytes.fromhex(client.session[twofactor.ENROLLING])
    assert secret.group(1).replace(" ", "") == base64.b32encode(key).decode().rstrip("=")

    qr = client.get("/account/two-factor/qr.svg")
    assert qr.status_code == 200 and qr["Content-Type"] == "image/svg+xml"
    assert qr.content.startswith(b"<?xml") and b"<svg" in qr.content
    assert "no-store" in qr["Cache-Control"]


def enrolment_code(client: Client, *, steps_ahead: int = 0) -> str:
    """The code an authenticator app would show for the key being enrolled."""
    key = client.session[twofactor.ENROLLING]
    totp = TOTP(bytes.fromhex(key), 30, 0, 6)
    totp.time = time.time() + 30 * steps_ahead
    return f"{totp.token():06d}"


def test_a_superuser_enrols_and_reaches_the_console_and_admin(client: Client) -> None:
    admin = SuperuserFactory.create()
    password_step(client, admin)
    client.get("/account/two-factor/")

    wrong = client.post("/account/two-factor/", {"code": "000000"})
    assert wrong.status_code == 200
    assert "That code is wrong or expired." in wrong.content.decode()
    assert not TOTPDevice.objects.filter(user=admin).exists()

    done = client.post("/account/two-factor/", {"code": enrolment_code(client)})

    assert done.status_code == 303 and done["Location"] == "/"
    device = TOTPDevice.objects.get(user=admin)
    assert device.confirmed
    assert client.get("/").status_code == 200
    assert client.get("/admin/").status_code == 200
    assert twofactor.ENROLLING not in client.session
    assert [
        (operation, result) for operation, result, _ in entries(Operation.TWO_FACTOR_ENROL)
    ] == [
        (Operation.TWO_FACTOR_ENROL, Result.BAD_PARAMETER),
        (Operation.TWO_FACTOR_ENROL, Result.SUCCESS),
    ]
    assert "enrolled" in client.get("/account/two-factor/").content.decode()
    # From now on the sign-in asks for the code.
    client.post("/signout/")
    assert password_step(client, admin)["Location"] == "/signin/code/"


def test_a_superuser_session_without_the_code_is_sent_to_sign_in_again(client: Client) -> None:
    admin = SuperuserFactory.create()
    client.force_login(admin)
    assert client.get("/").status_code == 200
    session = client.session
    del session[DEVICE_ID_SESSION_KEY]
    session.save()

    response = client.get("/vaults/?q=x")

    assert response.status_code == 302
    assert response["Location"] == "/signin/?next=%2Fvaults%2F%3Fq%3Dx"
    assert signed_in(client) is None


def test_the_admin_shows_no_authenticator_or_its_secret(client: Client) -> None:
    admin = SuperuserFactory.create()
    client.force_login(admin)
    assert client.get("/admin/otp_totp/totpdevice/").status_code == 404
    assert "otp_totp" not in client.get("/admin/").content.decode()


def test_the_admin_login_leads_to_the_same_sign_in(client: Client) -> None:
    response = client.get("/admin/", follow=True)
    assert response.redirect_chain[-1][0] == "/signin/?next=%2Fadmin%2F"


# --- operators enrol from the console ----------------------------------------------------------


def test_an_operator_enrols_from_the_console(client: Client) -> None:
    person = UserFactory.create()
    client.force_login(person)
    page = client.get("/account/two-factor/").content.decode()
    assert "Enrol an authenticator app" in page and "Superusers must" not in page
    assert client.post("/account/two-factor/", {"code": enrolment_code(client)}).status_code == 303
    assert client.get("/").status_code == 200
    client.post("/signout/")
    assert password_step(client, person)["Location"] == "/signin/code/"


def test_the_header_links_to_two_factor(client: Client) -> None:
    client.force_login(UserFactory.create())
    assert 'href="/account/two-factor/"' in client.get("/").content.decode()


def test_nothing_of_the_enrolment_page_breaks_its_policy(client: Client) -> None:
    client.force_login(UserFactory.create())
    response = client.get("/account/two-factor/")
    policy = response["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "img-src" not in policy
    html = response.content.decode()
    assert "<script>" not in html and " style=" not in html and "data:" not in html


def test_an_enrolled_person_cannot_enrol_a_second_authenticator() -> None:
    person = UserFactory.create()
    enrol(person)
    with pytest.raises(Conflict):
        services.two_factor_enrol(actor=person, key="00" * 20, code="123456")
    assert entries(Operation.TWO_FACTOR_ENROL)[-1][1] == Result.CONFLICT


def test_no_qr_code_without_an_enrolment_under_way(client: Client) -> None:
    client.force_login(UserFactory.create())
    assert client.get("/account/two-factor/qr.svg").status_code == 404


# --- reset -------------------------------------------------------------------------------------


def test_the_cli_resets_a_lost_authenticator(client: Client) -> None:
    admin = SuperuserFactory.create()
    client.force_login(admin)
    assert client.get("/").status_code == 200

    result = kv("ad", "user", "two-factor", "reset", "--name", admin.username)

    assert result == {"userPrincipalName": admin.username, "authenticatorsRemoved": 1}
    assert not TOTPDevice.objects.filter(user=admin).exists()
    # The session the removed authenticator verified is verified no longer.
    assert client.get("/")["Location"] == "/account/two-factor/"
    [entry] = ActivityEntry.objects.filter(operation=Operation.TWO_FACTOR_RESET)
    assert (entry.result, entry.face, entry.target) == (
        Result.SUCCESS,
        Face.CLI,
        f"users/{admin.username}/authenticator",
    )


def test_only_deployment_principals_reset_authenticators(system: User) -> None:
    person = UserFactory.create()
    enrol(person)
    colleague = UserFactory.create()
    with pytest.raises(Forbidden):
        services.two_factor_reset(actor=colleague, username=person.username)
    assert TOTPDevice.objects.filter(user=person).exists()
    assert services.two_factor_reset(actor=SuperuserFactory.create(), username=person.username)
    refused = kv_fails("ad", "user", "two-factor", "reset", "--name", "nobody-here")
    assert refused.returncode == 3
    refused = kv_fails(
        "ad", "user", "two-factor", "reset", "--name", person.username, "--as", colleague.username
    )
    assert refused.returncode == 4
    results = [result for _, result, _ in entries(Operation.TWO_FACTOR_RESET)]
    assert results == [Result.FORBIDDEN, Result.SUCCESS, Result.NOT_FOUND, Result.FORBIDDEN]
