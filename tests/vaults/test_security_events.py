"""The two security events: UnauthorizedAccessAttempts, after a burst of refusals of one
principal on one vault (through the services and through the vault endpoint), and
SignInLockout, when django-axes locks a console sign-in out."""

import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import tokens
from accounts.models import User
from keys import services as key_services
from kvconsole.errors import Forbidden
from tests.factories import UserFactory, VaultFactory
from tests.vaults.test_sessions import ADDRESS, WRONG_PASSWORDS, lock_out, sign_in
from vaults import events, security
from vaults import services as vault_services
from vaults.models import (
    ActivityEntry,
    AlertRule,
    Event,
    EventType,
    Notification,
    Operation,
    Result,
    Vault,
)
from vaults.services.sessions import unknown_user_name

pytestmark = pytest.mark.django_db

UNAUTHORIZED = EventType.UNAUTHORIZED_ACCESS_ATTEMPTS
LOCKOUT = EventType.SIGN_IN_LOCKOUT


def watch(name: str, *, attempts: int = 3, window: int = 60, **scope: Any) -> AlertRule:
    return AlertRule.objects.create(
        name=name,
        event_types=[UNAUTHORIZED],
        channel=AlertRule.Channel.WEBHOOK,
        target=f"https://hooks.example/{name}",
        attempts=attempts,
        window_seconds=window,
        **scope,
    )


def refuse(actor: User, vault: Vault, times: int = 1) -> None:
    """`times` refused calls of `actor` on `vault`, through the key services."""
    for _ in range(times):
        with pytest.raises(Forbidden):
            key_services.key_list(actor=actor, vault_name=vault.name)


def raised() -> list[Event]:
    return list(Event.objects.filter(event_type=UNAUTHORIZED).order_by("id"))


@pytest.fixture
def intruder(db: None) -> User:
    return UserFactory.create(username="intruder")


