"""Reads of keys and versions, filtered by what the actor may see."""

from django.db.models import QuerySet
from django.db.models.functions import Lower

from accounts.models import User
from vaults.models import Vault
from vaults.permissions import Action, visible

from .models import Key, KeyVersion


def key_list(*, actor: User, vault: Vault, deleted: bool = False, q: str = "") -> QuerySet[Key]:
    """The vault's keys (live or soft-deleted) with their current versions, by name."""
    keys = Key.objects.select_related("current_version", "vault__resource_group").filter(
        vault=vault, deleted_at__isnull=not deleted
    )
    if q:
        keys = keys.filter(name__icontains=q)
    return visible(actor, keys.order_by(Lower("name")), Action.KEY_LIST, within=vault)


def key_version_list(*, actor: User, key: Key) -> QuerySet[KeyVersion]:
    """Every version of a key, oldest first."""
    versions = key.versions.select_related("key__vault__resource_group")
    return visible(actor, versions, Action.KEY_LIST, within=key)
