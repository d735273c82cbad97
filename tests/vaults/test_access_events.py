"""VaultAccessPolicyChanged: raised with every change of who may use a vault (access
policies, role assignments at group, vault and key scope, the permission model), in the
change's own transaction, with Event Grid's data for the vault."""

from typing import Any

import pytest

from accounts.models import User
from kvconsole.errors import Forbidden
from tests.factories import ResourceGroupFactory, UserFactory, VaultFactory
from vaults import services
from vaults.models import AlertRule, Event, EventType, Notification, Vault

pytestmark = pytest.mark.django_db

CHANGED = EventType.VAULT_ACCESS_POLICY_CHANGED


def changes() -> list[tuple[str, str]]:
    """(vault name, key name) of each VaultAccessPolicyChanged, oldest first."""
    return [
        (event.vault_name, event.key_name)
        for event in Event.objects.filter(event_type=CHANGED).order_by("id")
    ]


def vault_scope(vault: Vault) -> str:
    group = vault.resource_group.name
    return f"/resourceGroups/{group}/providers/Microsoft.KeyVault/vaults/{vault.name}"


@pytest.fixture
def person(db: None) -> User:
    return UserFactory.create(username="person")


def test_setting_an_access_policy_raises_it_with_event_grids_data(
    system: User, vault: Vault, person: User
) -> None:
    services.access_policy_set(
        actor=system, vault_name=vault.name, principal="person", key_permissions=["get"]
    )
    event = Event.objects.get(event_type=CHANGED)
    assert (event.topic, event.subject) == (vault.resource_id, vault.name)
    assert event.data == {
        "Id": vault.uri,
        "VaultName": vault.name,
        "ObjectType": "Vault",
        "ObjectName": vault.name,
        "Version": None,
        "NBF": None,
        "EXP": None,
    }


def test_removing_an_access_policy_raises_it(system: User, vault: Vault, person: User) -> None:
    services.access_policy_set(
        actor=system, vault_name=vault.name, principal="person", key_permissions=["get"]
    )
    services.access_policy_delete(actor=system, vault_name=vault.name, principal="person")
    assert changes() == [(vault.name, ""), (vault.name, "")]


def test_a_role_assignment_on_a_vault_raises_it_when_made_and_when_removed(
    system: User, vault: Vault, person: User
) -> None:
    assignment = services.role_assignment_create(
        actor=system, assignee="person", role="Key Vault Reader", scope=vault_scope(vault)
    )
    assert changes() == [(vault.name, "")]
    services.role_assignment_delete(actor=system, assignment_id=str(assignment.uid))
    assert changes() == [(vault.name, ""), (vault.name, "")]


def test_an_assignment_on_a_resource_group_raises_it_for_each_live_vault_of_the_group(
    system: User, person: User
) -> None:
    group = ResourceGroupFactory.create(name="shared")
    first = VaultFactory.create(name="first", resource_group=group)
    VaultFactory.create(name="second", resource_group=group)
    closed = VaultFactory.create(name="closed", resource_group=group)
    services.vault_delete(actor=system, name=closed.name)
    VaultFactory.create(name="elsewhere")

    services.role_assignment_create(
        actor=system, assignee="person", role="Key Vault Reader", scope="/resourceGroups/shared"
    )
    assert sorted(changes()) == [("first", ""), ("second", "")]
    assert Event.objects.get(vault_name="first").topic == first.resource_id

    services.role_assignment_delete(
        actor=system, assignee="person", role="Key Vault Reader", scope="/resourceGroups/shared"
    )
    assert len(changes()) == 4


def test_an_assignment_on_a_key_raises_it_for_its_vault_and_reaches_rules_on_the_key(
    system: User, vault: Vault, person: User, make_key: Any
) -> None:
    make_key("payments", kty="EC")
    on_key = AlertRule.objects.create(
        name="on-key",
        vault_name=vault.name,
        key_name="payments",
        event_types=[CHANGED],
        channel=AlertRule.Channel.EMAIL,
        target="keys@example.com",
    )
    services.role_assignment_create(
        actor=system,
        assignee="person",
        role="Key Vault Crypto User",
        scope=f"{vault_scope(vault)}/keys/payments",
    )
    assert changes() == [(vault.name, "payments")]
    event = Event.objects.get(event_type=CHANGED)
    assert event.subject == vault.name and event.data["ObjectType"] == "Vault"
    assert [notification.rule for notification in Notification.objects.all()] == [on_key]


def test_switching_the_permission_model_raises_it_but_keeping_it_does_not(
    system: User, vault: Vault
) -> None:
    services.vault_permission_model_set(
        actor=system, name=vault.name, permission_model=Vault.PermissionModel.ACCESS_POLICY
    )
    services.vault_permission_model_set(
        actor=system, name=vault.name, permission_model=Vault.PermissionModel.ACCESS_POLICY
    )
    assert changes() == [(vault.name, "")]


def test_a_vault_rule_is_notified_and_a_rule_elsewhere_is_not(
    system: User, vault: Vault, person: User
) -> None:
    here = AlertRule.objects.create(
        name="here",
        vault_name=vault.name,
        event_types=[CHANGED],
        channel=AlertRule.Channel.WEBHOOK,
        target="https://hooks.example/here",
    )
    AlertRule.objects.create(
        name="elsewhere",
        vault_name="another-vault",
        event_types=[CHANGED],
        channel=AlertRule.Channel.WEBHOOK,
        target="https://hooks.example/elsewhere",
    )
    services.access_policy_set(
        actor=system, vault_name=vault.name, principal="person", key_permissions=["all"]
    )
    [notification] = Notification.objects.all()
    assert notification.rule == here and notification.event.event_type == CHANGED


def test_a_refused_change_raises_nothing(vault: Vault, person: User) -> None:
    with pytest.raises(Forbidden):
        services.access_policy_set(
            actor=person, vault_name=vault.name, principal="person", key_permissions=["all"]
        )
    with pytest.raises(Forbidden):
        services.role_assignment_create(
            actor=person, assignee="person", role="Owner", scope=vault_scope(vault)
        )
    assert changes() == []
