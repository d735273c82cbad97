"""Console sign-in: the pages, throttling and lockout, sessions that expire, and their records."""

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from axes import signals as axes_signals
from axes.models import AccessAttempt
from django.conf import settings as django_settings
from django.contrib.admin.forms import AdminPasswordChangeForm
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.signals import user_login_failed
from django.contrib.sessions.models import Session
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from accounts.models import User
from accounts.roles import role_named
from tests.factories import UserFactory
from vaults import signals
from vaults.models import ActivityEntry, Face, Operation, Result, Vault
from vaults.permissions import grant_role

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as Response

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"
WRONG_PASSWORDS = [f"wrong guess number {number}" for number in range(1, 7)]
ADDRESS = "203.0.113.7"
OTHER_ADDRESS = "198.51.100.4"
SIGN_IN_OPERATIONS = [Operation.SIGN_IN, Operation.SIGN_OUT, Operation.SIGN_IN_LOCKOUT]
UNKNOWN_USER = re.compile(r"\(unknown user\) [0-9a-f]{12}")


def sign_in(
    client: Client,
    username: str,
    password: str,
    *,
    url: str = "/signin/",
    address: str = ADDRESS,
    next_url: str = "",
) -> "Response":
    data = {"username": username, "password": password}
    if next_url:
        data["next"] = next_url
    return client.post(url, data, REMOTE_ADDR=address)


def recorded() -> list[tuple[str, str]]:
    """(operation, result) of each sign-in entry, oldest first."""
    return [(entry.operation, entry.result) for entry in sign_in_entries()]


def sign_in_entries() -> list[ActivityEntry]:
    return list(ActivityEntry.objects.filter(operation__in=SIGN_IN_OPERATIONS).order_by("seq"))


def signed_in_user_id(client: Client) -> str | None:
    return client.session.get("_auth_user_id")


def main_section(html: str) -> str:
    found = re.search(r"<main\b.*</main>", html, re.DOTALL)
    assert found is not None
    return found.group(0)


def lock_out(client: Client, username: str, *, url: str = "/signin/") -> None:
    """Fail as many times as the limit allows; the last failure brings the lockout."""
    limit = django_settings.AXES_FAILURE_LIMIT
    for attempt, wrong in enumerate(WRONG_PASSWORDS[:limit], start=1):
        response = sign_in(client, username, wrong, url=url)
        assert response.status_code == (429 if attempt == limit else 200)


# --- every page needs sign-in --------------------------------------------------------------------


