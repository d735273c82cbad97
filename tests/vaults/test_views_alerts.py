"""Console pages for alerts: the rules each persona may read, creating one (a webhook's
signing secret shown once), a test event, deleting after confirmation, and the outbox with
its dead letters and requeue.

Alert rules are Event Grid subscriptions: Owner at a scope manages them there (the group
owner persona, on its group and vault), deployment principals everywhere; the Key Vault
reader and crypto user, and the outsider, none.
"""

import re
from typing import Any

import pytest
from django.db import transaction
from django.test import Client

from accounts.models import User
from tests.conftest import Personas
from tests.console import htmx_get, htmx_post, is_fragment, text
from tests.factories import SuperuserFactory, VaultFactory
from vaults import events, selectors, services, webhooks
from vaults.models import ActivityEntry, AlertRule, Event, EventType, Notification, Vault

pytestmark = pytest.mark.django_db

NEAR = EventType.KEY_NEAR_EXPIRY


@pytest.fixture
def as_(client: Client, personas: Personas) -> Any:
    def sign_in(name: str) -> Client:
        client.force_login(personas.each()[name])
        return client

    return sign_in


@pytest.fixture
def admin(db: None) -> User:
    return SuperuserFactory.create(username="admin")


def make_rule(name: str, **fields: Any) -> AlertRule:
    fields.setdefault("event_types", [NEAR])
    fields.setdefault("channel", AlertRule.Channel.EMAIL)
    fields.setdefault("target", "keys@example.com")
    return AlertRule.objects.create(name=name, **fields)


@pytest.fixture
def rules(personas: Personas) -> dict[str, AlertRule]:
    """A rule on the personas' vault, one on its group, one on a vault elsewhere and one
    on the whole deployment."""
    vault = personas.vault
    elsewhere = VaultFactory.create(name="elsewhere")
    return {
        "vault": make_rule(
            "vault-rule", resource_group=vault.resource_group.name, vault_name=vault.name
        ),
        "group": make_rule("group-rule", resource_group=vault.resource_group.name),
        "elsewhere": make_rule(
            "elsewhere-rule",
            resource_group=elsewhere.resource_group.name,
            vault_name=elsewhere.name,
        ),
        "deployment": make_rule("deployment-rule"),
    }


def listed(response: Any) -> list[str]:
    """The rule names in the rules table, in order."""
    table = text(response).split('id="rules-title"', 1)[1].split("</table>", 1)[0]
    return re.findall(r"<tr>\s*<td>([a-z0-9-]+)</td>", table)


def notify(rule: AlertRule, vault: Vault, *, status: str, error: str = "") -> Notification:
    with transaction.atomic():
        event = events.emit(NEAR, vault=vault, subject="k", data={}, only_rule=rule)
    assert event is not None
    notification = Notification.objects.get(event=event)
    Notification.objects.filter(pk=notification.pk).update(
        status=status, last_error=error, attempts=8
    )
    return notification


def vault_rule_form(vault: Vault, **changes: Any) -> dict[str, Any]:
    data = {
        "name": "expiring-keys",
        "scope": f"vault:{vault.name}",
        "key_name": "",
        "event_types": [NEAR, EventType.KEY_EXPIRED],
        "channel": "email",
        "target": "keys@example.com, oncall@example.com",
        "schema": "eventgrid",
        "attempts": "10",
        "window_seconds": "300",
        "enabled": "on",
    }
    data.update(changes)
    return data


# --- the list ------------------------------------------------------------------------------------


def test_alerts_follow_activity_in_the_main_navigation(as_: Any) -> None:
    navigation = text(as_("reader").get("/")).split('<nav class="primary"', 1)[1].split("</nav>")[0]
    assert navigation.index('href="/activity/"') < navigation.index('href="/alerts/"')


def test_each_persona_sees_the_rules_of_the_scopes_it_may_read(
    as_: Any, client: Client, rules: dict[str, AlertRule], admin: User
) -> None:
    owner = as_("owner").get("/alerts/")
    assert listed(owner) == ["group-rule", "vault-rule"]
    assert "New alert rule" in text(owner) and "Send test event" in text(owner)
    for name in ("crypto_user", "reader", "outsider"):
        response = as_(name).get("/alerts/")
        assert response.status_code == 200 and listed(response) == []
        assert "New alert rule" not in text(response)
        assert "No alert rules you can see." in text(response)
    client.force_login(admin)
    assert listed(client.get("/alerts/")) == [
        "deployment-rule",
        "elsewhere-rule",
        "group-rule",
        "vault-rule",
    ]


