"""Reads of resource groups, vaults and the activity log, filtered by what the actor may see."""

from datetime import datetime

from django.db.models import QuerySet

from accounts.models import User

from .activity import ChainReport, verify_chain
from .models import ActivityEntry, ResourceGroup, Vault
from .permissions import DEPLOYMENT, Action, authorize, readable_activity, visible


def resource_group_list(*, actor: User) -> QuerySet[ResourceGroup]:
    return visible(actor, ResourceGroup.objects.all(), Action.RESOURCE_GROUP_READ)


def vault_list(
    *, actor: User, resource_group: str | None = None, deleted: bool = False
) -> QuerySet[Vault]:
    vaults = Vault.objects.select_related("resource_group").filter(deleted_at__isnull=not deleted)
    if resource_group:
        vaults = vaults.filter(resource_group__name__iexact=resource_group)
    return visible(actor, vaults, Action.DELETED_VAULT_READ if deleted else Action.VAULT_READ)


def activity_list(
    *,
    actor: User,
    vault: str | None = None,
    operation: str | None = None,
    result: str | None = None,
    face: str | None = None,
    actor_name: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[ActivityEntry]:
    """Activity entries the actor may read, newest first."""
    entries = readable_activity(actor, ActivityEntry.objects.order_by("-seq"))
    filters = {
        "vault_name": vault.lower() if vault else None,
        "operation": operation,
        "result": result,
        "face": face,
        "actor_name": actor_name,
        "time__gte": since,
        "time__lt": until,
    }
    return entries.filter(**{name: value for name, value in filters.items() if value})


def activity_verify(*, actor: User, anchor: tuple[int, str] | None = None) -> ChainReport:
    """Check the whole log's hash chain (and an anchor recorded earlier, if given)."""
    authorize(actor, Action.ACTIVITY_READ, DEPLOYMENT)
    return verify_chain(anchor=anchor)
