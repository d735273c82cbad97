"""Every change to resource groups and vaults, authorized and recorded."""

from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from accounts.models import User
from kvconsole import clock
from kvconsole.errors import BadParameter, Conflict, Forbidden, NotFound

from .. import activity, selectors
from ..activity import operation
from ..models import Operation, ResourceGroup, Vault, VaultHostAlias
from ..permissions import DEPLOYMENT, Action, MissingResourceGroup, authorize
from ..validation import (
    clean_host_aliases,
    clean_location,
    clean_resource_group_name,
    clean_tags,
    clean_vault_name,
)

MIN_RETENTION_DAYS, MAX_RETENTION_DAYS = 7, 90


def _resource_group(
    actor: User, action: Action, name: str, *, as_target: bool = True
) -> ResourceGroup:
    """A resource group by name (ignoring case) on which `actor` may perform `action`.

    Only those who could see every group learn that one does not exist; everyone else
    gets the same Forbidden for a missing group as for one they have no rights on.
    With `as_target` the group is what the operation is recorded against; otherwise only
    its scope, as for a vault being created in it.
    """
    if as_target:
        activity.describe(resource_group=name, target=f"resourceGroups/{name}")
    else:
        activity.describe(resource_group=name)
    group = ResourceGroup.objects.filter(name__iexact=name).first()
    if group is None:
        authorize(actor, action, MissingResourceGroup(name))
        raise NotFound(f"Resource group '{name}' could not be found.", code="ResourceGroupNotFound")
    if as_target:
        activity.describe(group)
    else:
        activity.describe(resource_group=group.name)
    authorize(actor, action, group)
    return group


def vault_lookup(
    name: str, *, actor: User, action: Action, deleted: bool = False, as_target: bool = True
) -> Vault:
    """A live (or soft-deleted) vault by name; NotFound names the vault as Azure does.

    Only actors who could see every vault learn that one does not exist; the caller
    authorizes what it does with a vault that does. With `as_target`, the vault becomes
    what the running operation is recorded against; operations on something inside the
    vault keep their own, more precise target.
    """
    if as_target:
        activity.describe(vault=name.lower(), target=f"vaults/{name.lower()}")
    try:
        vault = Vault.objects.select_related("resource_group").get(
            name=name.lower(), deleted_at__isnull=not deleted
        )
    except Vault.DoesNotExist:
        authorize(actor, action, DEPLOYMENT)
        if deleted:
            message = f"Deleted vault '{name}' was not found."
            raise NotFound(message, code="DeletedVaultNotFound") from None
        raise NotFound(f"Vault '{name}' was not found.", code="VaultNotFound") from None
    if as_target:
        activity.describe(vault)
    else:
        activity.describe(resource_group=vault.resource_group.name, vault=vault.name)
    return vault


def _retention(days: int) -> int:
    if not isinstance(days, int) or not MIN_RETENTION_DAYS <= days <= MAX_RETENTION_DAYS:
        raise BadParameter(
            f"softDeleteRetentionInDays must be between {MIN_RETENTION_DAYS} and "
            f"{MAX_RETENTION_DAYS}; {days} was given."
        )
    return days


def _choice(value: str, choices: type[Any], field: str) -> str:
    if value not in choices.values:
        raise BadParameter(f"{field} must be one of {', '.join(choices.values)}; got '{value}'.")
    return value


@operation(Operation.RESOURCE_GROUP_PUT)
def resource_group_create(
    *, actor: User, name: str, location: str, tags: dict[str, str] | None = None
) -> ResourceGroup:
    """Create a resource group; its name is unique in the deployment, ignoring case."""
    activity.describe(resource_group=name, target=f"resourceGroups/{name}")
    authorize(actor, Action.RESOURCE_GROUP_WRITE, DEPLOYMENT)
    group = ResourceGroup(
        name=clean_resource_group_name(name),
        location=clean_location(location),
        tags=clean_tags(tags),
    )
    if ResourceGroup.objects.filter(name__iexact=name).exists():
        raise Conflict(f"Resource group '{name}' already exists.", code="ResourceGroupExists")
    try:
        with activity.atomic():
            group.save()
    except IntegrityError:
        raise Conflict(
            f"Resource group '{name}' already exists.", code="ResourceGroupExists"
        ) from None
    return group


@operation(Operation.RESOURCE_GROUP_PATCH)
def resource_group_update(*, actor: User, name: str, tags: dict[str, str]) -> ResourceGroup:
    """Replace a resource group's tags."""
    group = _resource_group(actor, Action.RESOURCE_GROUP_WRITE, name)
    group.tags = clean_tags(tags)
    with activity.atomic():
        group.save(update_fields=["tags", "updated_at"])
    return group