def test_anonymous_console_page_is_sent_to_sign_in(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/signin/?next=/"


def test_anonymous_admin_is_sent_to_its_own_throttled_sign_in(client: Client) -> None:
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/admin/"


def test_sign_in_page_is_open_to_anonymous_visitors(client: Client) -> None:
    response = client.get("/signin/?next=/admin/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="username"' in html and 'name="password"' in html
    assert 'name="next" value="/admin/"' in html
    assert django_settings.KVCONSOLE_DEPLOYMENT_NAME in html  # it is a console page
    assert "Sign out" not in html


# --- signing in ----------------------------------------------------------------------------------


def test_a_person_signs_in_and_it_is_recorded(client: Client, outsider: User) -> None:
    response = sign_in(client, outsider.username, PASSWORD)
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert signed_in_user_id(client) == str(outsider.pk)
    assert client.get("/").status_code == 200

    [entry] = sign_in_entries()
    assert (entry.operation, entry.result, entry.status_code) == (
        Operation.SIGN_IN,
        Result.SUCCESS,
        200,
    )
    assert (entry.actor_oid, entry.actor_name, entry.actor_kind) == (
        outsider.oid,
        outsider.username,
        User.Kind.USER,
    )
    assert (entry.face, entry.client_ip) == (Face.CONSOLE, ADDRESS)


def test_sign_in_goes_on_to_the_page_asked_for(client: Client) -> None:
    # Staff, not a superuser: a superuser's sign-in asks for an authenticator's code too
    # (tests/vaults/test_two_factor.py).
    staff = UserFactory.create(is_staff=True)
    response = sign_in(client, staff.username, PASSWORD, next_url="/admin/")
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_a_signed_in_person_is_sent_on_from_the_sign_in_page(
    client: Client, outsider: User
) -> None:
    client.force_login(outsider)
    response = client.get("/signin/")
    assert response.status_code == 302
    assert response["Location"] == "/"


@pytest.mark.parametrize("persona", ["system", "application"])
def test_non_people_are_refused_even_with_a_usable_password(
    client: Client, request: pytest.FixtureRequest, persona: str
) -> None:
    principal: User = request.getfixturevalue(persona)
    assert principal.has_usable_password() and principal.check_password(PASSWORD)

    response = sign_in(client, principal.username, PASSWORD)

    assert response.status_code == 200
    assert "Please enter a correct" in response.content.decode()
    assert signed_in_user_id(client) is None
    [entry] = sign_in_entries()
    assert (entry.operation, entry.result, entry.status_code) == (
        Operation.SIGN_IN,
        Result.UNAUTHORIZED,
        401,
    )
    assert (entry.actor_oid, entry.actor_kind, entry.client_ip) == (
        principal.oid,
        principal.kind,
        ADDRESS,
    )


def test_an_unknown_user_name_is_recorded_by_digest_without_an_object_id(client: Client) -> None:
    sign_in(client, "nobody", WRONG_PASSWORDS[0])
    sign_in(client, "x" * 300, WRONG_PASSWORDS[0])
    entries = sign_in_entries()
    assert [entry.actor_oid for entry in entries] == [None, None]
    assert all(UNKNOWN_USER.fullmatch(entry.actor_name) for entry in entries)
    assert entries[0].actor_name != entries[1].actor_name
    assert {entry.result for entry in entries} == {Result.UNAUTHORIZED}
    assert not User.objects.filter(username__in=["nobody", "x" * 150]).exists()
    assert not User.objects.filter(username__startswith="(unknown user)").exists()


def test_a_password_typed_as_the_user_name_is_never_recorded(client: Client) -> None:
    typed = "Tr0ub4dor&3-correct-horse"
    # Failures, the lockout they bring and an attempt refused during it all name a claimant.
    lock_out(client, typed)
    sign_in(client, typed, PASSWORD)
    sign_in(client, "someone else", WRONG_PASSWORDS[0])

    entries = ActivityEntry.objects.all()
    text = json.dumps([[str(value) for value in entry.__dict__.values()] for entry in entries])
    assert entries.count() == 8
    assert typed.lower() not in text.lower()
    *attempts, other = sign_in_entries()
    assert [entry.operation for entry in attempts[-2:]] == [Operation.SIGN_IN_LOCKOUT] * 2
    # Attempts with one name can still be correlated, and told from another name's.
    assert len({entry.actor_name for entry in attempts}) == 1
    assert UNKNOWN_USER.fullmatch(attempts[0].actor_name)
    assert UNKNOWN_USER.fullmatch(other.actor_name)
    assert other.actor_name != attempts[0].actor_name


# --- throttling and lockout ----------------------------------------------------------------------


def test_the_sixth_attempt_is_locked_out_even_with_the_right_password(
    client: Client, outsider: User
) -> None:
    lock_out(client, outsider.username)

    response = sign_in(client, outsider.username, PASSWORD)

    assert response.status_code == 429
    assert "Too many failed sign-in attempts" in response.content.decode()
    assert signed_in_user_id(client) is None
    assert client.get("/").status_code == 302
    # Five failures, the lockout they brought, and the refused sixth attempt.
    failure = (Operation.SIGN_IN, Result.UNAUTHORIZED)
    lockout = (Operation.SIGN_IN_LOCKOUT, Result.FORBIDDEN)
    assert recorded() == [failure] * 5 + [lockout, lockout]
    entries = sign_in_entries()
    assert {(entry.actor_oid, entry.face, entry.client_ip) for entry in entries} == {
        (outsider.oid, Face.CONSOLE, ADDRESS)
    }
    assert [entry.status_code for entry in entries if entry.operation == lockout[0]] == [403, 403]
    assert "locked out for 15 minutes" in entries[5].message
    assert "refused" in entries[6].message


@pytest.fixture
def ours_before_axes() -> Iterator[None]:
    """Our failure receiver connected ahead of django-axes's, the opposite of the usual order."""
    user_login_failed.disconnect(axes_signals.handle_user_login_failed)
    user_login_failed.connect(axes_signals.handle_user_login_failed)
    yield
    user_login_failed.disconnect(dispatch_uid="vaults.sign_in_failed")
    signals.connect()


def test_the_record_does_not_depend_on_which_receiver_runs_first(
    ours_before_axes: None, client: Client, outsider: User
) -> None:
    receivers, _ = user_login_failed._live_receivers("django.contrib.auth")
    assert receivers.index(axes_signals.handle_user_login_failed) > receivers.index(
        signals._sign_in_failed
    )
    lock_out(client, outsider.username)
    sign_in(client, outsider.username, PASSWORD)

    failure = (Operation.SIGN_IN, Result.UNAUTHORIZED)
    lockout = (Operation.SIGN_IN_LOCKOUT, Result.FORBIDDEN)
    assert recorded() == [failure] * 5 + [lockout, lockout]


def test_no_password_is_ever_recorded(client: Client, outsider: User) -> None:
    lock_out(client, outsider.username)
    sign_in(client, outsider.username, PASSWORD)
    sign_in(client, "nobody", WRONG_PASSWORDS[0])

    entries = ActivityEntry.objects.all()
    text = json.dumps(
        [[str(value) for value in entry.__dict__.values()] for entry in entries]
    ).lower()
    assert entries.count() >= 8
    for password in [PASSWORD, *WRONG_PASSWORDS]:
        assert password not in text
    # Nor in the throttle's own records of the attempts.
    attempts = " ".join(attempt.post_data for attempt in AccessAttempt.objects.all())
    assert "password=" in attempts
    for password in [PASSWORD, *WRONG_PASSWORDS]:
        assert password not in attempts


def test_the_lockout_page_does_not_tell_whether_the_user_name_exists(
    client: Client, outsider: User
) -> None:
    limit = django_settings.AXES_FAILURE_LIMIT
    for _ in range(limit - 1):
        sign_in(client, outsider.username, WRONG_PASSWORDS[0])
        sign_in(client, "nobody", WRONG_PASSWORDS[0])
    for_person = sign_in(client, outsider.username, WRONG_PASSWORDS[0])
    for_nobody = sign_in(client, "nobody", WRONG_PASSWORDS[0])

    assert for_person.status_code == for_nobody.status_code == 429
    person_page = main_section(for_person.content.decode())
    assert person_page == main_section(for_nobody.content.decode())
    assert outsider.username not in person_page and "nobody" not in person_page


def test_lockout_holds_one_user_name_from_one_address(client: Client, outsider: User) -> None:
    neighbour = UserFactory.create(username="neighbour")
    lock_out(client, outsider.username)

    assert sign_in(client, outsider.username, PASSWORD).status_code == 429
    assert sign_in(client, neighbour.username, PASSWORD).status_code == 302
    client.post("/signout/", REMOTE_ADDR=ADDRESS)
    elsewhere = sign_in(client, outsider.username, PASSWORD, address=OTHER_ADDRESS)
    assert elsewhere.status_code == 302
    assert signed_in_user_id(client) == str(outsider.pk)


def test_the_admin_signs_in_through_the_throttled_console_sign_in(
    client: Client, owner: User
) -> None:
    response = client.get("/admin/login/?next=/admin/vaults/")
    assert response.status_code == 302
    assert response["Location"] == "/signin/?next=%2Fadmin%2Fvaults%2F"
    # A form posted to the admin's own address checks nothing.
    assert sign_in(client, owner.username, PASSWORD, url="/admin/login/").status_code == 302
    assert signed_in_user_id(client) is None
    lock_out(client, owner.username)

    response = sign_in(client, owner.username, PASSWORD)

    assert response.status_code == 429
    assert signed_in_user_id(client) is None
    assert recorded()[-1] == (Operation.SIGN_IN_LOCKOUT, Result.FORBIDDEN)


def test_a_successful_sign_in_clears_earlier_failures(client: Client, outsider: User) -> None:
    limit = django_settings.AXES_FAILURE_LIMIT
    for wrong in WRONG_PASSWORDS[: limit - 1]:
        sign_in(client, outsider.username, wrong)
    assert sign_in(client, outsider.username, PASSWORD).status_code == 302
    client.post("/signout/", REMOTE_ADDR=ADDRESS)

    for wrong in WRONG_PASSWORDS[: limit - 1]:
        assert sign_in(client, outsider.username, wrong).status_code == 200
    assert sign_in(client, outsider.username, PASSWORD).status_code == 302


def test_the_lockout_ends_after_the_cool_off(client: Client, outsider: User) -> None:
    lock_out(client, outsider.username)
    assert sign_in(client, outsider.username, PASSWORD).status_code == 429

    # Attempts made while locked out did not extend it: only the counted failures moved back.
    AccessAttempt.objects.update(
        attempt_time=timezone.now() - django_settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    )

    assert sign_in(client, outsider.username, PASSWORD).status_code == 302
    assert signed_in_user_id(client) == str(outsider.pk)


def test_the_failure_limit_is_a_setting(client: Client, outsider: User, settings: Any) -> None:
    settings.AXES_FAILURE_LIMIT = 2
    assert sign_in(client, outsider.username, WRONG_PASSWORDS[0]).status_code == 200
    assert sign_in(client, outsider.username, WRONG_PASSWORDS[1]).status_code == 429
    assert sign_in(client, outsider.username, PASSWORD).status_code == 429


def test_throttle_and_session_settings_come_from_the_environment(tmp_path: Path) -> None:
    program = (
        "import json; from django.conf import settings; print(json.dumps(["
        "settings.AXES_FAILURE_LIMIT, settings.AXES_COOLOFF_TIME.total_seconds(), "
        "settings.SESSION_COOKIE_AGE, settings.SESSION_COOKIE_SECURE]))"
    )
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "kvconsole.settings",
        "KVCONSOLE_VAR_DIR": str(tmp_path),
        "KVCONSOLE_SECRET_KEY": "test-only",
        "KVCONSOLE_LOGIN_FAILURE_LIMIT": "3",
        "KVCONSOLE_LOGIN_COOLOFF_MINUTES": "60",
        "KVCONSOLE_SESSION_IDLE_MINUTES": "5",
        "KVCONSOLE_DEBUG": "0",
    }
    output = subprocess.run(
        [sys.executable, "-c", program],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(output) == [3, 3600.0, 300, True]


# --- signing out ---------------------------------------------------------------------------------


def test_sign_out_is_by_post_and_recorded(client: Client, outsider: User) -> None:
    sign_in(client, outsider.username, PASSWORD)

    assert client.get("/signout/", REMOTE_ADDR=ADDRESS).status_code == 405
    assert signed_in_user_id(client) == str(outsider.pk)
    response = client.post("/signout/", REMOTE_ADDR=ADDRESS)

    assert response.status_code == 302
    assert response["Location"] == "/signin/"
    assert signed_in_user_id(client) is None
    assert client.get("/").status_code == 302
    assert recorded() == [(Operation.SIGN_IN, Result.SUCCESS), (Operation.SIGN_OUT, Result.SUCCESS)]
    entry = sign_in_entries()[-1]
    assert (entry.actor_oid, entry.client_ip, entry.face) == (outsider.oid, ADDRESS, Face.CONSOLE)


def test_the_header_shows_who_is_signed_in_and_a_sign_out_button(
    client: Client, outsider: User
) -> None:
    client.force_login(outsider)
    html = client.get("/").content.decode()
    assert (
        f'<span class="principal" title="{outsider.username}">{outsider.display_name}</span>'
        in html
    )
    assert '<form method="post" action="/signout/">' in html


# --- passwords -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "weak",
    ["short1", "password123", "12345678901234", "alice.liddell"],
    ids=["too short", "common", "numeric", "like the user name"],
)
def test_weak_passwords_are_refused(weak: str) -> None:
    person = UserFactory.create(username="alice.liddell", display_name="Alice Liddell")
    with pytest.raises(ValidationError):
        validate_password(weak, person)
    form = AdminPasswordChangeForm(person, {"password1": weak, "password2": weak})
    assert not form.is_valid()
    validate_password("a long and unusual passphrase 7", person)


# --- sessions ------------------------------------------------------------------------------------


def test_a_session_lasts_the_idle_period_and_ends_with_the_browser(
    client: Client, outsider: User
) -> None:
    response = sign_in(client, outsider.username, PASSWORD)

    assert client.session.get_expiry_age() == django_settings.SESSION_COOKIE_AGE == 30 * 60
    cookie = response.cookies[django_settings.SESSION_COOKIE_NAME]
    assert cookie["max-age"] == "" and cookie["expires"] == ""  # a browser-session cookie
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    session = Session.objects.get(session_key=client.session.session_key)
    remaining = session.expire_date - timezone.now()
    assert timedelta(minutes=29) < remaining <= timedelta(minutes=30)


def test_the_idle_period_is_a_setting(client: Client, outsider: User, settings: Any) -> None:
    settings.SESSION_COOKIE_AGE = 5 * 60
    sign_in(client, outsider.username, PASSWORD)
    assert client.session.get_expiry_age() == 5 * 60


def test_each_request_renews_the_session(client: Client, outsider: User) -> None:
    sign_in(client, outsider.username, PASSWORD)
    key = client.session.session_key
    Session.objects.filter(session_key=key).update(
        expire_date=timezone.now() + timedelta(minutes=1)
    )

    assert client.get("/").status_code == 200

    remaining = Session.objects.get(session_key=key).expire_date - timezone.now()
    assert remaining > timedelta(minutes=29)


def test_an_expired_session_is_no_longer_signed_in(client: Client, outsider: User) -> None:
    sign_in(client, outsider.username, PASSWORD)
    assert client.get("/").status_code == 200
    Session.objects.filter(session_key=client.session.session_key).update(
        expire_date=timezone.now() - timedelta(seconds=1)
    )

    response = client.get("/")

    assert response.status_code == 302
    assert response["Location"] == "/signin/?next=/"


# --- the CLI's --as ------------------------------------------------------------------------------


def test_cli_as_a_person_has_exactly_that_persons_access(outsider: User, vault: Vault) -> None:
    show = ("kv", "vault", "show", "--name", vault.name, "--as", outsider.username)
    with pytest.raises(CommandError) as refused:
        call_command(*show, stdout=StringIO())
    assert refused.value.returncode != 0

    reader = role_named("Key Vault Reader")
    assert reader is not None
    grant_role(outsider, reader, vault)
    out = StringIO()
    call_command(*show, stdout=out)

    assert json.loads(out.getvalue())["name"] == vault.name
    [refusal, success] = ActivityEntry.objects.filter(operation=Operation.VAULT_GET).order_by("seq")
    assert (refusal.actor_oid, refusal.face) == (outsider.oid, Face.CLI)
    assert refusal.result != Result.SUCCESS
    assert (success.actor_oid, success.result) == (outsider.oid, Result.SUCCESS)
