"""Reads of keys and versions, filtered by what the actor may see."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import F, OrderBy, Q, QuerySet, TextField
from django.db.models.fields.json import KeyTransform
from django.db.models.functions import Cast, Lower

from accounts.models import User
from kvconsole import clock
from vaults.models import Vault
from vaults.permissions import Action, visible

from . import rotation
from .models import Key, KeyVersion

# How far ahead "expiring soon" looks, in lists and filters.
EXPIRING_SOON = timedelta(days=30)
EXPIRED, SOON = "expired", "soon"
# What a key list may be sorted by (a leading "-" reverses it); keys without an expiry come
# last either way, and names break ties so that pages never overlap.
KEY_SORTS: dict[str, F | Lower] = {
    "name": Lower("name"),
    "type": F("current_version__kty"),
    "created": F("created_at"),
    "expires": F("current_version__expires"),
}


def key_list(
    *,
    actor: User,
    vault: Vault,
    deleted: bool = False,
    q: str = "",
    kty: str = "",
    enabled: bool | None = None,
    expiry: str = "",
    sort: str = "name",
    now: datetime | None = None,
) -> QuerySet[Key]:
    """The vault's keys (live or soft-deleted) with their current versions, by name.

    `q` matches a name or a tag of the current version as `key_search` does; `kty`,
    `enabled` and `expiry` (EXPIRED, or SOON: within EXPIRING_SOON) narrow by the current
    version; `sort` is a key of KEY_SORTS, reversed by a leading "-".
    """
    keys = Key.objects.select_related("current_version", "vault__resource_group").filter(
        vault=vault, deleted_at__isnull=not deleted
    )
    if q:
        keys = _matching(keys, q, "current_version__tags")
    if kty:
        keys = keys.filter(current_version__kty=kty)
    if enabled is not None:
        keys = keys.filter(current_version__enabled=enabled)
    now = now or clock.now()
    if expiry == EXPIRED:
        keys = keys.filter(current_version__expires__lte=now)
    elif expiry == SOON:
        keys = keys.filter(
            current_version__expires__gt=now, current_version__expires__lte=now + EXPIRING_SOON
        )
    return visible(actor, keys.order_by(*_ordering(sort)), Action.KEY_LIST, within=vault)


def _ordering(sort: str) -> list[OrderBy | Lower | str]:
    descending = sort.startswith("-")
    column = KEY_SORTS.get(sort.removeprefix("-"), KEY_SORTS["name"])
    order = column.desc(nulls_last=True) if descending else column.asc(nulls_last=True)
    return [order, Lower("name"), "pk"]


def key_named(*, actor: User, vault: Vault, name: str, deleted: bool = False) -> Key | None:
    """One of the vault's keys (live or soft-deleted) by its case-insensitive name, if the
    actor may see it."""
    keys = Key.objects.select_related("current_version", "vault__resource_group").filter(
        vault=vault, deleted_at__isnull=not deleted
    )
    named = keys.alias(name_lower=Lower("name")).filter(name_lower=name.lower())
    return visible(actor, named, Action.KEY_LIST, within=vault).first()


def key_version_list(*, actor: User, key: Key) -> QuerySet[KeyVersion]:
    """Every version of a key, oldest first."""
    versions = key.versions.select_related("key__vault__resource_group")
    return visible(actor, versions, Action.KEY_LIST, within=key)


def restorable_vaults(*, actor: User) -> QuerySet[Vault]:
    """Live vaults the actor may restore key backups into, by name."""
    vaults = Vault.objects.filter(deleted_at=None).order_by("name")
    return visible(actor, vaults, Action.KEY_RESTORE)


def key_search(*, actor: User, q: str, limit: int = 50) -> QuerySet[Key]:
    """Live keys in live vaults whose name, or a tag of whose current version, matches `q`
    (`name=value` matches that tag exactly), that the actor may see."""
    keys = Key.objects.filter(deleted_at=None, vault__deleted_at=None)
    keys = _matching(keys, q, "current_version__tags").select_related("vault", "current_version")
    return visible(actor, keys.order_by(Lower("name")), Action.KEY_LIST)[:limit]


def vault_search(*, actor: User, q: str, limit: int = 50) -> QuerySet[Vault]:
    """Live vaults whose name or a tag matches `q`, as `key_search` matches keys."""
    vaults = _matching(Vault.objects.filter(deleted_at=None), q, "tags")
    vaults = vaults.select_related("resource_group").order_by(Lower("name"))
    return visible(actor, vaults, Action.VAULT_READ)[:limit]


def _matching[M: Key | Vault](objects: QuerySet[M], q: str, tags: str) -> QuerySet[M]:
    name, equals, value = q.partition("=")
    if equals and name.strip():
        # The tag name is taken literally (a transform, not a lookup path it could extend).
        objects = objects.alias(tag_value=KeyTransform(name.strip(), tags))
        return objects.filter(tag_value=value.strip())
    # Tags as their JSON text: a name or a value containing the words matches.
    objects = objects.alias(tags_text=Cast(tags, TextField()))
    return objects.filter(Q(name__icontains=q) | Q(tags_text__icontains=q))


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


@dataclass(frozen=True)
class ScheduledRotation:
    """A key with a Rotate action, and when its current version falls due (None: never, as
    things stand)."""

    key: Key
    due_at: datetime | None
    due: bool


def key_rotation_candidates(
    *, actor: User, vault_name: str | None = None, now: datetime | None = None
) -> QuerySet[Key]:
    """Live keys of live vaults that the actor may rotate, whose policy has a Rotate action
    and whose enabled current version may be due at `now`.

    Durations in months and years cannot be compared in SQL portably, so this only narrows
    what SQL can decide; `key_rotation_schedule` judges the rest.
    """
    now = now or clock.now()
    keys = Key.objects.filter(
        deleted_at=None, vault__deleted_at=None, current_version__enabled=True
    )
    if vault_name is not None:
        keys = keys.filter(vault__name=vault_name.lower())
    # Policies are stored as `clean_policy` wrote them: "Rotate" appears in the actions'
    # JSON text only as a Rotate action's type.
    keys = keys.alias(actions_text=Cast("rotation_policy__lifetime_actions", TextField()))
    keys = keys.filter(actions_text__contains=f'"{rotation.ROTATE}"')
    # Azure's rules put rotation at least 7 days after creation when it counts from
    # creation; otherwise it counts back from an expiry.
    keys = keys.filter(
        Q(current_version__expires__isnull=False)
        | Q(current_version__created_at__lte=now - rotation.MIN_ROTATION_MARGIN)
    )
    return visible(actor, keys, Action.KEY_ROTATE)


def key_rotation_schedule(
    *,
    actor: User,
    vault_name: str | None = None,
    now: datetime | None = None,
    chunk_size: int = 500,
) -> Iterator[ScheduledRotation]:
    """Each of `key_rotation_candidates`, by id, with when its rotation falls due.

    Read in chunks by id (each chunk its own short query), so a deployment's keys are never
    all in memory and the caller may rotate keys between chunks.
    """
    now = now or clock.now()
    candidates = (
        key_rotation_candidates(actor=actor, vault_name=vault_name, now=now)
        .select_related("vault", "current_version", "rotation_policy")
        .defer(
            "current_version__public_jwk",
            "current_version__wrapped_data_key",
            "current_version__sealed_material",
        )
        .order_by("pk")
    )
    after = 0
    while chunk := list(candidates.filter(pk__gt=after)[:chunk_size]):
        for key in chunk:
            version, stored = key.current_version, key.rotation_policy
            assert version is not None
            due_at = rotation.rotation_due_at(
                rotation.stored_policy(stored.lifetime_actions, stored.expiry_time),
                created_at=version.created_at,
                expires=version.expires,
            )
            yield ScheduledRotation(key, due_at, due_at is not None and due_at <= now)
        after = chunk[-1].pk
