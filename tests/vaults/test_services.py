"""Resource group and vault services: Azure's rules, soft delete, recovery, purge, authorization."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from accounts.models import User
from keys import services as key_services
from keys.models import Key, KeyVersion
from kvconsole.errors import BadParameter, Conflict, Forbidden, NotFound
from vaults import services
from vaults.models import ResourceGroup, Vault
from vaults.services import resources

pytestmark = pytest.mark.django_db


MakeKey = Callable[..., KeyVersion]


@pytest.fixture
def group(system: User) -> ResourceGroup:
    return services.resource_group_create(actor=system, name="rg-main", location="northeurope")


def create_vault(actor: User, name: str = "my-vault", **options: Any) -> Vault:
    return services.vault_create(
        actor=actor, name=name, resource_group=options.pop("resource_group", "rg-main"), **options
    )


def oct_key(make_key: MakeKey, name: str, vault: Vault) -> KeyVersion:
    """A cheap key: symmetric generation costs nothing, unlike RSA."""
    return make_key(name, in_vault=vault, kty="oct", size=256)


def snapshot() -> tuple[Any, ...]:
    """Everything the services could change, to show that a refused call changed nothing."""
    return (
        list(ResourceGroup.objects.order_by("pk").values()),
        list(Vault.objects.order_by("pk").values()),
        list(Key.objects.order_by("pk").values()),
        list(KeyVersion.objects.order_by("pk").values("pk", "enabled", "tags")),
    )


# --- resource groups ---------------------------------------------------------------------------


def test_resource_group_create_normalizes_location_and_keeps_tags(system: User) -> None:
    group = services.resource_group_create(
        actor=system, name="RG-Prod", location="West Europe", tags={"env": "prod"}
    )
    group.refresh_from_db()
    assert (group.name, group.location, group.tags) == ("RG-Prod", "westeurope", {"env": "prod"})


@pytest.mark.parametrize(
    "name", ["a", "rg_(1).x-y", "a" * 90, "Ünïcode-group"], ids=["1", "chars", "90", "unicode"]
)
def test_resource_group_create_accepts_azure_names(system: User, name: str) -> None:
    assert services.resource_group_create(actor=system, name=name, location="westeurope").pk


@pytest.mark.parametrize(
    "name",
    ["", "a" * 91, "ends-with-period.", "has space", "slash/name", "star*", "hash#"],
)
def test_resource_group_create_refuses_invalid_names(system: User, name: str) -> None:
    with pytest.raises(BadParameter, match=r"Resource group name .* is invalid"):
        services.resource_group_create(actor=system, name=name, location="westeurope")
    assert not ResourceGroup.objects.exists()


@pytest.mark.parametrize("location", ["", "west-europe", "west_europe", "x" * 65])
def test_resource_group_create_refuses_invalid_locations(system: User, location: str) -> None:
    with pytest.raises(BadParameter, match=r"Location .* is invalid"):
        services.resource_group_create(actor=system, name="rg", location=location)
    assert not ResourceGroup.objects.exists()


def test_resource_group_names_are_unique_ignoring_case(system: User, group: ResourceGroup) -> None:
    with pytest.raises(Conflict) as caught:
        services.resource_group_create(actor=system, name="RG-MAIN", location="westeurope")
    assert caught.value.code == "ResourceGroupExists"
    assert ResourceGroup.objects.count() == 1


def test_resource_group_get_and_update_ignore_case(system: User, group: ResourceGroup) -> None:
    assert services.resource_group_get(actor=system, name="Rg-Main") == group
    services.resource_group_update(actor=system, name="RG-MAIN", tags={"owner": "ops"})
    group.refresh_from_db()
    assert group.tags == {"owner": "ops"}


def test_resource_group_update_replaces_tags(system: User) -> None:
    services.resource_group_create(actor=system, name="rg", location="westeurope", tags={"a": "1"})
    services.resource_group_update(actor=system, name="rg", tags={"b": "2"})
    assert ResourceGroup.objects.get().tags == {"b": "2"}


def test_resource_group_update_refuses_bad_tags_and_changes_nothing(
    system: User, group: ResourceGroup
) -> None:
    before = snapshot()
    with pytest.raises(BadParameter):
        services.resource_group_update(
            actor=system, name="rg-main", tags={f"t{n}": "v" for n in range(16)}
        )
    assert snapshot() == before


def test_resource_group_get_unknown_is_not_found(system: User) -> None:
    with pytest.raises(NotFound) as caught:
        services.resource_group_get(actor=system, name="nowhere")
    assert caught.value.code == "ResourceGroupNotFound"


def test_resource_group_list_is_ordered_by_name(system: User) -> None:
    for name in ("rg-b", "rg-a", "rg-c"):
        services.resource_group_create(actor=system, name=name, location="westeurope")
    listed = services.resource_group_list(actor=system)
    assert [group.name for group in listed] == ["rg-a", "rg-b", "rg-c"]


def test_resource_group_delete_removes_an_empty_group(system: User, group: ResourceGroup) -> None:
    services.resource_group_delete(actor=system, name="RG-MAIN")
    assert not ResourceGroup.objects.exists()


def test_resource_group_delete_refused_while_it_holds_a_vault(
    system: User, group: ResourceGroup
) -> None:
    create_vault(system)
    with pytest.raises(Conflict) as caught:
        services.resource_group_delete(actor=system, name="rg-main")
    assert caught.value.code == "ResourceGroupNotEmpty"
    assert ResourceGroup.objects.filter(pk=group.pk).exists()


def test_resource_group_delete_refused_while_it_holds_a_soft_deleted_vault(
    system: User, group: ResourceGroup
) -> None:
    create_vault(system)
    services.vault_delete(actor=system, name="my-vault")
    with pytest.raises(Conflict, match="soft-deleted"):
        services.resource_group_delete(actor=system, name="rg-main")
    assert ResourceGroup.objects.filter(pk=group.pk).exists()
    services.vault_purge(actor=system, name="my-vault")
    services.resource_group_delete(actor=system, name="rg-main")
    assert not ResourceGroup.objects.exists()


# --- vault creation and validation -------------------------------------------------------------


def test_vault_create_applies_azure_defaults(system: User, group: ResourceGroup) -> None:
    vault = create_vault(system)
    vault.refresh_from_db()
    assert vault.resource_group == group
    assert vault.location == "northeurope"  # the resource group's
    assert vault.sku == Vault.Sku.STANDARD
    assert vault.soft_delete_retention_days == 90
    assert vault.purge_protection is False
    assert vault.permission_model == Vault.PermissionModel.RBAC
    assert vault.tags == {}
    assert vault.deleted_at is None
    assert vault.recovery_level == "Recoverable+Purgeable"


def test_vault_create_takes_every_option(system: User, group: ResourceGroup) -> None:
    vault = create_vault(
        system,
        resource_group="RG-Main",
        location="East US 2",
        sku="premium",
        retention_days=7,
        purge_protection=True,
        permission_model="access_policy",
        tags={"env": "test"},
    )
    vault.refresh_from_db()
    assert (vault.location, vault.sku, vault.soft_delete_retention_days) == (
        "eastus2",
        "premium",
        7,
    )
    assert vault.purge_protection is True
    assert vault.permission_model == "access_policy"
    assert vault.tags == {"env": "test"}
    assert vault.recovery_level == "CustomizedRecoverable"


def test_vault_names_are_stored_and_found_in_lower_case(system: User, group: ResourceGroup) -> None:
    vault = create_vault(system, name="MyVault")
    assert vault.name == "myvault"
    assert services.vault_get(actor=system, name="MYVAULT") == vault


@pytest.mark.parametrize(
    "name",
    ["abc", "a" * 24, "a-1", "Vault-01", "x" + "-y" * 11 + "z"],
)
def test_vault_create_accepts_azure_names(system: User, group: ResourceGroup, name: str) -> None:
    assert create_vault(system, name=name).name == name.lower()


@pytest.mark.parametrize(
    "name",
    [
        "ab",
        "a" * 25,
        "1vault",
        "-vault",
        "vault-",
        "my--vault",
        "my_vault",
        "my.vault",
        "my vault",
        "",
        "vault\n",
    ],
)
def test_vault_create_refuses_invalid_names(system: User, group: ResourceGroup, name: str) -> None:
    with pytest.raises(BadParameter) as caught:
        create_vault(system, name=name)
    assert f"Vault name '{name}' is invalid" in caught.value.message
    assert "3-24 characters" in caught.value.message
    assert not Vault.objects.exists()


@pytest.mark.parametrize("days", [7, 30, 90])
def test_vault_create_accepts_retention_7_to_90(
    system: User, group: ResourceGroup, days: int
) -> None:
    assert create_vault(system, retention_days=days).soft_delete_retention_days == days


@pytest.mark.parametrize("days", [6, 91, 0, -1, "30", 30.0, None])
def test_vault_create_refuses_retention_outside_7_to_90(
    system: User, group: ResourceGroup, days: Any
) -> None:
    with pytest.raises(BadParameter, match="softDeleteRetentionInDays must be between 7 and 90"):
        create_vault(system, retention_days=days)
    assert not Vault.objects.exists()


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("sku", "basic", "sku must be one of standard, premium"),
        ("sku", "Standard", "sku must be one of"),
        ("permission_model", "acl", "permissionModel must be one of rbac, access_policy"),
        ("location", "west-europe", "Location 'west-europe' is invalid"),
    ],
)
def test_vault_create_refuses_unknown_choices(
    system: User, group: ResourceGroup, option: str, value: str, message: str
) -> None:
    with pytest.raises(BadParameter, match=message):
        create_vault(system, **{option: value})
    assert not Vault.objects.exists()


def test_vault_create_accepts_15_tags_of_256_characters(system: User, group: ResourceGroup) -> None:
    tags = {f"{n:02d}".ljust(256, "n"): "v" * 256 for n in range(15)}
    assert create_vault(system, tags=tags).tags == tags


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ({f"t{n}": "v" for n in range(16)}, "At most 15 tags are allowed; 16 were given"),
        ({"n" * 257: "v"}, "Tag names must be 1-256 characters"),
        ({"name": "v" * 257}, "values at most 256 characters"),
        ({"": "v"}, "Tag names must be 1-256 characters"),
        ({"name": 1}, "Tag names and values must be strings"),
        (["env", "prod"], "Tags must be an object"),
    ],
)
def test_vault_create_refuses_bad_tags(
    system: User, group: ResourceGroup, tags: Any, message: str
) -> None:
    with pytest.raises(BadParameter, match=message):
        create_vault(system, tags=tags)
    assert not Vault.objects.exists()


def test_vault_create_in_unknown_resource_group_is_not_found(system: User) -> None:
    with pytest.raises(NotFound) as caught:
        create_vault(system, resource_group="nowhere")
    assert caught.value.code == "ResourceGroupNotFound"
    assert not Vault.objects.exists()


def test_vault_names_are_unique_across_resource_groups(system: User, group: ResourceGroup) -> None:
    create_vault(system, name="shared")
    services.resource_group_create(actor=system, name="rg-other", location="westeurope")
    with pytest.raises(Conflict) as caught:
        create_vault(system, name="Shared", resource_group="rg-other")
    assert caught.value.code == "VaultAlreadyExists"
    assert caught.value.inner_code is None
    assert Vault.objects.get().resource_group == group


def test_vault_name_of_a_soft_deleted_vault_stays_taken(system: User, group: ResourceGroup) -> None:
    create_vault(system, name="shared")
    services.vault_delete(actor=system, name="shared")
    with pytest.raises(Conflict) as caught:
        create_vault(system, name="SHARED")
    assert caught.value.code == "ConflictError"
    assert caught.value.inner_code == "ObjectIsDeletedButRecoverable"
    assert caught.value.as_azure_error()["error"]["innererror"] == {  # type: ignore[index]
        "code": "ObjectIsDeletedButRecoverable"
    }
    assert Vault.objects.get().is_deleted


def test_vault_name_taken_meanwhile_is_a_conflict(
    system: User, group: ResourceGroup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another request takes the name between the check and the insert."""
    clean_tags = resources.clean_tags

    def create_meanwhile(tags: Any) -> dict[str, str]:
        Vault.objects.create(name="raced", resource_group=group, location="westeurope")
        return clean_tags(tags)

    monkeypatch.setattr(resources, "clean_tags", create_meanwhile)
    with pytest.raises(Conflict) as caught:
        create_vault(system, name="raced", location="eastus")
    assert caught.value.code == "VaultAlreadyExists"
    assert Vault.objects.get(name="raced").location == "westeurope"


