"""The database itself refuses what the services would never write.

Rows are created with `Model.objects.create`, bypassing the services, so these tests show
the constraints hold for any code path, not only for the validated one.
"""

from datetime import timedelta
from typing import Any

import pytest
from django.db import DataError, IntegrityError, transaction
from django.utils import timezone

from keys.models import Key, KeyVersion
from tests.factories import ResourceGroupFactory, VaultFactory
from vaults import services
from vaults.models import ActivityEntry, ResourceGroup, Vault

pytestmark = pytest.mark.django_db


# A check constraint refuses a bad value (IntegrityError); PostgreSQL refuses one longer than
# its column first (DataError), where SQLite would store it but for the constraint.
REFUSALS = (IntegrityError, DataError)


def refused(model: Any, **fields: Any) -> None:
    """Assert the database refuses to insert a row with `fields`."""
    with pytest.raises(REFUSALS), transaction.atomic():
        model.objects.create(**fields)


@pytest.fixture
def group() -> ResourceGroup:
    return ResourceGroupFactory.create(name="rg-models")


def make_vault(group: ResourceGroup, **fields: Any) -> Vault:
    return Vault.objects.create(
        **{"name": "valid-vault", "resource_group": group, "location": "westeurope", **fields}
    )


def make_version(key: Key, **fields: Any) -> KeyVersion:
    now = timezone.now()
    return KeyVersion.objects.create(
        **{
            "key": key,
            "kty": "oct",
            "size": 256,
            "public_jwk": {"kty": "oct"},
            "origin": KeyVersion.Origin.GENERATED,
            "created_at": now,
            "updated_at": now,
            "master_key_id": "m1",
            "wrapped_data_key": b"wrapped",
            "sealed_material": b"sealed",
            **fields,
        }
    )


# --- vaults ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "abc",
        "a-b",
        "a1-b2-c3",
        "a" * 24,
        "v-" + "0" * 22,
    ],
)
def test_database_accepts_valid_vault_names(group: ResourceGroup, name: str) -> None:
    assert make_vault(group, name=name).name == name


@pytest.mark.parametrize(
    "name",
    [
        "MyVault",  # upper case
        "my--vault",  # consecutive hyphens
        "ab",  # 2 characters
        "a" * 25,  # 25 characters
        "1vault",  # starts with a digit
        "-vault",  # starts with a hyphen
        "vault-",  # ends with a hyphen
        "my_vault",  # underscore
        "my.vault",  # period
        "",
    ],
)
def test_database_refuses_invalid_vault_names(group: ResourceGroup, name: str) -> None:
    refused(Vault, name=name, resource_group=group, location="westeurope")


@pytest.mark.parametrize("days", [6, 91, 0])
def test_database_refuses_retention_outside_7_to_90_days(group: ResourceGroup, days: int) -> None:
    refused(
        Vault,
        name="valid-vault",
        resource_group=group,
        location="westeurope",
        soft_delete_retention_days=days,
    )


@pytest.mark.parametrize("days", [7, 90])
def test_database_accepts_retention_bounds(group: ResourceGroup, days: int) -> None:
    assert make_vault(group, soft_delete_retention_days=days).soft_delete_retention_days == days


@pytest.mark.parametrize(
    "fields",
    [{"sku": "basic"}, {"sku": "Standard"}, {"permission_model": "acl"}, {"permission_model": ""}],
)
def test_database_refuses_unknown_sku_and_permission_model(
    group: ResourceGroup, fields: dict[str, str]
) -> None:
    refused(Vault, name="valid-vault", resource_group=group, location="westeurope", **fields)


def test_database_refuses_soft_deleted_vault_without_purge_date(group: ResourceGroup) -> None:
    refused(
        Vault,
        name="valid-vault",
        resource_group=group,
        location="westeurope",
        deleted_at=timezone.now(),
    )


def test_database_refuses_to_update_vault_into_deleted_without_purge_date(
    group: ResourceGroup,
) -> None:
    vault = make_vault(group)
    with pytest.raises(IntegrityError), transaction.atomic():
        Vault.objects.filter(pk=vault.pk).update(deleted_at=timezone.now())
    vault.refresh_from_db()
    assert vault.deleted_at is None


def test_database_accepts_soft_deleted_vault_with_purge_date(group: ResourceGroup) -> None:
    now = timezone.now()
    vault = make_vault(group, deleted_at=now, scheduled_purge_at=now + timedelta(days=90))
    assert vault.is_deleted


def test_database_refuses_duplicate_vault_name(group: ResourceGroup) -> None:
    make_vault(group, name="taken")
    refused(
        Vault, name="taken", resource_group=ResourceGroupFactory.create(), location="westeurope"
    )


# --- resource groups ---------------------------------------------------------------------------


def test_database_refuses_resource_group_names_differing_only_in_case() -> None:
    ResourceGroup.objects.create(name="Production", location="westeurope")
    refused(ResourceGroup, name="production", location="westeurope")
    refused(ResourceGroup, name="PRODUCTION", location="westeurope")