def test_the_list_shows_scope_events_channel_and_state(
    as_: Any, personas: Personas, rules: dict[str, AlertRule]
) -> None:
    vault = personas.vault
    make_rule(
        "hammering",
        vault_name=vault.name,
        resource_group=vault.resource_group.name,
        event_types=[EventType.UNAUTHORIZED_ACCESS_ATTEMPTS],
        channel=AlertRule.Channel.WEBHOOK,
        target="https://hooks.example/kv",
        schema=AlertRule.Schema.CLOUD_EVENTS,
        attempts=5,
        window_seconds=60,
        enabled=False,
    )
    page = text(as_("owner").get("/alerts/"))
    row = page.split("<td>hammering</td>", 1)[1].split("</tr>", 1)[0]
    assert f"/resourceGroups/{vault.resource_group.name}/providers/" in row
    assert "UnauthorizedAccessAttempts" in row and "5 refusals within 60 s" in row
    assert "Webhook (CloudEvents 1.0)" in row and "https://hooks.example/kv" in row
    assert "Disabled" in row


def test_the_selector_agrees_with_the_alert_services(
    personas: Personas, system: User, make_key: Any, rules: dict[str, AlertRule]
) -> None:
    vault = personas.vault
    group = vault.resource_group.name
    make_key("payments", kty="EC")
    make_rule("on-key", resource_group=group, vault_name=vault.name, key_name="payments")
    make_rule("on-missing-key", resource_group=group, vault_name=vault.name, key_name="gone")
    make_rule("on-missing-vault", resource_group=group, vault_name="purged-long-ago")
    make_rule("vault-without-group", vault_name=vault.name)
    make_rule("missing-vault-no-group", vault_name="purged-long-ago")
    make_rule("on-missing-group", resource_group="no-such-group")
    key_owner = personas.crypto_user
    services.role_assignment_create(
        actor=system,
        assignee=key_owner.username,
        role="Owner",
        scope=f"/resourceGroups/{group}/providers/Microsoft.KeyVault/vaults/{vault.name}/keys/payments",
    )
    for person in (*personas.each().values(), system):
        expected = [rule.name for rule in services.alert_rule_list(actor=person)]
        assert [rule.name for rule in selectors.alert_rule_list(actor=person)] == expected, person
    assert [rule.name for rule in selectors.alert_rule_list(actor=key_owner)] == ["on-key"]


def test_the_list_costs_the_same_queries_for_1_or_20_rules(
    as_: Any, personas: Personas, django_assert_max_num_queries: Any
) -> None:
    vault = personas.vault

    def add_rules(start: int, count: int) -> None:
        for number in range(start, start + count):
            rule = make_rule(
                f"rule-{number}", resource_group=vault.resource_group.name, vault_name=vault.name
            )
            notify(rule, vault, status=Notification.Status.DEAD, error="timed out")

    client = as_("owner")
    add_rules(0, 1)
    client.get("/alerts/")
    with django_assert_max_num_queries(13) as few:
        assert client.get("/alerts/").status_code == 200
    add_rules(1, 19)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get("/alerts/")
    assert len(listed(response)) == 20 and text(response).count(">Requeue</button>") == 10


# --- creating ------------------------------------------------------------------------------------


def test_the_owner_creates_an_email_rule_on_its_vault(as_: Any, personas: Personas) -> None:
    client = as_("owner")
    form = text(client.get("/alerts/new/"))
    assert f'value="vault:{personas.vault.name}"' in form
    assert f'value="group:{personas.vault.resource_group.name}"' in form
    assert 'value="deployment"' not in form and "kvconsole.AlertTest" not in form

    response = client.post("/alerts/new/", vault_rule_form(personas.vault))

    assert response.status_code == 303 and response["Location"] == "/alerts/"
    rule = AlertRule.objects.get(name="expiring-keys")
    assert (rule.resource_group, rule.vault_name, rule.key_name) == (
        personas.vault.resource_group.name,
        personas.vault.name,
        "",
    )
    assert rule.event_types == [NEAR, EventType.KEY_EXPIRED] and rule.enabled
    assert rule.target == "keys@example.com,oncall@example.com"
    assert rule.created_by == personas.owner.username
    assert "Alert rule expiring-keys created." in text(client.get("/alerts/"))