def test_resource_group_name_taken_meanwhile_is_a_conflict(
    system: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean_tags = resources.clean_tags

    def create_meanwhile(tags: Any) -> dict[str, str]:
        ResourceGroup.objects.create(name="RG-Raced", location="westeurope")
        return clean_tags(tags)

    monkeypatch.setattr(resources, "clean_tags", create_meanwhile)
    with pytest.raises(Conflict) as caught:
        services.resource_group_create(actor=system, name="rg-raced", location="eastus")
    assert caught.value.code == "ResourceGroupExists"
    assert ResourceGroup.objects.get().name == "RG-Raced"


def test_vault_name_is_free_again_after_purge(system: User, group: ResourceGroup) -> None:
    first = create_vault(system, name="shared")
    services.vault_delete(actor=system, name="shared")
    services.vault_purge(actor=system, name="shared")
    second = create_vault(system, name="shared")
    assert second.uid != first.uid


# --- vault update --------------------------------------------------------------------------------


def test_vault_update_changes_tags_and_sku(system: User, group: ResourceGroup) -> None:
    create_vault(system, tags={"a": "1"})
    services.vault_update(actor=system, name="My-Vault", tags={"b": "2"}, sku="premium")
    vault = Vault.objects.get()
    assert (vault.tags, vault.sku, vault.permission_model) == ({"b": "2"}, "premium", "rbac")


def test_vault_update_leaves_unnamed_properties_alone(system: User, group: ResourceGroup) -> None:
    create_vault(system, tags={"a": "1"}, sku="premium")
    services.vault_update(actor=system, name="my-vault", purge_protection=True)
    vault = Vault.objects.get()
    assert (vault.tags, vault.sku, vault.purge_protection) == ({"a": "1"}, "premium", True)


def test_vault_update_turns_purge_protection_on(system: User, group: ResourceGroup) -> None:
    create_vault(system)
    services.vault_update(actor=system, name="my-vault", purge_protection=True)
    assert Vault.objects.get().purge_protection is True


def test_vault_update_cannot_turn_purge_protection_off(system: User, group: ResourceGroup) -> None:
    create_vault(system, purge_protection=True)
    before = snapshot()
    with pytest.raises(BadParameter, match="Purge protection cannot be turned off"):
        services.vault_update(
            actor=system, name="my-vault", purge_protection=False, tags={"sneaky": "change"}
        )
    assert snapshot() == before
    assert Vault.objects.get().purge_protection is True


def test_vault_update_with_purge_protection_false_on_an_unprotected_vault_is_fine(
    system: User, group: ResourceGroup
) -> None:
    create_vault(system)
    services.vault_update(actor=system, name="my-vault", purge_protection=False)
    assert Vault.objects.get().purge_protection is False


def test_vault_update_cannot_change_retention(system: User, group: ResourceGroup) -> None:
    create_vault(system, retention_days=30)
    before = snapshot()
    with pytest.raises(BadParameter, match="softDeleteRetentionInDays is fixed"):
        services.vault_update(actor=system, name="my-vault", retention_days=31, sku="premium")
    assert snapshot() == before
    # Repeating the current value is not a change.
    services.vault_update(actor=system, name="my-vault", retention_days=30)


@pytest.mark.parametrize(
    "change",
    [{"sku": "basic"}, {"tags": {f"t{n}": "v" for n in range(16)}}],
)
def test_vault_update_refuses_bad_values_and_changes_nothing(
    system: User, group: ResourceGroup, change: dict[str, Any]
) -> None:
    create_vault(system)
    before = snapshot()
    with pytest.raises(BadParameter):
        services.vault_update(actor=system, name="my-vault", **change)
    assert snapshot() == before


def test_vault_update_of_a_deleted_vault_is_not_found(system: User, group: ResourceGroup) -> None:
    create_vault(system)
    services.vault_delete(actor=system, name="my-vault")
    with pytest.raises(NotFound) as caught:
        services.vault_update(actor=system, name="my-vault", tags={})
    assert caught.value.code == "VaultNotFound"


def test_vault_update_does_not_undo_a_concurrent_delete(
    system: User, group: ResourceGroup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delete that commits while an update is under way must not be reverted by it."""
    create_vault(system)
    clean_tags = resources.clean_tags

    def delete_meanwhile(tags: Any) -> dict[str, str]:
        now = timezone.now()
        Vault.objects.filter(name="my-vault").update(
            deleted_at=now, scheduled_purge_at=now + timedelta(days=90)
        )
        return clean_tags(tags)

    monkeypatch.setattr(resources, "clean_tags", delete_meanwhile)
    with pytest.raises(NotFound):
        services.vault_update(actor=system, name="my-vault", tags={"a": "1"})
    vault = Vault.objects.get()
    assert vault.is_deleted
    assert vault.tags == {}


# --- get and list --------------------------------------------------------------------------------


def test_vault_get_unknown_is_not_found(system: User) -> None:
    with pytest.raises(NotFound) as caught:
        services.vault_get(actor=system, name="nowhere")
    assert caught.value.code == "VaultNotFound"


def test_vault_list_shows_live_vaults_optionally_by_group(
    system: User, group: ResourceGroup
) -> None:
    create_vault(system, name="vault-a")
    create_vault(system, name="vault-b")
    create_vault(system, name="vault-gone")
    services.vault_delete(actor=system, name="vault-gone")
    services.resource_group_create(actor=system, name="rg-other", location="westeurope")
    create_vault(system, name="vault-c", resource_group="rg-other")
    assert [v.name for v in services.vault_list(actor=system)] == ["vault-a", "vault-b", "vault-c"]
    assert [v.name for v in services.vault_list(actor=system, resource_group="RG-MAIN")] == [
        "vault-a",
        "vault-b",
    ]


def test_vault_list_of_unknown_group_is_not_found(system: User) -> None:
    with pytest.raises(NotFound):
        services.vault_list(actor=system, resource_group="nowhere")


# --- soft delete, recover, purge -----------------------------------------------------------------


def test_vault_delete_refuses_a_vault_holding_keys_without_force(
    system: User, group: ResourceGroup, make_key: MakeKey
) -> None:
    vault = create_vault(system)
    oct_key(make_key, "k1", vault)
    oct_key(make_key, "k2", vault)
    before = snapshot()
    with pytest.raises(Conflict, match="holds 2 key") as caught:
        services.vault_delete(actor=system, name="my-vault")
    assert caught.value.code == "VaultNotEmpty"
    assert snapshot() == before


def test_vault_delete_ignores_soft_deleted_keys(
    system: User, group: ResourceGroup, make_key: MakeKey
) -> None:
    vault = create_vault(system)
    oct_key(make_key, "k1", vault)
    key_services.key_delete(actor=system, vault_name="my-vault", name="k1")
    assert services.vault_delete(actor=system, name="my-vault").is_deleted


def test_vault_delete_with_force_soft_deletes_for_the_retention_period(
    system: User, group: ResourceGroup, make_key: MakeKey
) -> None:
    vault = create_vault(system, retention_days=7)
    oct_key(make_key, "k1", vault)
    before = timezone.now()
    services.vault_delete(actor=system, name="my-vault", force=True)
    vault.refresh_from_db()
    assert vault.deleted_at is not None and vault.scheduled_purge_at is not None
    assert before <= vault.deleted_at <= timezone.now()
    assert vault.scheduled_purge_at - vault.deleted_at == timedelta(days=7)
    # The keys stay as they were, waiting for recovery or purge with their vault.
    assert Key.objects.get().deleted_at is None


def test_vault_delete_of_an_empty_vault_needs_no_force(system: User, group: ResourceGroup) -> None:
    create_vault(system)
    vault = services.vault_delete(actor=system, name="my-vault")
    assert vault.is_deleted
    assert vault.scheduled_purge_at - vault.deleted_at == timedelta(days=90)  # type: ignore[operator]


def test_vault_delete_twice_is_not_found(system: User, group: ResourceGroup) -> None:
    create_vault(system)
    services.vault_delete(actor=system, name="my-vault")
    with pytest.raises(NotFound):
        services.vault_delete(actor=system, name="my-vault")


def test_keys_of_a_deleted_vault_are_unreachable(
    system: User, group: ResourceGroup, make_key: MakeKey
) -> None:
    vault = create_vault(system)
    oct_key(make_key, "k1", vault)
    services.vault_delete(actor=system, name="my-vault", force=True)
    with pytest.raises(NotFound) as caught:
        key_services.key_get(actor=system, vault_name="my-vault", name="k1")
    assert caught.value.code == "VaultNotFound"
    with pytest.raises(NotFound) as caught:
        key_services.key_list(actor=system, vault_name="my-vault")
    assert caught.value.code == "VaultNotFound"
    with pytest.raises(NotFound):
        services.vault_get(actor=system, name="my-vault")


def test_vault_list_deleted_shows_only_deleted_vaults(system: User, group: ResourceGroup) -> None:
    create_vault(system, name="vault-live")
    create_vault(system, name="vault-b-gone")
    create_vault(system, name="vault-a-gone")
    services.vault_delete(actor=system, name="vault-b-gone")
    services.vault_delete(actor=system, name="vault-a-gone")
    deleted = services.vault_list_deleted(actor=system)
    assert [vault.name for vault in deleted] == ["vault-a-gone", "vault-b-gone"]
    assert all(vault.scheduled_purge_at for vault in deleted)


def test_vault_recover_brings_the_vault_and_its_keys_back(
    system: User, group: ResourceGroup, make_key: MakeKey
) -> None:
    vault = create_vault(system, tags={"a": "1"})
    version = oct_key(make_key, "k1", vault)
    services.vault_delete(actor=system, name="my-vault", force=True)
    recovered = services.vault_recover(actor=system, name="My-Vault")
    recovered.refresh_from_db()
    assert recovered.pk == vault.pk
    assert recovered.deleted_at is None and recovered.scheduled_purge_at is None
    assert recovered.tags == {"a": "1"}
    assert services.vault_get(actor=system, name="my-vault") == recovered
    assert key_services.key_get(actor=system, vault_name="my-vault", name="k1") == version
    assert not services.vault_list_deleted(actor=system).exists()


def test_vault_recover_of_a_live_vault_is_not_found(system: User, group: ResourceGroup) -> None:
    create_vault(system)
    with pytest.raises(NotFound) as caught:
        services.vault_recover(actor=system, name="my-vault")
    assert caught.value.code == "DeletedVaultNotFound"


def test_vault_purge_removes_the_vault_and_its_keys(
    system: User, group: ResourceGroup, make_key: MakeKey
) -> None:
    vault = create_vault(system)
    other = create_vault(system, name="other-vault")
    oct_key(make_key, "k1", vault)
    key_services.key_rotate(actor=system, vault_name="my-vault", name="k1")
    oct_key(make_key, "k2", vault)
    kept = oct_key(make_key, "k1", other)
    services.vault_delete(actor=system, name="my-vault", force=True)
    services.vault_purge(actor=system, name="my-vault")
    assert not Vault.objects.filter(pk=vault.pk).exists()
    assert Vault.objects.filter(pk=other.pk).exists()
    assert list(Key.objects.all()) == [kept.key]
    assert list(KeyVersion.objects.all()) == [kept]
    with pytest.raises(NotFound):
        services.vault_recover(actor=system, name="my-vault")


def test_vault_purge_of_a_live_vault_is_not_found(system: User, group: ResourceGroup) -> None:
    create_vault(system)
    with pytest.raises(NotFound) as caught:
        services.vault_purge(actor=system, name="my-vault")
    assert caught.value.code == "DeletedVaultNotFound"
    assert Vault.objects.filter(name="my-vault", deleted_at=None).exists()


def test_vault_purge_under_purge_protection_is_forbidden_before_the_date(
    system: User, group: ResourceGroup, make_key: MakeKey
) -> None:
    vault = create_vault(system, purge_protection=True, retention_days=7)
    oct_key(make_key, "k1", vault)
    services.vault_delete(actor=system, name="my-vault", force=True)
    before = snapshot()
    with pytest.raises(Forbidden, match="purge protection is enabled") as caught:
        services.vault_purge(actor=system, name="my-vault")
    assert caught.value.inner_code is None  # Azure sends no innererror here
    assert snapshot() == before
    # Still recoverable, as purge protection promises.
    services.vault_recover(actor=system, name="my-vault")
    assert key_services.key_get(actor=system, vault_name="my-vault", name="k1")


def test_vault_purge_under_purge_protection_works_after_the_date(
    system: User, group: ResourceGroup, make_key: MakeKey
) -> None:
    vault = create_vault(system, purge_protection=True, retention_days=7)
    oct_key(make_key, "k1", vault)
    services.vault_delete(actor=system, name="my-vault", force=True)
    # Eight days later: the scheduled purge date has passed.
    Vault.objects.filter(pk=vault.pk).update(
        deleted_at=timezone.now() - timedelta(days=8),
        scheduled_purge_at=timezone.now() - timedelta(days=1),
    )
    services.vault_purge(actor=system, name="my-vault")
    assert not Vault.objects.filter(pk=vault.pk).exists()
    assert not Key.objects.exists()


def test_vault_purge_without_purge_protection_works_at_once(
    system: User, group: ResourceGroup
) -> None:
    create_vault(system)
    services.vault_delete(actor=system, name="my-vault")
    services.vault_purge(actor=system, name="my-vault")
    assert not Vault.objects.exists()


# --- authorization --------------------------------------------------------------------------------


@pytest.fixture
def estate(system: User, group: ResourceGroup, make_key: MakeKey) -> None:
    """A live vault with a key and a soft-deleted vault, all in rg-main."""
    oct_key(make_key, "k1", create_vault(system, name="live-vault"))
    create_vault(system, name="gone-vault")
    services.vault_delete(actor=system, name="gone-vault")


GUARDED_CALLS: list[tuple[Callable[..., Any], dict[str, Any]]] = [
    (services.resource_group_create, {"name": "rg-new", "location": "westeurope"}),
    (services.resource_group_update, {"name": "rg-main", "tags": {"a": "1"}}),
    (services.resource_group_get, {"name": "rg-main"}),
    (services.resource_group_delete, {"name": "rg-main"}),
    (services.vault_create, {"name": "new-vault", "resource_group": "rg-main"}),
    (services.vault_update, {"name": "live-vault", "tags": {"a": "1"}}),
    (services.vault_update, {"name": "live-vault", "purge_protection": True}),
    (services.vault_get, {"name": "live-vault"}),
    (services.vault_list, {"resource_group": "rg-main"}),
    (services.vault_delete, {"name": "live-vault"}),
    (services.vault_delete, {"name": "live-vault", "force": True}),
    (services.vault_recover, {"name": "gone-vault"}),
    (services.vault_purge, {"name": "gone-vault"}),
]


@pytest.mark.usefixtures("estate")
@pytest.mark.parametrize("persona", ["outsider", "application"])
@pytest.mark.parametrize(
    ("service", "arguments"),
    GUARDED_CALLS,
    ids=[f"{service.__name__}-{n}" for n, (service, _) in enumerate(GUARDED_CALLS)],
)
def test_principals_without_grants_may_call_no_service(
    request: pytest.FixtureRequest,
    persona: str,
    service: Callable[..., Any],
    arguments: dict[str, Any],
) -> None:
    actor = request.getfixturevalue(persona)
    before = snapshot()
    with pytest.raises(Forbidden) as caught:
        service(actor=actor, **arguments)
    assert caught.value.inner_code == "ForbiddenByRbac"
    assert f"oid={actor.oid}" in caught.value.message
    assert snapshot() == before


@pytest.mark.parametrize("persona", ["outsider", "application"])
@pytest.mark.parametrize(
    ("service", "arguments"),
    [
        (services.resource_group_get, {"name": "no-such-rg"}),
        (services.resource_group_delete, {"name": "no-such-rg"}),
        (services.vault_create, {"name": "new-vault", "resource_group": "no-such-rg"}),
        (services.vault_list, {"resource_group": "no-such-rg"}),
    ],
)
def test_outsiders_cannot_tell_a_missing_resource_group_from_a_forbidden_one(
    request: pytest.FixtureRequest,
    persona: str,
    service: Callable[..., Any],
    arguments: dict[str, Any],
) -> None:
    with pytest.raises(Forbidden):
        service(actor=request.getfixturevalue(persona), **arguments)


@pytest.mark.usefixtures("estate")
@pytest.mark.parametrize("persona", ["outsider", "application"])
def test_unscoped_lists_show_outsiders_nothing(
    request: pytest.FixtureRequest, persona: str
) -> None:
    # A list is filtered by what the actor may see (as Azure's ARM lists are), not refused.
    actor = request.getfixturevalue(persona)
    assert list(services.resource_group_list(actor=actor)) == []
    assert list(services.vault_list(actor=actor)) == []
    assert list(services.vault_list_deleted(actor=actor)) == []


@pytest.mark.usefixtures("estate")
def test_inactive_superuser_is_forbidden(owner: User) -> None:
    owner.is_active = False
    owner.save()
    with pytest.raises(Forbidden):
        services.vault_get(actor=owner, name="live-vault")


@pytest.mark.usefixtures("estate")
def test_superuser_may_call_services(owner: User) -> None:
    assert services.vault_get(actor=owner, name="live-vault").name == "live-vault"
    services.vault_update(actor=owner, name="live-vault", tags={"by": "owner"})
    assert Vault.objects.get(name="live-vault").tags == {"by": "owner"}
