"""Reads of keys and versions, filtered by what the actor may see."""

from datetime import datetime

from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast, Lower

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


def key_search(*, actor: User, q: str, limit: int = 50) -> QuerySet[Key]:
    """Live keys in live vaults whose name, or a tag of whose current version, matches `q`
    (`name=value` matches that tag exactly), that the actor may see."""
    return visible(
        actor, _matching(Key.objects.all(), q, "current_version__tags"), Action.KEY_LIST
    )[:limit]


def vault_search(*, actor: User, q: str, limit: int = 50) -> QuerySet[Vault]:
    """Live vaults whose name or a tag matches `q`, as `key_search` matches keys."""
    return visible(actor, _matching(Vault.objects.all(), q, "tags"), Action.VAULT_READ)[:limit]


def _matching[M: Key | Vault](objects: QuerySet[M], q: str, tags: str) -> QuerySet[M]:
    name, equals, value = q.partition("=")
    if equals and name.strip():
        match = Q(**{f"{tags}__{name.strip()}": value.strip()})
    else:
        # Tags as their JSON text: a name or a value containing the words matches.
        objects = objects.annotate(tags_text=Cast(tags, TextField()))
        match = Q(name__icontains=q) | Q(tags_text__icontains=q)
    live = (
        {"deleted_at": None}
        if objects.model is Vault
        else {
            "deleted_at": None,
            "vault__deleted_at": None,
        }
    )
    related = ["resource_group"] if objects.model is Vault else ["vault", "current_version"]
    return objects.filter(match, **live).select_related(*related).order_by(Lower("name"))


def key_visible_list(*, actor: User) -> QuerySet[Key]:
    """Live keys of live vaults, across every vault, that the actor may see."""
    keys = Key.objects.filter(deleted_at=None, vault__deleted_at=None)
    return visible(actor, keys, Action.KEY_LIST)


def key_expiring_list(*, actor: User, after: datetime, until: datetime) -> QuerySet[Key]:
    """Live keys the actor may see whose current version expires after `after` and by
    `until`, soonest first."""
    keys = key_visible_list(actor=actor).filter(
        current_version__expires__gt=after, current_version__expires__lte=until
    )
    return keys.select_related("vault", "current_version").order_by(
        "current_version__expires", Lower("name"), "pk"
    )