@operation(Operation.RESOURCE_GROUP_GET)
def resource_group_get(*, actor: User, name: str) -> ResourceGroup:
    group = _resource_group(actor, Action.RESOURCE_GROUP_READ, name)
    return group


@operation(Operation.RESOURCE_GROUP_LIST)
def resource_group_list(*, actor: User) -> QuerySet[ResourceGroup]:
    return selectors.resource_group_list(actor=actor)


@operation(Operation.RESOURCE_GROUP_DELETE)
def resource_group_delete(*, actor: User, name: str) -> None:
    """Delete an empty resource group; vaults, even soft-deleted ones, keep it alive."""
    group = _resource_group(actor, Action.RESOURCE_GROUP_DELETE, name)
    vault_count = group.vaults.count()
    if vault_count:
        raise Conflict(
            f"Resource group '{group.name}' still holds {vault_count} vault(s), counting "
            "soft-deleted ones; delete and purge them first.",
            code="ResourceGroupNotEmpty",
        )
    with activity.atomic():
        group.delete()


@operation(Operation.VAULT_PUT)
def vault_create(
    *,
    actor: User,
    name: str,
    resource_group: str,
    location: str | None = None,
    sku: str = Vault.Sku.STANDARD,
    retention_days: int = MAX_RETENTION_DAYS,
    purge_protection: bool = False,
    permission_model: str = Vault.PermissionModel.RBAC,
    tags: dict[str, str] | None = None,
) -> Vault:
    """Create a vault; its name is unique across the deployment, soft-deleted vaults included."""
    activity.describe(vault=name.lower(), target=f"vaults/{name.lower()}")
    group = _resource_group(actor, Action.VAULT_WRITE, resource_group, as_target=False)
    vault = Vault(
        name=clean_vault_name(name),
        resource_group=group,
        location=clean_location(location or group.location),
        sku=_choice(sku, Vault.Sku, "sku"),
        soft_delete_retention_days=_retention(retention_days),
        purge_protection=bool(purge_protection),
        permission_model=_choice(permission_model, Vault.PermissionModel, "permissionModel"),
        tags=clean_tags(tags),
    )
    activity.describe(vault)
    existing = Vault.objects.filter(name=vault.name).first()
    if existing is not None:
        raise _vault_name_taken(existing)
    try:
        with activity.atomic():
            vault.save()
    except IntegrityError:
        existing = Vault.objects.filter(name=vault.name).first()
        if existing is None:  # not the name: e.g. the resource group went meanwhile
            raise
        raise _vault_name_taken(existing) from None
    return vault


def _vault_name_taken(existing: Vault) -> Conflict:
    if existing.is_deleted:
        return Conflict(
            f"Vault name '{existing.name}' is held by a soft-deleted vault; recover or purge it "
            "before reusing the name.",
            code="ConflictError",
            inner_code="ObjectIsDeletedButRecoverable",
        )
    return Conflict(f"Vault name '{existing.name}' is already in use.", code="VaultAlreadyExists")


@operation(Operation.VAULT_PATCH)
def vault_update(
    *,
    actor: User,
    name: str,
    tags: dict[str, str] | None = None,
    sku: str | None = None,
    purge_protection: bool | None = None,
    retention_days: int | None = None,
    host_aliases: list[str] | None = None,
) -> Vault:
    """Change a vault's mutable properties; retention is fixed and purge protection one-way.
    The permission model changes through `vault_permission_model_set`, which takes more.
    `host_aliases` replaces the other host names the vault's endpoint answers on."""
    vault = vault_lookup(name, actor=actor, action=Action.VAULT_WRITE)
    authorize(actor, Action.VAULT_WRITE, vault)
    aliases = None
    if host_aliases is not None:
        authorize(actor, Action.HOST_ALIASES_WRITE, DEPLOYMENT)
        aliases = clean_host_aliases(host_aliases)
    changes: dict[str, Any] = {}
    if tags is not None:
        changes["tags"] = clean_tags(tags)
    if sku is not None:
        changes["sku"] = _choice(sku, Vault.Sku, "sku")
    if purge_protection is not None:
        changes["purge_protection"] = bool(purge_protection)
    with activity.atomic():
        # Read again under a lock and write only what this call changes: a concurrent
        # change (turning purge protection on, a delete) must not be undone.
        vault = _lock_vault(vault)
        if retention_days is not None and retention_days != vault.soft_delete_retention_days:
            raise BadParameter(
                "softDeleteRetentionInDays is fixed when the vault is created and cannot be "
                "changed."
            )
        if vault.purge_protection and changes.get("purge_protection") is False:
            raise BadParameter("Purge protection cannot be turned off once it is enabled.")
        for field, value in changes.items():
            setattr(vault, field, value)
        vault.save(update_fields=[*changes, "updated_at"])
        if aliases is not None:
            _set_host_aliases(vault, aliases)
    return vault


