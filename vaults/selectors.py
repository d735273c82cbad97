"""Reads of resource groups, vaults, who may use them, the directory's principals, the
activity log, and alert rules with their notifications, filtered by what the actor may see."""

import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from django.apps import apps
from django.conf import settings
from django.contrib.auth.models import Group
from django.db.models import Count, Exists, F, Model, OuterRef, Q, QuerySet
from django.db.models.functions import Lower

from accounts.credentials import ApplicationCredentials
from accounts.models import (
    Application,
    CertificateCredential,
    ClientSecret,
    User,
    WorkloadIdentity,
)

from .activity import ChainReport, verify_chain
from .models import (
    ActivityEntry,
    ActivityQuerySet,
    AlertRule,
    Notification,
    ResourceGroup,
    RoleAssignment,
    Vault,
    VaultHostAlias,
)
from .permissions import (
    DEPLOYMENT,
    Action,
    PolicyEntry,
    authorize,
    is_deployment_principal,
    may,
    policy_entries,
    readable_activity,
    visible,
)
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
    """Vaults the actor may read; with `key_users` also those whose keys it may list, all
    of them or a single one (a Crypto User holds no management role, yet works with the
    vault's keys)."""
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
    # The key app builds on this one; its model is looked up by name, not imported.
    live_keys = apps.get_model("keys", "Key")._default_manager.filter(deleted_at=None)
    with_a_key = visible(actor, live_keys, Action.KEY_LIST).values("vault")
    return vaults.filter(
        Q(pk__in=readable.values("pk")) | Q(pk__in=with_keys.values("pk")) | Q(pk__in=with_a_key)
    )


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
    host aliases; None for any other host (the console's) or for none at all (an HTTP/1.0
    request, or Django's test client, which names itself only in SERVER_NAME)."""
    if not host:
        return None
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


# --- access: role assignments, access policies, principals ----------------------------------

PRINCIPAL_SUGGESTIONS = 20


@dataclass(frozen=True)
class PrincipalChoice:
    """A principal as a picker offers it: `value` and `kind` are what the access services
    resolve (a user's name, a group's name, an application's client id)."""

    kind: str
    value: str
    name: str


def principal_search(
    *, actor: User, q: str, limit: int = PRINCIPAL_SUGGESTIONS
) -> list[PrincipalChoice]:
    """Users, groups and applications whose name or display name contains `q`: at most
    `limit`, by name, in two queries whatever the directory holds."""
    q = q.strip()
    if not q or not may(actor, Action.APPLICATION_READ, DEPLOYMENT):
        return []
    users = (
        User.objects.filter(kind__in=[User.Kind.USER, User.Kind.APPLICATION], is_active=True)
        .filter(
            Q(username__icontains=q)
            | Q(display_name__icontains=q)
            | Q(application__display_name__icontains=q)
        )
        .select_related("application")
        .order_by(Lower("username"))[:limit]
    )
    groups = Group.objects.filter(name__icontains=q).order_by(Lower("name"))[:limit]
    found = [_principal_choice(user) for user in users]
    found += [PrincipalChoice("group", group.name, group.name) for group in groups]
    return sorted(found, key=lambda choice: choice.name.lower())[:limit]


def _principal_choice(user: User) -> PrincipalChoice:
    if user.kind == User.Kind.APPLICATION:
        application: Application | None = getattr(user, "application", None)
        if application is not None:
            return PrincipalChoice(
                "application", str(application.client_id), application.display_name
            )
        return PrincipalChoice("application", str(user.oid), str(user))
    return PrincipalChoice("user", user.username, str(user))


def _assigned_at(scope: Model) -> Q:
    """Assignments made at exactly `scope` (each row names its ancestors too)."""
    if isinstance(scope, ResourceGroup):
        return Q(resource_group=scope, vault=None)
    if isinstance(scope, Vault):
        return Q(vault=scope, key=None)
    return Q(key=scope.pk)


def _readable_assignments(
    actor: User, assignments: QuerySet[RoleAssignment]
) -> QuerySet[RoleAssignment]:
    return visible(
        actor,
        assignments.select_related("user", "group", "resource_group", "vault", "key__vault"),
        Action.ROLE_ASSIGNMENT_READ,
    )


def role_assignment_list(
    *, actor: User, scope: Model, inherited: bool = True
) -> QuerySet[RoleAssignment]:
    """Role assignments the actor may read that apply at `scope` (a resource group, vault or
    key): those made there and, with `inherited`, those above it; broadest scope first."""
    chain: list[Model] = scope.permission_chain()  # type: ignore[attr-defined]
    applying = Q(pk__in=[])
    for item in chain if inherited else chain[:1]:
        applying |= _assigned_at(item)
    return _readable_assignments(actor, RoleAssignment.objects.filter(applying)).order_by(
        F("vault").asc(nulls_first=True), F("key").asc(nulls_first=True), "created_at", "id"
    )


def key_role_assignment_list(*, actor: User, vault: Vault) -> QuerySet[RoleAssignment]:
    """Role assignments the actor may read made at the live keys of `vault`, by key name."""
    assignments = RoleAssignment.objects.filter(vault=vault, key__isnull=False).filter(
        key__deleted_at=None
    )
    return _readable_assignments(actor, assignments).order_by(
        Lower("key__name"), "created_at", "id"
    )


def role_assignment_get(*, actor: User, uid: uuid.UUID) -> RoleAssignment | None:
    """One role assignment, if the actor may read it."""
    return _readable_assignments(actor, RoleAssignment.objects.filter(uid=uid)).first()


def access_policy_list(*, actor: User, vault: Vault) -> list[PolicyEntry]:
    """The vault's access-policy entries, for whoever may read the vault (two queries)."""
    if not may(actor, Action.VAULT_READ, vault):
        return []
    return policy_entries(vault)


def key_for_access(*, actor: User, vault: Vault, name: str) -> Model | None:
    """A live key of `vault` whose access the actor may look at: it may see the key, or read
    the role assignments on it."""
    # The key app builds on this one; its model is looked up by name, not imported.
    keys = (
        apps.get_model("keys", "Key")
        ._default_manager.select_related("vault__resource_group")
        .filter(vault=vault, name__iexact=name, deleted_at=None)
    )
    listed = visible(actor, keys, Action.KEY_LIST, within=vault)
    managed = visible(actor, keys, Action.ROLE_ASSIGNMENT_READ, within=vault)
    key: Model | None = keys.filter(
        Q(pk__in=listed.values("pk")) | Q(pk__in=managed.values("pk"))
    ).first()
    return key


# --- the directory: applications and their credentials ---------------------------------------

_SECRET_FIELDS = ("id", "key_id", "description", "hint", "created_at", "expires_at")
_CERTIFICATE_FIELDS = (
    "id",
    "key_id",
    "description",
    "thumbprint_sha1",
    "thumbprint_sha256",
    "subject",
    "not_before",
    "not_after",
    "created_at",
)


def application_list(*, actor: User) -> QuerySet[Application]:
    """Every registered application, for whoever may read the directory (every active
    principal, as in Entra ID)."""
    if not may(actor, Action.APPLICATION_READ, DEPLOYMENT):
        return Application.objects.none()
    return Application.objects.select_related("user", "owner")


def application_credentials(*, application: Application) -> ApplicationCredentials:
    """An application's client secrets and certificates: metadata only, never a secret."""
    client_secrets = ClientSecret.objects.filter(application=application).only(*_SECRET_FIELDS)
    certificates = CertificateCredential.objects.filter(application=application)
    return ApplicationCredentials(
        application=application,
        secrets=list(client_secrets),
        certificates=list(certificates.only(*_CERTIFICATE_FIELDS)),
    )


def workload_identity_list(*, application: Application) -> QuerySet[WorkloadIdentity]:
    """The workloads bound to an application, without their secrets' hashes."""
    return WorkloadIdentity.objects.filter(application=application).defer("secret_hash")


# --- alerts: rules and their notifications ----------------------------------------------------


def alert_rule_list(*, actor: User, action: Action = Action.ALERT_RULE_READ) -> QuerySet[AlertRule]:
    """The alert rules on which `actor` may perform `action` (by default, read them), by
    name, in one query whatever their number.

    A rule's scope is decided as the alert services decide it: its key, else its vault
    (soft-deleted too), else its resource group, whichever of them still exists; rules on
    the whole deployment, or on nothing that still exists, are for deployment principals.
    """
    rules = AlertRule.objects.order_by("name")
    if is_deployment_principal(actor):
        return rules
    groups = ResourceGroup.objects.filter(name__iexact=OuterRef("resource_group"))
    return rules.filter(
        Q(vault_name="") & ~Q(resource_group="") & Exists(visible(actor, groups, action))
        | ~Q(vault_name="") & Q(resource_group="") & _rule_vault_allows(actor, action, False)
        | ~Q(vault_name="") & ~Q(resource_group="") & _rule_vault_allows(actor, action, True)
    )


def _rule_vault_allows(actor: User, action: Action, in_group: bool) -> Exists | Q:
    """For rules naming a vault (in their group, when `in_group`): the actor may perform
    `action` on the rule's key if it exists, else on its vault if that exists, else on
    its group."""

    def vault_named(prefix: str) -> Q:
        named = Q(**{f"{prefix}name": OuterRef("vault_name")})
        if in_group:
            # A vault of the same name made later in another group is not the rule's.
            named &= Q(**{f"{prefix}resource_group__name__iexact": OuterRef("resource_group")})
        return named

    vaults = Vault.objects.filter(vault_named(""))
    # The key app builds on this one; its model is looked up by name, not imported.
    keys = (
        apps.get_model("keys", "Key")
        ._default_manager.filter(vault_named("vault__"))
        .filter(name__iexact=OuterRef("key_name"))
    )
    allowed = Exists(visible(actor, keys, action)) | ~Exists(keys) & Exists(
        visible(actor, vaults, action)
    )
    if not in_group:
        return allowed
    groups = ResourceGroup.objects.filter(name__iexact=OuterRef("resource_group"))
    return allowed | ~Exists(vaults) & Exists(visible(actor, groups, action))


def alert_rule_get(*, actor: User, uid: uuid.UUID) -> AlertRule | None:
    """One rule, if the actor may read it."""
    return alert_rule_list(actor=actor).filter(uid=uid).first()


def _readable_notifications(actor: User) -> QuerySet[Notification]:
    """Notifications of the rules the actor may read; those whose rule was deleted are for
    deployment principals alone."""
    if is_deployment_principal(actor):
        return Notification.objects.all()
    return Notification.objects.filter(rule__in=alert_rule_list(actor=actor).values("pk"))


def notification_counts(*, actor: User) -> dict[str, int]:
    """How many notifications the actor may see are in each state, in one query."""
    counted = (
        _readable_notifications(actor).order_by().values_list("status").annotate(count=Count("pk"))
    )
    found = dict(counted)
    return {status: found.get(status, 0) for status in Notification.Status.values}


def dead_letter_list(*, actor: User, limit: int = 10) -> QuerySet[Notification]:
    """The latest dead-lettered notifications the actor may see, with their events and rules."""
    dead = _readable_notifications(actor).filter(status=Notification.Status.DEAD)
    return dead.select_related("event", "rule").order_by("-id")[:limit]


@dataclass(frozen=True)
class AlertScopes:
    """Where the actor may create alert rules: the whole deployment, and the resource groups
    and live vaults it may write Event Grid subscriptions on, by name."""

    deployment: bool
    groups: list[str]
    vaults: list[str]

    def __bool__(self) -> bool:
        return self.deployment or bool(self.groups) or bool(self.vaults)


def alert_rule_scopes(*, actor: User) -> AlertScopes:
    action = Action.ALERT_RULE_WRITE
    groups = visible(actor, ResourceGroup.objects.order_by("name"), action)
    vaults = visible(actor, Vault.objects.filter(deleted_at=None).order_by("name"), action)
    return AlertScopes(
        deployment=may(actor, action, DEPLOYMENT),
        groups=list(groups.values_list("name", flat=True)),
        vaults=list(vaults.values_list("name", flat=True)),
    )
