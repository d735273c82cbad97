"""Principals: only people sign in; system principals are made on demand and never log in."""

from typing import Any

import pytest
from django.contrib.auth import authenticate
from django.test import Client, RequestFactory

from accounts import services
from accounts.backends import PrincipalBackend
from accounts.models import User
from accounts.services import principals
from kvconsole.errors import NotFound
from tests.factories import ApplicationFactory, SystemPrincipalFactory, UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


def attempt(username: str, password: str) -> User | None:
    """Authenticate as the sign-in pages do: with the request, which the throttle needs."""
    request = RequestFactory().post("/signin/")
    return authenticate(request, username=username, password=password)


# --- signing in ----------------------------------------------------------------------------------


def test_a_person_signs_in_with_their_password() -> None:
    person = UserFactory.create(username="alice")
    assert attempt("alice", PASSWORD) == person
    assert attempt("alice", "wrong") is None


@pytest.mark.parametrize(
    "factory", [SystemPrincipalFactory, ApplicationFactory], ids=["system", "application"]
)
def test_non_people_never_sign_in_even_with_a_usable_password(factory: Any) -> None:
    principal = factory.create(username="robot")
    principal.set_password(PASSWORD)
    principal.save()
    assert principal.has_usable_password() and principal.check_password(PASSWORD)
    assert attempt("robot", PASSWORD) is None


@pytest.mark.parametrize(
    "factory", [SystemPrincipalFactory, ApplicationFactory], ids=["system", "application"]
)
def test_non_people_never_sign_in_even_as_superusers(factory: Any) -> None:
    factory.create(username="robot", is_superuser=True, is_staff=True)
    assert attempt("robot", PASSWORD) is None


def test_an_inactive_person_cannot_sign_in() -> None:
    UserFactory.create(username="alice", is_active=False)
    assert attempt("alice", PASSWORD) is None


def test_the_login_page_refuses_non_people(client: Client) -> None:
    SystemPrincipalFactory.create(username="robot", is_staff=True, is_superuser=True)
    UserFactory.create(username="alice", is_staff=True)
    refused = client.post("/signin/", {"username": "robot", "password": PASSWORD})
    assert refused.status_code == 200  # the form again, with an error
    assert "_auth_user_id" not in client.session
    accepted = client.post("/signin/", {"username": "alice", "password": PASSWORD})
    assert accepted.status_code == 302
    assert client.session["_auth_user_id"] == str(User.objects.get(username="alice").pk)


def test_a_session_of_a_non_person_is_not_honoured(client: Client) -> None:
    """A session for a principal that may not sign in (say one whose kind was changed)
    does not authenticate requests: the backend's get_user applies the same rule."""
    principal = UserFactory.create(username="alice", is_staff=True, is_superuser=True)
    client.force_login(principal)
    assert client.get("/admin/").status_code == 200
    User.objects.filter(pk=principal.pk).update(kind=User.Kind.APPLICATION)
    assert client.get("/admin/").status_code == 302  # back to the login page
    assert PrincipalBackend().get_user(principal.pk) is None


# --- system principals ---------------------------------------------------------------------------


def test_system_principal_is_created_on_first_use() -> None:
    principal = services.system_principal(name="cron:purge")
    principal.refresh_from_db()
    assert (principal.username, principal.display_name, principal.kind) == (
        "cron:purge",
        "cron:purge",
        User.Kind.SYSTEM,
    )
    assert principal.kind == User.Kind.SYSTEM and principal.is_active
    assert not principal.is_superuser and not principal.is_staff
    assert not principal.has_usable_password()
    assert attempt("cron:purge", "") is None


def test_system_principal_is_idempotent() -> None:
    first = services.system_principal(name="cron:purge")
    second = services.system_principal(name="cron:purge")
    assert first.pk == second.pk and first.oid == second.oid
    assert User.objects.filter(username="cron:purge").count() == 1
    assert not second.has_usable_password()


def test_system_principal_keeps_its_oid_and_display_name() -> None:
    first = services.system_principal(name="cron:purge")
    User.objects.filter(pk=first.pk).update(display_name="Nightly purge")
    again = services.system_principal(name="cron:purge")
    assert (again.oid, again.display_name) == (first.oid, "Nightly purge")


@pytest.mark.parametrize("kind", [User.Kind.USER, User.Kind.APPLICATION])
def test_system_principal_will_not_take_over_another_principal(kind: str) -> None:
    UserFactory.create(username="taken", kind=kind)
    with pytest.raises(NotFound) as caught:
        services.system_principal(name="taken")
    assert caught.value.code == "PrincipalNotFound"
    taken = User.objects.get(username="taken")
    assert taken.kind == kind and taken.has_usable_password()


def test_cli_principal_is_the_os_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(principals.getpass, "getuser", lambda: "operator")
    principal = services.cli_principal()
    assert (principal.username, principal.kind) == ("cli:operator", User.Kind.SYSTEM)
    assert services.cli_principal().pk == principal.pk


# --- finding principals --------------------------------------------------------------------------


def test_principal_get_finds_an_active_principal() -> None:
    person = UserFactory.create(username="alice")
    application = ApplicationFactory.create(username="app-1")
    assert services.principal_get(username="alice") == person
    assert services.principal_get(username="app-1") == application


def test_principal_get_refuses_an_unknown_name() -> None:
    with pytest.raises(NotFound) as caught:
        services.principal_get(username="nobody")
    assert caught.value.code == "PrincipalNotFound"
    assert "nobody" in caught.value.message


def test_principal_get_refuses_an_inactive_principal() -> None:
    UserFactory.create(username="alice", is_active=False)
    with pytest.raises(NotFound) as caught:
        services.principal_get(username="alice")
    assert caught.value.code == "PrincipalNotFound"