def _set_host_aliases(vault: Vault, aliases: list[str]) -> None:
    taken = (
        VaultHostAlias.objects.filter(host__in=aliases)
        .exclude(vault=vault)
        .values_list("host", flat=True)
    )
    if taken:
        raise Conflict(f"The host alias {', '.join(sorted(taken))} belongs to another vault.")
    VaultHostAlias.objects.filter(vault=vault).exclude(host__in=aliases).delete()
    existing = set(vault.host_aliases.values_list("host", flat=True))
    VaultHostAlias.objects.bulk_create(
        VaultHostAlias(vault=vault, host=host) for host in aliases if host not in existing
    )
    transaction.on_commit(selectors.host_aliases.forget)


def _lock_vault(vault: Vault, *, deleted: bool = False) -> Vault:
    """`vault` read again and locked inside the caller's transaction, still live (or still
    soft-deleted): what was checked before the transaction may have changed since."""
    locked = (
        Vault.objects.select_for_update(of=("self",), no_key=True)
        .select_related("resource_group")
        .filter(pk=vault.pk, deleted_at__isnull=not deleted)
        .first()
    )
    if locked is None:
        raise NotFound(f"Vault '{vault.name}' was not found.", code="VaultNotFound")
    return locked


@operation(Operation.VAULT_GET)
def vault_get(*, actor: User, name: str) -> Vault:
    vault = vault_lookup(name, actor=actor, action=Action.VAULT_READ)
    authorize(actor, Action.VAULT_READ, vault)
    return vault


@operation(Operation.VAULT_LIST)
def vault_list(*, actor: User, resource_group: str | None = None) -> QuerySet[Vault]:
    if resource_group:
        _resource_group(actor, Action.VAULT_READ, resource_group)
    return selectors.vault_list(actor=actor, resource_group=resource_group)


@operation(Operation.VAULT_DELETE)
def vault_delete(*, actor: User, name: str, force: bool = False) -> Vault:
    """Soft-delete a vault for its retention period; one holding keys needs `force`."""
    vault = vault_lookup(name, actor=actor, action=Action.VAULT_DELETE)
    authorize(actor, Action.VAULT_DELETE, vault)
    key_count = vault.keys.filter(deleted_at__isnull=True).count()
    if key_count and not force:
        raise Conflict(
            f"Vault '{vault.name}' holds {key_count} key(s); delete them first, or force the "
            "deletion to soft-delete the vault with its keys.",
            code="VaultNotEmpty",
        )
    with activity.atomic():
        vault = _lock_vault(vault)
        now = clock.now()
        vault.deleted_at = now
        vault.scheduled_purge_at = now + timedelta(days=vault.soft_delete_retention_days)
        vault.save(update_fields=["deleted_at", "scheduled_purge_at", "updated_at"])
    return vault


@operation(Operation.VAULT_LIST_DELETED)
def vault_list_deleted(*, actor: User) -> QuerySet[Vault]:
    """Soft-deleted vaults the actor may see; like every list, filtered rather than refused."""
    return selectors.vault_list(actor=actor, deleted=True)


@operation(Operation.VAULT_RECOVER)
def vault_recover(*, actor: User, name: str) -> Vault:
    """Bring a soft-deleted vault back, with its keys, as it was."""
    vault = vault_lookup(name, actor=actor, action=Action.VAULT_RECOVER, deleted=True)
    authorize(actor, Action.VAULT_RECOVER, vault)
    with activity.atomic():
        vault = _lock_vault(vault, deleted=True)
        vault.deleted_at = vault.scheduled_purge_at = None
        vault.save(update_fields=["deleted_at", "scheduled_purge_at", "updated_at"])
    return vault


@operation(Operation.VAULT_PURGE)
def vault_purge(*, actor: User, name: str) -> None:
    """Destroy a soft-deleted vault and every key in it, for good."""
    vault = vault_lookup(name, actor=actor, action=Action.VAULT_PURGE, deleted=True)
    authorize(actor, Action.VAULT_PURGE, vault)
    activity.describe(status_code=204)
    with activity.atomic():
        # Locked and checked again: a recover that just committed must not be undone.
        vault = _lock_vault(vault, deleted=True)
        assert vault.scheduled_purge_at is not None
        if vault.purge_protection and clock.now() < vault.scheduled_purge_at:
            raise Forbidden(
                'Operation "purge" is not allowed because purge protection is enabled for '
                f"vault '{vault.name}'; it cannot be purged before its scheduled purge date, "
                f"{vault.scheduled_purge_at:%Y-%m-%d %H:%M} UTC."
            )
        vault.delete()