def test_a_rule_on_one_key_of_a_vault(as_: Any, personas: Personas, make_key: Any) -> None:
    make_key("payments", kty="EC")
    response = htmx_post(
        as_("owner"), "/alerts/new/", vault_rule_form(personas.vault, key_name="payments")
    )
    assert response.status_code == 200 and response["HX-Redirect"] == "/alerts/"
    assert AlertRule.objects.get(name="expiring-keys").key_name == "payments"


def test_a_webhook_rules_secret_is_shown_once(as_: Any, personas: Personas) -> None:
    client = as_("owner")
    data = vault_rule_form(
        personas.vault,
        channel="webhook",
        target="https://hooks.example/kv",
        schema="cloudevents",
        event_types=[EventType.UNAUTHORIZED_ACCESS_ATTEMPTS],
        attempts="3",
        window_seconds="120",
    )
    response = htmx_post(client, "/alerts/new/", data)
    assert response.status_code == 200 and is_fragment(response)
    rule = AlertRule.objects.get(name="expiring-keys")
    secret = webhooks.rule_secret(rule)
    assert f'<code id="signing-secret">{secret}</code>' in text(response)
    assert "no-store" in response["Cache-Control"]
    assert (rule.schema, rule.attempts, rule.window_seconds) == ("cloudevents", 3, 120)
    assert secret not in text(client.get("/alerts/"))
    assert secret not in text(client.get("/alerts/new/"))


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"event_types": []}, "event_types", "This field is required."),
        ({"target": "http://hooks.example/kv", "channel": "webhook"}, "target", "not HTTPS"),
        ({"target": "not an address"}, "target", "is not an email address"),
        ({"name": "x"}, "name", "is not valid"),
        ({"scope": "group:rg-0", "key_name": "k"}, "key_name", "choose the vault first"),
        ({"key_name": "no-such-key"}, "key_name", "was not found"),
        ({"attempts": "0"}, "attempts", "greater than or equal to 1"),
    ],
)
def test_bad_input_is_shown_beside_its_field_and_changes_nothing(
    as_: Any, personas: Personas, changes: dict[str, Any], field: str, message: str
) -> None:
    if changes.get("scope") == "group:rg-0":
        changes["scope"] = f"group:{personas.vault.resource_group.name}"
    response = htmx_post(as_("owner"), "/alerts/new/", vault_rule_form(personas.vault, **changes))
    assert response.status_code == 200 and is_fragment(response)
    field_html = text(response).split(f'id="id_{field}', 1)[1].split('<div class="field', 1)[0]
    assert message in field_html
    assert not AlertRule.objects.exists()


def test_a_name_already_taken_is_a_conflict_beside_the_name(
    as_: Any, personas: Personas, rules: dict[str, AlertRule]
) -> None:
    response = as_("owner").post("/alerts/new/", vault_rule_form(personas.vault, name="Vault-Rule"))
    assert response.status_code == 200
    assert "already exists" in text(response).split('id="id_name"', 1)[1].split("</div>", 1)[0]
    assert AlertRule.objects.count() == 4


def test_whoever_may_create_nowhere_gets_no_form(as_: Any) -> None:
    for name in ("crypto_user", "reader", "outsider"):
        assert as_(name).get("/alerts/new/").status_code == 404


def test_a_forged_creation_reaches_the_service_and_is_refused(as_: Any, personas: Personas) -> None:
    response = as_("reader").post("/alerts/new/", vault_rule_form(personas.vault))
    assert response.status_code == 403
    assert not AlertRule.objects.exists()
    entry = ActivityEntry.objects.filter(operation="AlertRuleCreate").get()
    assert (entry.actor_name, entry.result) == ("reader", "Forbidden")


# --- testing and deleting a rule -----------------------------------------------------------------


def test_a_test_event_is_queued_for_that_rule_alone(as_: Any, rules: dict[str, AlertRule]) -> None:
    response = htmx_post(as_("owner"), "/alerts/vault-rule/test/")
    assert response.status_code == 200 and response["HX-Redirect"] == "/alerts/"
    [notification] = Notification.objects.all()
    assert notification.rule == rules["vault"]
    assert notification.event.event_type == EventType.ALERT_TEST
    assert notification.status == Notification.Status.PENDING


