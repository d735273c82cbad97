"""Reads of resource groups, vaults and the activity log, filtered by what the actor may see."""

import threading
import time
from datetime import datetime
from typing import cast

from django.conf import settings
from django.db.models import Q, QuerySet

from accounts.models import User

from .activity import ChainReport, verify_chain
from .models import ActivityEntry, ActivityQuerySet, ResourceGroup, Vault, VaultHostAlias
from .permissions import DEPLOYMENT, Action, authorize, readable_activity, visible
from .validation import console_host


def resource_group_list(
    *, actor: User, action: Action = Action.RESOURCE_GROUP_READ
) -> QuerySet[ResourceGroup]:
    """Resource groups on which the actor may perform `action` (by default, see them)."""
    return visible(actor, ResourceGroup.objects.all(), action)


def vault_list(
    *,
    actor: User,
    resource_group: str | None = None,
    deleted: bool = False,
    key_users: bool = False,
) -> QuerySet[Vault]:
    """Vaults the actor may read; with `key_users` also those whose keys it may list (a
    Crypto User holds no management role, yet works with the vault's keys)."""
    vaults = (
        Vault.objects.select_related("resource_group")
        .prefetch_related("host_aliases")
        .filter(deleted_at__isnull=not deleted)
    )
    if resource_group:
        vaults = vaults.filter(resource_group__name__iexact=resource_group)
    readable = visible(actor, vaults, Action.DELETED_VAULT_READ if deleted else Action.VAULT_READ)
    if not key_users:
        return readable
    with_keys = visible(actor, Vault.objects.all(), Action.KEY_LIST)
    return vaults.filter(Q(pk__in=readable.values("pk")) | Q(pk__in=with_keys.values("pk")))


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
        "face": face,
        "actor_name": actor_name,
        "time__gte": since,
        "time__lt": until,
    }
    entries = entries.filter(**{name: value for name, value in filters.items() if value})
    return cast(ActivityQuerySet, entries).with_result(result) if result else entries


def activity_verify(*, actor: User, anchor: tuple[int, str] | None = None) -> ChainReport:
    """Check the whole log's hash chain (and an anchor recorded earlier, if given)."""
    authorize(actor, Action.ACTIVITY_READ, DEPLOYMENT)
    return verify_chain(anchor=anchor)


class _HostAliases:
    """Host aliases, read again at most every few seconds: every vault endpoint request
    resolves its host, and aliases change rarely (a change reaches other processes within
    the refresh interval; this process sees its own at once)."""

    REFRESH_SECONDS = 10.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._read_at = -self.REFRESH_SECONDS
        self._vaults: dict[str, str] = {}

    def vault_for(self, host: str) -> str | None:
        now = time.monotonic()
        with self._lock:
            if now - self._read_at >= self.REFRESH_SECONDS:
                self._vaults = dict(VaultHostAlias.objects.values_list("host", "vault__name"))
                self._read_at = now
            return self._vaults.get(host)

    def forget(self) -> None:
        with self._lock:
            self._read_at = -self.REFRESH_SECONDS


host_aliases = _HostAliases()


def vault_name_for_host(host: str) -> str | None:
    """The vault a Host header names, as `{vault}.{suffix}[:port]` or as one of a vault's
    host aliases; None for any other host (the console's)."""
    host = host.lower()
    domain, _, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
    if not domain or not port.isdigit():
        domain, port = host, ""
    suffix = "." + settings.KVCONSOLE_VAULT_HOST_SUFFIX.lower()
    if domain.endswith(suffix):
        name = domain[: -len(suffix)]
        return name if name and "." not in name else None
    normalized = host if port != "443" else domain
    # The console's host stays the console's, even against an alias made before a change of
    # KVCONSOLE_CONSOLE_HOST.
    if normalized == console_host():
        return None
    return host_aliases.vault_for(normalized)
