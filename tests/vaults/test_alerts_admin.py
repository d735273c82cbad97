"""The admin's alert pages: rules changed through the services, the signing secret on its own
uncached page, events and notifications read-only, dead letters requeued by an action."""

from typing import Any

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.test import Client
from django.urls import reverse

from accounts.models import User
from vaults import services, webhooks
from vaults.models import (
    ActivityEntry,
    AlertRule,
    EventType,
    Notification,
    Operation,
    Result,
    Vault,
)

pytestmark = pytest.mark.django_db

HOOK = "https://alerts.example.com/kvconsole"


def url(model: str, view: str, *args: Any) -> str:
    return reverse(f"admin:vaults_{model}_{view}", args=args)


def operations() -> list[tuple[str, str]]:
    return list(ActivityEntry.objects.order_by("seq").values_list("operation", "result"))


def add_form(**values: Any) -> dict[str, Any]:
    return {
        "name": "ops-hook",
        "resource_group": "",
        "vault_name": "",
        "key_name": "",
        "event_types": [EventType.KEY_NEAR_EXPIRY, EventType.KEY_EXPIRED],
        "channel": "webhook",
        "target": HOOK,
        "schema": "eventgrid",
        "attempts": "10",
        "window_seconds": "300",
        "enabled": "on",
        "_save": "Save",
        **values,
    }


def test_adding_a_webhook_rule_goes_through_the_service_then_shows_its_secret(
    admin_client: Client, vault: Vault
) -> None:
    response = admin_client.post(url("alertrule", "add"), add_form(vault_name=vault.name))
    rule = AlertRule.objects.get()
    assert response.status_code == 302
    assert response["Location"] == url("alertrule", "secret", rule.pk)
    assert (rule.vault_name, rule.resource_group) == (vault.name, vault.resource_group.name)
    assert rule.event_types == [EventType.KEY_NEAR_EXPIRY, EventType.KEY_EXPIRED]
    assert (Operation.ALERT_RULE_CREATE, Result.SUCCESS) in operations()

    page = admin_client.get(response["Location"])
    secret = webhooks.rule_secret(rule)
    assert page.status_code == 200 and secret not in page.content.decode()
    shown = admin_client.post(response["Location"], {"action": "show"})
    assert secret in shown.content.decode()
    assert "no-store" in shown["Cache-Control"]
    assert (Operation.ALERT_RULE_SECRET_GET, Result.SUCCESS) in operations()

    rekeyed = admin_client.post(response["Location"], {"action": "rekey"})
    rule.refresh_from_db()
    assert secret not in rekeyed.content.decode()
    assert webhooks.rule_secret(rule) in rekeyed.content.decode()


def test_a_refused_rule_is_a_message_and_nothing_is_made(admin_client: Client) -> None:
    response = admin_client.post(
        url("alertrule", "add"), add_form(target="http://alerts.example.com/"), follow=True
    )
    assert not AlertRule.objects.exists()
    (message,) = [str(item) for item in response.context["messages"]]
    assert "is not HTTPS" in message
    assert (Operation.ALERT_RULE_CREATE, Result.BAD_PARAMETER) in operations()


def test_change_and_delete_through_the_services(admin_client: Client, admin_user: User) -> None:
    rule = services.alert_rule_create(
        actor=admin_user,
        name="ops-mail",
        event_types=["KeyExpired"],
        channel="email",
        target="ops@example.com",
    ).rule
    page = admin_client.get(url("alertrule", "change", rule.pk))
    assert page.status_code == 200 and "Signing secret" not in page.content.decode()
    response = admin_client.post(
        url("alertrule", "change", rule.pk),
        {
            "event_types": [EventType.KEY_EXPIRED, EventType.VAULT_ACCESS_POLICY_CHANGED],
            "target": "ops@example.com,sec@example.com",
            "schema": "eventgrid",
            "attempts": "10",
            "window_seconds": "300",
            "_save": "Save",
        },
    )
    assert response.status_code == 302
    rule.refresh_from_db()
    assert not rule.enabled and rule.target == "ops@example.com,sec@example.com"
    assert len(rule.event_types) == 2
    assert (Operation.ALERT_RULE_UPDATE, Result.SUCCESS) in operations()

    response = admin_client.post(url("alertrule", "delete", rule.pk), {"post": "yes"})
    assert response.status_code == 302 and not AlertRule.objects.exists()
    assert (Operation.ALERT_RULE_DELETE, Result.SUCCESS) in operations()
    assert LogEntry.objects.filter(action_flag=DELETION).exists()


def test_events_and_notifications_are_read_only_and_dead_letters_requeue(
    admin_client: Client, admin_user: User
) -> None:
    services.alert_rule_create(
        actor=admin_user,
        name="ops-hook",
        event_types=["KeyExpired"],
        channel="webhook",
        target=HOOK,
    )
    services.alert_rule_test(actor=admin_user, name="ops-hook")
    services.alert_rule_test(actor=admin_user, name="ops-hook")
    dead, pending = Notification.objects.order_by("id")
    Notification.objects.filter(pk=dead.pk).update(status="dead", attempts=8, last_error="HTTP 500")

    assert admin_client.get(url("event", "changelist")).status_code == 200
    assert admin_client.get(url("event", "add")).status_code == 403
    listed = admin_client.get(url("notification", "changelist"), {"status__exact": "dead"})
    assert listed.status_code == 200
    assert str(dead.uid) in listed.content.decode()
    assert str(pending.uid) not in listed.content.decode()
    assert admin_client.get(url("notification", "add")).status_code == 403

    response = admin_client.post(
        url("notification", "changelist"),
        {"action": "requeue", "_selected_action": [dead.pk, pending.pk]},
        follow=True,
    )
    assert "Requeued 1 notification" in response.content.decode()
    dead.refresh_from_db()
    assert (dead.status, dead.attempts) == ("pending", 0)
    assert (Operation.NOTIFICATION_REQUEUE, Result.SUCCESS) in operations()