def test_forged_tests_and_deletions_are_refused_and_change_nothing(
    as_: Any, rules: dict[str, AlertRule]
) -> None:
    client = as_("reader")
    assert client.post("/alerts/vault-rule/test/").status_code == 404
    assert client.post("/alerts/vault-rule/delete/").status_code == 404
    assert htmx_post(client, "/alerts/vault-rule/delete/").status_code == 404
    assert not Event.objects.filter(event_type=EventType.ALERT_TEST).exists()
    assert AlertRule.objects.filter(name="vault-rule").exists()
    refused = ActivityEntry.objects.filter(
        operation__in=["AlertRuleTest", "AlertRuleDelete"], actor_name="reader"
    )
    assert {entry.result for entry in refused} == {"NotFound"} and refused.count() == 3


def test_deleting_asks_first_then_deletes(
    as_: Any, personas: Personas, rules: dict[str, AlertRule]
) -> None:
    client = as_("owner")
    pending = notify(rules["vault"], personas.vault, status=Notification.Status.PENDING)
    confirm = htmx_get(client, "/alerts/vault-rule/delete/")
    assert is_fragment(confirm) and "Delete vault-rule" in text(confirm)
    assert AlertRule.objects.filter(name="vault-rule").exists()

    response = client.post("/alerts/vault-rule/delete/")

    assert response.status_code == 303 and response["Location"] == "/alerts/"
    assert not AlertRule.objects.filter(name="vault-rule").exists()
    assert Notification.objects.get(pk=pending.pk).status == Notification.Status.DEAD
    assert "1 undelivered notification dead-lettered" in text(client.get("/alerts/"))


def test_rule_pages_of_rules_one_may_not_read_are_404(
    as_: Any, rules: dict[str, AlertRule]
) -> None:
    assert as_("owner").get("/alerts/elsewhere-rule/delete/").status_code == 404
    assert as_("outsider").get("/alerts/vault-rule/delete/").status_code == 404


# --- the outbox ----------------------------------------------------------------------------------


def test_the_outbox_counts_and_dead_letters(
    as_: Any, personas: Personas, rules: dict[str, AlertRule]
) -> None:
    notify(rules["vault"], personas.vault, status=Notification.Status.PENDING)
    notify(rules["vault"], personas.vault, status=Notification.Status.DELIVERED)
    notify(rules["group"], personas.vault, status=Notification.Status.DEAD, error="HTTP 503")
    elsewhere = Vault.objects.get(name="elsewhere")
    notify(rules["elsewhere"], elsewhere, status=Notification.Status.DEAD, error="refused")

    owner = htmx_get(as_("owner"), "/alerts/")
    assert is_fragment(owner) and text(owner).lstrip().startswith('<section id="outbox"')
    assert selectors.notification_counts(actor=personas.owner) == {
        "pending": 1,
        "delivered": 1,
        "dead": 1,
    }
    assert "HTTP 503" in text(owner) and "refused" not in text(owner)
    assert ">Requeue</button>" in text(owner) and "Requeue all" not in text(owner)

    reader = text(as_("reader").get("/alerts/"))
    assert "HTTP 503" not in reader and "No dead letters." in reader


def test_a_dead_letter_is_requeued(
    as_: Any, personas: Personas, rules: dict[str, AlertRule]
) -> None:
    dead = notify(rules["vault"], personas.vault, status=Notification.Status.DEAD, error="boom")
    response = htmx_post(as_("owner"), f"/alerts/notifications/{dead.uid}/requeue/")
    assert response["HX-Redirect"] == "/alerts/"
    requeued = Notification.objects.get(pk=dead.pk)
    assert (requeued.status, requeued.attempts) == (Notification.Status.PENDING, 0)


def test_a_forged_requeue_changes_nothing(
    as_: Any, personas: Personas, rules: dict[str, AlertRule]
) -> None:
    dead = notify(rules["vault"], personas.vault, status=Notification.Status.DEAD)
    assert as_("reader").post(f"/alerts/notifications/{dead.uid}/requeue/").status_code == 404
    assert as_("owner").post("/alerts/notifications/requeue/").status_code == 403
    assert Notification.objects.get(pk=dead.pk).status == Notification.Status.DEAD


def test_deployment_principals_requeue_every_dead_letter(
    client: Client, admin: User, personas: Personas, rules: dict[str, AlertRule]
) -> None:
    for rule in rules.values():
        notify(rule, personas.vault, status=Notification.Status.DEAD)
    client.force_login(admin)
    assert "Requeue all dead letters" in text(client.get("/alerts/"))
    response = client.post("/alerts/notifications/requeue/")
    assert response.status_code == 303
    assert not Notification.objects.filter(status=Notification.Status.DEAD).exists()
    assert "4 dead-lettered notifications queued again." in text(client.get("/alerts/"))