@pytest.mark.parametrize("name", ["", "ends-with-period.", "has space", "slash/", "a" * 91])
def test_database_refuses_invalid_resource_group_names(name: str) -> None:
    refused(ResourceGroup, name=name, location="westeurope")


@pytest.mark.parametrize("name", ["a", "rg_1.(prod)-x", "a" * 90])
def test_database_accepts_valid_resource_group_names(name: str) -> None:
    assert ResourceGroup.objects.create(name=name, location="westeurope").name == name


# --- keys --------------------------------------------------------------------------------------


def test_database_refuses_key_names_differing_only_in_case_in_one_vault(vault: Vault) -> None:
    Key.objects.create(vault=vault, name="Signing")
    refused(Key, vault=vault, name="signing")
    refused(Key, vault=vault, name="SIGNING")


def test_database_allows_the_same_key_name_in_two_vaults(vault: Vault) -> None:
    Key.objects.create(vault=vault, name="signing")
    assert Key.objects.create(vault=VaultFactory.create(), name="Signing").pk


@pytest.mark.parametrize(
    "version",
    [
        "g" * 32,  # not hex
        "A" * 32,  # upper-case hex
        "ABCDEF0123456789abcdef0123456789",
        "a" * 31,
        "a" * 33,
        "",
    ],
)
def test_database_refuses_invalid_version_ids(vault: Vault, version: str) -> None:
    key = Key.objects.create(vault=vault, name="key1")
    with pytest.raises(REFUSALS), transaction.atomic():
        make_version(key, version=version)


def test_database_accepts_lower_case_hex_version_id(vault: Vault) -> None:
    key = Key.objects.create(vault=vault, name="key1")
    assert make_version(key, version="0123456789abcdef" * 2).pk


@pytest.mark.parametrize("later", [timedelta(0), timedelta(microseconds=1), timedelta(days=30)])
def test_database_refuses_not_before_at_or_after_expiry(vault: Vault, later: timedelta) -> None:
    key = Key.objects.create(vault=vault, name="key1")
    expires = timezone.now() + timedelta(days=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        make_version(key, not_before=expires + later, expires=expires)


def test_database_accepts_not_before_earlier_than_expiry(vault: Vault) -> None:
    key = Key.objects.create(vault=vault, name="key1")
    expires = timezone.now() + timedelta(days=1)
    version = make_version(key, not_before=expires - timedelta(seconds=1), expires=expires)
    assert version.pk


# --- activity entries --------------------------------------------------------------------------


@pytest.fixture
def entries(system: Any) -> list[ActivityEntry]:
    services.resource_group_create(actor=system, name="rg-log", location="westeurope")
    services.resource_group_get(actor=system, name="rg-log")
    return list(ActivityEntry.objects.order_by("seq"))


def test_activity_entry_refuses_save_of_existing_row(entries: list[ActivityEntry]) -> None:
    entry = entries[0]
    entry.result = "Forbidden"
    with pytest.raises(PermissionError):
        entry.save()
    with pytest.raises(PermissionError):
        entry.save(update_fields=["result"])
    assert ActivityEntry.objects.get(seq=entry.seq).result == "Success"


def test_activity_entry_refuses_delete(entries: list[ActivityEntry]) -> None:
    with pytest.raises(PermissionError):
        entries[0].delete()
    assert ActivityEntry.objects.count() == 2


def test_activity_queryset_refuses_update(entries: list[ActivityEntry]) -> None:
    with pytest.raises(PermissionError):
        ActivityEntry.objects.update(result="Failure")
    with pytest.raises(PermissionError):
        ActivityEntry.objects.filter(seq=1).update(message="edited")
    assert set(ActivityEntry.objects.values_list("result", flat=True)) == {"Success"}


def test_activity_queryset_refuses_delete(entries: list[ActivityEntry]) -> None:
    with pytest.raises(PermissionError):
        ActivityEntry.objects.all().delete()
    with pytest.raises(PermissionError):
        ActivityEntry.objects.filter(seq=1).delete()
    assert ActivityEntry.objects.count() == 2


@pytest.mark.parametrize(
    ("model", "fields"),
    [
        (ResourceGroup, {"name": "rg\n", "location": "westeurope"}),
        (Vault, {"name": "abc\n", "location": "westeurope"}),
    ],
)
def test_database_refuses_names_with_a_trailing_newline(
    group: ResourceGroup, model: Any, fields: dict[str, Any]
) -> None:
    if model is Vault:
        fields = {**fields, "resource_group": group}
    refused(model, **fields)


def test_database_refuses_key_names_and_versions_with_a_trailing_newline(vault: Vault) -> None:
    refused(Key, vault=vault, name="k\n")
    key = Key.objects.create(vault=vault, name="k")
    with pytest.raises(REFUSALS), transaction.atomic():
        make_version(key, version="0" * 32 + "\n")