@pytest.fixture
def clock_ahead(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """Move the real time (the activity log's and the windows') forward by some seconds."""
    real_now = timezone.now
    ahead = timedelta(0)

    def moved() -> datetime:
        return real_now() + ahead

    def advance(seconds: float) -> None:
        nonlocal ahead
        ahead += timedelta(seconds=seconds)

    monkeypatch.setattr(timezone, "now", moved)
    return advance


# --- UnauthorizedAccessAttempts ------------------------------------------------------------------


def test_a_burst_of_refusals_raises_one_event_for_the_rule(
    vault: Vault, intruder: User, clock_ahead: Callable[[float], None]
) -> None:
    # Windows are counted from the epoch; start a test at the beginning of one.
    clock_ahead(60 - timezone.now().timestamp() % 60 + 1)
    rule = watch("burst", vault_name=vault.name)
    refuse(intruder, vault, 2)
    assert raised() == []

    refuse(intruder, vault)
    [event] = raised()
    assert (event.topic, event.subject, event.vault_name) == (
        vault.resource_id,
        vault.name,
        vault.name,
    )
    assert event.data == {
        **events.vault_data(vault),
        "PrincipalId": str(intruder.oid),
        "PrincipalName": "intruder",
        "PrincipalType": User.Kind.USER,
        "Attempts": 3,
        "WindowSeconds": 60,
    }
    [notification] = Notification.objects.all()
    assert notification.rule == rule and notification.event == event

    # A sustained attack: one event per window, not one per refusal.
    refuse(intruder, vault, 5)
    assert len(raised()) == 1
    clock_ahead(60)
    refuse(intruder, vault, 3)
    assert len(raised()) == 2


def test_refusals_older_than_the_window_do_not_count(
    vault: Vault, intruder: User, clock_ahead: Callable[[float], None]
) -> None:
    watch("slow", vault_name=vault.name, window=30)
    refuse(intruder, vault, 2)
    clock_ahead(31)
    refuse(intruder, vault, 2)
    assert raised() == []
    refuse(intruder, vault)
    assert len(raised()) == 1


def test_each_rule_counts_with_its_own_number_and_is_notified_alone(
    vault: Vault, intruder: User
) -> None:
    strict = watch("strict", attempts=2, resource_group=vault.resource_group.name)
    lenient = watch("lenient", attempts=4)
    AlertRule.objects.create(
        name="every-event-here",
        vault_name=vault.name,
        event_types=[UNAUTHORIZED, EventType.KEY_NEW_VERSION_CREATED],
        channel=AlertRule.Channel.EMAIL,
        target="security@example.com",
        attempts=100,
    )
    refuse(intruder, vault, 2)
    assert [n.rule for n in Notification.objects.all()] == [strict]
    refuse(intruder, vault, 2)
    assert sorted(n.rule.name for n in Notification.objects.all() if n.rule) == [
        lenient.name,
        strict.name,
    ]
    assert len(raised()) == 2


def test_refusals_are_counted_per_principal_and_per_vault(vault: Vault, intruder: User) -> None:
    watch("here", vault_name=vault.name)
    other_vault = VaultFactory.create(name="other-vault")
    refuse(intruder, vault, 2)
    refuse(UserFactory.create(username="someone-else"), vault, 2)
    refuse(intruder, other_vault, 2)
    assert raised() == []


def test_rules_that_are_off_or_elsewhere_count_nothing(vault: Vault, intruder: User) -> None:
    watch("off", vault_name=vault.name, enabled=False)
    watch("elsewhere", vault_name="another-vault")
    watch("on-one-key", vault_name=vault.name, key_name="payments")
    refuse(intruder, vault, 5)
    assert raised() == []


def test_only_refusals_pay_for_the_count(
    vault: Vault, intruder: User, system: User, make_key: Any
) -> None:
    watch("here", vault_name=vault.name)
    make_key("k", kty="EC")
    with CaptureQueriesContext(connection) as succeeded:
        key_services.key_list(actor=system, vault_name=vault.name)
    with CaptureQueriesContext(connection) as refused:
        refuse(intruder, vault)
    assert not any("alertrule" in query["sql"] for query in succeeded.captured_queries)
    assert any("alertrule" in query["sql"] for query in refused.captured_queries)


def test_refusals_on_no_vault_are_not_counted(intruder: User) -> None:
    watch("everywhere")
    for _ in range(4):
        with pytest.raises(Forbidden):
            vault_services.resource_group_create(actor=intruder, name="mine", location="x")
    assert raised() == []


@pytest.fixture
def plan_on_indexes_only() -> Iterator[None]:
    """On PostgreSQL, a small table would be read whole whatever its indexes; forbid that."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET enable_seqscan = off")
        yield
        with connection.cursor() as cursor:
            cursor.execute("RESET enable_seqscan")
    else:
        yield


@pytest.mark.usefixtures("plan_on_indexes_only")
def test_the_count_reads_the_log_along_its_indexes(vault: Vault, intruder: User) -> None:
    refuse(intruder, vault, 3)
    counted = security.refusals(
        actor_name="intruder", vault_name=vault.name, since=timezone.now() - timedelta(minutes=1)
    ).values("seq")[:3]
    assert len(counted) == 3
    sql, params = counted.query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"EXPLAIN {sql}", params)
            plan = [row[0] for row in cursor.fetchall()]
            assert not any("Seq Scan" in line for line in plan), plan
        else:
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
            plan = [row[-1] for row in cursor.fetchall()]
            reads = [line for line in plan if line.startswith(("SCAN", "SEARCH"))]
            assert len(reads) == 2 and all("USING" in line for line in reads), plan
            assert any("activity_time_seq" in line for line in reads), plan


@pytest.fixture
def endpoint(client: Client, system: User, vault: Vault) -> Callable[[str], Any]:
    """GET on the vault endpoint as an application with no right on the vault."""
    application = vault_services.application_create(actor=system, display_name="prober")
    token = tokens.issue_access_token(application, audience=tokens.vault_resource()).access_token

    def get(path: str) -> Any:
        return client.get(
            path,
            headers={
                "host": f"{vault.name}.vault.localhost:8443",
                "authorization": f"Bearer {token}",
            },
        )

    return get


def test_refused_vault_endpoint_requests_raise_it(
    vault: Vault, endpoint: Callable[[str], Any], make_key: Any
) -> None:
    watch("api", vault_name=vault.name, attempts=4)
    make_key("secret-plans", kty="EC")
    paths = ["/keys?api-version=7.5", "/keys/secret-plans?api-version=7.5"]
    for path in paths * 2:
        assert endpoint(path).status_code == 403
    [event] = raised()
    assert event.data["PrincipalType"] == User.Kind.APPLICATION
    entries = ActivityEntry.objects.filter(vault_name=vault.name, result=Result.FORBIDDEN)
    assert entries.count() == 4
    assert {entry.actor_name for entry in entries} == {event.data["PrincipalName"]}
    assert json.loads(json.dumps(events.event_grid(event)))["eventType"] == UNAUTHORIZED


# --- SignInLockout -------------------------------------------------------------------------------


def lockouts() -> list[Event]:
    return list(Event.objects.filter(event_type=LOCKOUT).order_by("id"))


def test_a_lockout_raises_sign_in_lockout_once(client: Client, outsider: User) -> None:
    rule = AlertRule.objects.create(
        name="lockouts",
        event_types=[LOCKOUT],
        channel=AlertRule.Channel.EMAIL,
        target="security@example.com",
    )
    lock_out(client, outsider.username)
    # Attempts refused during the lockout are no new lockout.
    assert sign_in(client, outsider.username, WRONG_PASSWORDS[0]).status_code == 429

    [event] = lockouts()
    assert event.topic == events.deployment_topic() and event.vault_name == ""
    cool_off = int(django_settings.AXES_COOLOFF_TIME.total_seconds())
    assert event.subject == outsider.username
    assert event.data == {
        "UserName": outsider.username,
        "PrincipalId": str(outsider.oid),
        "CoolOffSeconds": cool_off,
    }
    [notification] = Notification.objects.all()
    assert notification.rule == rule


def test_a_lockout_of_a_name_nobody_has_names_it_by_its_digest(client: Client) -> None:
    lock_out(client, "hunter2-typed-in-the-wrong-box")
    [event] = lockouts()
    name = unknown_user_name("hunter2-typed-in-the-wrong-box")
    assert event.subject == name and event.data["UserName"] == name
    assert event.data["PrincipalId"] is None
    assert "hunter2" not in json.dumps(events.event_grid(event))
    entry = ActivityEntry.objects.filter(operation=Operation.SIGN_IN_LOCKOUT).get()
    assert entry.actor_name == name


def test_failures_short_of_the_limit_raise_nothing(client: Client, outsider: User) -> None:
    for wrong in WRONG_PASSWORDS[: django_settings.AXES_FAILURE_LIMIT - 1]:
        assert sign_in(client, outsider.username, wrong, address=ADDRESS).status_code == 200
    assert lockouts() == []
