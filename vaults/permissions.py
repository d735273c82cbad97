"""The one place that decides who may do what.

Every service calls `authorize(actor, action, obj)` before it acts, and every selector
narrows its lists with `visible(actor, queryset, action)`. Both walk the object's
`permission_chain()` (key, vault, resource group), so this module never imports `keys`.

Grants are django-guardian object permissions on direct foreign-key permission models:

* a role assignment is the permission `<role name>_<model>` (such as
  `key_vault_crypto_user_vault`) on its scope (resource group, vault or key), held by a user
  (people and applications) or a group;
* an access-policy entry is a set of `policy_keys_<permission>_vault` permissions on a vault.

A vault honours one model: under RBAC, data actions need a role whose data actions cover
them, at the key or any scope above it; under access policies, they need the matching key
permission on the vault. Management actions (the vault itself, access policies, role
assignments) are always decided by roles, as in Azure. Superusers and system principals
may do anything. This is the only module that calls django-guardian.
"""

import functools
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Exists, Model, OuterRef, Q, QuerySet
from guardian.shortcuts import assign_perm, get_objects_for_user, remove_perm
from guardian.utils import get_group_obj_perms_model, get_user_obj_perms_model

from accounts import roles
from accounts.models import Application, User
from accounts.roles import RoleDefinition
from kvconsole.errors import Forbidden, Unauthorized

from . import readcache
from .models import KEY_PERMISSIONS, ResourceGroup, RoleAssignment, Vault, policy_codename


class Plane(Enum):
    MANAGEMENT = "management"
    DATA = "data"
    DIRECTORY = "directory"


class Action(Enum):
    """What a service is about to do: Azure's action name, its plane, and for data actions
    the access-policy key permission that allows it."""

    RESOURCE_GROUP_READ = ("Microsoft.Resources/subscriptions/resourceGroups/read",)
    RESOURCE_GROUP_WRITE = ("Microsoft.Resources/subscriptions/resourceGroups/write",)
    RESOURCE_GROUP_DELETE = ("Microsoft.Resources/subscriptions/resourceGroups/delete",)
    VAULT_READ = ("Microsoft.KeyVault/vaults/read",)
    VAULT_WRITE = ("Microsoft.KeyVault/vaults/write",)
    VAULT_DELETE = ("Microsoft.KeyVault/vaults/delete",)
    DELETED_VAULT_READ = ("Microsoft.KeyVault/locations/deletedVaults/read",)
    VAULT_RECOVER = ("Microsoft.KeyVault/vaults/recover/action",)
    VAULT_PURGE = ("Microsoft.KeyVault/locations/deletedVaults/purge/action",)
    ACCESS_POLICY_WRITE = ("Microsoft.KeyVault/vaults/accessPolicies/write",)
    ROLE_ASSIGNMENT_READ = ("Microsoft.Authorization/roleAssignments/read",)
    ROLE_ASSIGNMENT_WRITE = ("Microsoft.Authorization/roleAssignments/write",)
    ROLE_ASSIGNMENT_DELETE = ("Microsoft.Authorization/roleAssignments/delete",)
    KEY_GET = ("Microsoft.KeyVault/vaults/keys/read", "get")
    KEY_LIST = ("Microsoft.KeyVault/vaults/keys/read", "list")
    KEY_CREATE = ("Microsoft.KeyVault/vaults/keys/create/action", "create")
    KEY_IMPORT = ("Microsoft.KeyVault/vaults/keys/import/action", "import")
    KEY_UPDATE = ("Microsoft.KeyVault/vaults/keys/update/action", "update")
    KEY_ROTATE = ("Microsoft.KeyVault/vaults/keys/rotate/action", "rotate")
    KEY_DELETE = ("Microsoft.KeyVault/vaults/keys/delete", "delete")
    KEY_RECOVER = ("Microsoft.KeyVault/vaults/keys/recover/action", "recover")
    KEY_PURGE = ("Microsoft.KeyVault/vaults/keys/purge/action", "purge")
    KEY_BACKUP = ("Microsoft.KeyVault/vaults/keys/backup/action", "backup")
    KEY_RESTORE = ("Microsoft.KeyVault/vaults/keys/restore/action", "restore")
    KEY_ENCRYPT = ("Microsoft.KeyVault/vaults/keys/encrypt/action", "encrypt")
    KEY_DECRYPT = ("Microsoft.KeyVault/vaults/keys/decrypt/action", "decrypt")
    KEY_SIGN = ("Microsoft.KeyVault/vaults/keys/sign/action", "sign")
    KEY_VERIFY = ("Microsoft.KeyVault/vaults/keys/verify/action", "verify")
    KEY_WRAP = ("Microsoft.KeyVault/vaults/keys/wrap/action", "wrapKey")
    KEY_UNWRAP = ("Microsoft.KeyVault/vaults/keys/unwrap/action", "unwrapKey")
    KEY_RELEASE = ("Microsoft.KeyVault/vaults/keys/release/action", "release")
    ROTATION_POLICY_READ = (
        "Microsoft.KeyVault/vaults/keyrotationpolicies/read",
        "getrotationpolicy",
    )
    ROTATION_POLICY_WRITE = (
        "Microsoft.KeyVault/vaults/keyrotationpolicies/write",
        "setrotationpolicy",
    )
    APPLICATION_READ = ("microsoft.directory/applications/standard/read", None, Plane.DIRECTORY)
    APPLICATION_CREATE = ("microsoft.directory/applications/create", None, Plane.DIRECTORY)
    APPLICATION_UPDATE = (
        "microsoft.directory/applications/allProperties/update",
        None,
        Plane.DIRECTORY,
    )
    APPLICATION_DELETE = ("microsoft.directory/applications/delete", None, Plane.DIRECTORY)
    # Deployment-wide; Azure has no equivalent because Microsoft holds its master keys.
    MASTER_KEY_ROTATE = ("kvconsole/masterKeys/rotate/action",)
    TOKEN_KEY_ROTATE = ("kvconsole/tokenSigningKeys/rotate/action",)
    KEY_FILES_CREATE = ("kvconsole/keyFiles/create/action",)
    # Deployment-wide: removing a person's authenticator, for one who lost it.
    TWO_FACTOR_RESET = ("kvconsole/users/authenticators/reset/action",)
    # Host names are the deployment's, not a vault's: an alias can take any name clients
    # reach the server by.
    HOST_ALIASES_WRITE = ("kvconsole/hostAliases/write/action",)
    ACTIVITY_READ = ("kvconsole/activity/read",)
    # Alert rules are Azure's Event Grid subscriptions on a vault or resource group: Owner
    # holds these actions at a scope (and, as in Azure, Key Vault Crypto Service Encryption
    # User; Key Vault Administrator and Contributor do not).
    ALERT_RULE_READ = ("Microsoft.EventGrid/eventSubscriptions/read",)
    ALERT_RULE_WRITE = ("Microsoft.EventGrid/eventSubscriptions/write",)
    ALERT_RULE_DELETE = ("Microsoft.EventGrid/eventSubscriptions/delete",)
    # Deployment-wide: reading a webhook's signing secret again, and running the worker.
    ALERT_RULE_SECRET_READ = ("kvconsole/alertRules/signingSecret/action",)
    NOTIFICATION_DELIVER = ("kvconsole/notifications/deliver/action",)
    KEYS_CHECK_EXPIRY = ("kvconsole/keys/checkExpiry/action",)

    def __init__(self, azure_name: str, permission: str | None = None, plane: Plane | None = None):
        self.azure_name = azure_name
        # The access-policy key permission; only data actions have one.
        self.permission = permission
        self.plane = plane or (Plane.DATA if permission else Plane.MANAGEMENT)

    def __str__(self) -> str:
        return self.azure_name


DATA_ACTIONS = tuple(action for action in Action if action.plane is Plane.DATA)


class Securable(Protocol):
    """Anything access can be granted on: it names its ancestors, nearest first."""

    def permission_chain(self) -> list[Model]: ...


class Deployment:
    """The whole deployment: the scope of creating resource groups."""

    def permission_chain(self) -> list[Model]:
        return []

    def __str__(self) -> str:
        return "/"


DEPLOYMENT = Deployment()


@dataclass(frozen=True)
class MissingResourceGroup:
    """A resource group asked for by a name that no group has. Only deployment principals
    may learn that it is missing; anyone else is refused with the message a group of that
    name would have given, so refusals do not tell which groups exist.

    Vault names are another matter: in Azure they are public DNS names, and a refusal on an
    existing vault names its full resource id, resource group included, as Azure's does."""

    name: str

    def permission_chain(self) -> list[Model]:
        return []


Principal = User | Group


def is_deployment_principal(actor: User) -> bool:
    """Superusers and system principals act on the whole deployment."""
    return actor.is_active and (actor.is_superuser or actor.kind == User.Kind.SYSTEM)


# --- deciding ------------------------------------------------------------------------------


def authorize(actor: User, action: Action, obj: Securable | Application) -> None:
    """Raise Forbidden unless `actor` may perform `action` on `obj`; Unauthorized if the
    principal was disabled after it was authenticated (its token or session is stale)."""
    if may(actor, action, obj):
        return
    if actor.is_active and not is_deployment_principal(actor) and not _active(actor):
        raise Unauthorized(
            f"The principal '{actor.username}' has been disabled or deleted; its credentials "
            "are refused."
        )
    if action.plane is Plane.DIRECTORY:
        raise _directory_denied(actor, action)
    assert not isinstance(obj, Application)
    if isinstance(obj, MissingResourceGroup):
        raise _denied(actor, action, [ResourceGroup(name=obj.name)])
    raise _denied(actor, action, obj.permission_chain())


def may(actor: User, action: Action, obj: Securable | Application) -> bool:
    """Whether `actor` may perform `action` on `obj`: the decision `authorize` enforces,
    for callers that choose between paths (no refusal is built)."""
    if is_deployment_principal(actor):
        return True
    if not actor.is_active:
        return False
    if action.plane is Plane.DIRECTORY:
        return _directory_allows(actor, action, obj)
    assert not isinstance(obj, Application)
    chain = obj.permission_chain()
    return bool(chain) and _allows(action, chain, _grants(actor, chain))


def capabilities(actor: User, obj: Securable | Application, **actions: Action) -> dict[str, bool]:
    """For each name, whether `actor` may perform its action on `obj`: what a face offers
    (the services still decide when it is done). One grants query per object per request."""
    return {name: may(actor, action, obj) for name, action in actions.items()}


def _directory_allows(actor: User, action: Action, obj: object) -> bool:
    """Anyone may read the directory; people may register applications (as in Entra ID by
    default) and manage those they own."""
    if action is Action.APPLICATION_READ:
        return True
    if action is Action.APPLICATION_CREATE:
        return actor.kind == User.Kind.USER
    return isinstance(obj, Application) and obj.owner_id == actor.pk


def _allows(action: Action, chain: list[Model], grants: list[set[str]]) -> bool:
    vault = _vault_in(chain)
    if action.plane is Plane.DATA:
        assert vault is not None and action.permission is not None
        if vault.permission_model == Vault.PermissionModel.ACCESS_POLICY:
            return policy_codename(action.permission) in grants[chain.index(vault)]
    return any(
        role.grants(str(action), data=action.plane is Plane.DATA)
        for role in _held_roles(chain, grants)
    )


def _held_roles(chain: list[Model], grants: list[set[str]]) -> Iterator[RoleDefinition]:
    """The roles behind the codenames held on each object of the chain."""
    for item, held in zip(chain, grants, strict=True):
        by_codename = _roles_by_codename(type(item))
        for codename in held:
            role = by_codename.get(codename)
            if role is not None:
                yield role


@functools.cache
def _roles_by_codename(model: type[Model]) -> dict[str, RoleDefinition]:
    model_name = model._meta.model_name or ""
    return {role.codename(model_name): role for role in roles.BUILT_IN_ROLES}


def _vault_in(chain: list[Model]) -> Vault | None:
    return next((item for item in chain if isinstance(item, Vault)), None)


def _caller(actor: User) -> str:
    """The caller as Azure's refusals name it."""
    if actor.kind == User.Kind.APPLICATION:
        application = Application.objects.filter(user=actor).first()
        client_id = application.client_id if application else ""
        return f"appid={client_id};oid={actor.oid}"
    return f"name={actor.username};oid={actor.oid}"


def _denied(actor: User, action: Action, chain: list[Model]) -> Forbidden:
    """Azure's refusal, naming the vault (or group) but never the key, so that a refusal
    reads the same whether or not the key exists."""
    caller = _caller(actor)
    vault = _vault_in(chain)
    if (
        vault is not None
        and action.plane is Plane.DATA
        and vault.permission_model == Vault.PermissionModel.ACCESS_POLICY
    ):
        return Forbidden(
            f"The user, group or application '{caller}' does not have keys {action.permission} "
            f"permission on key vault '{vault.name};location={vault.location}'. An access "
            "policy can grant it (kv vault set-policy).",
            inner_code="AccessDenied",
        )
    group = next((item for item in chain if isinstance(item, ResourceGroup)), None)
    if vault is not None:
        resource = vault.resource_id
    elif group is not None:
        resource = group.resource_id
    else:
        # Only deployment principals act at the deployment; Azure names the subscription.
        resource = f"/subscriptions/{settings.KVCONSOLE_SUBSCRIPTION_ID}"
    lines = [
        "Caller is not authorized to perform action on resource.",
        f"Caller: {caller}",
        f"Action: '{action}'",
        f"Resource: '{resource.lower()}'",
        "Assignment: (not found)",
        "DenyAssignmentId: null",
        "DecisionReason: 'DeniedWithNoValidRBAC' ",
    ]
    if vault is not None:
        lines.append(f"Vault: {vault.name};location={vault.location}")
    return Forbidden("\r\n".join(lines) + "\r\n", inner_code="ForbiddenByRbac")


def _directory_denied(actor: User, action: Action) -> Forbidden:
    return Forbidden(
        f"The caller '{_caller(actor)}' may not perform '{action}': only the application's "
        "owner or an administrator may.",
        code="Authorization_RequestDenied",
    )


# --- reading grants --------------------------------------------------------------------------

# Within a request (or one CLI command), grants read once are reused: a key operation that
# authorizes the same chain twice costs one query. Role and policy changes made through this
# module clear it; other changes (group membership, cascading deletes) are seen from the next
# request on.
_cache: ContextVar[dict[tuple[object, ...], Any] | None] = ContextVar(
    "permission_grants_cache", default=None
)


@contextmanager
def request_cache() -> Iterator[None]:
    """Reuse grants read during this block; each face opens one per request or command."""
    token = _cache.set({})
    try:
        yield
    finally:
        _cache.reset(token)


def _forget() -> None:
    cache = _cache.get()
    if cache is not None:
        cache.clear()
    readcache.forget()


_INACTIVE = -1


def _grants(actor: User, chain: list[Model]) -> list[set[str]]:
    """The permission codenames `actor` holds, directly or through groups, on each object of
    `chain`, in one query; none at all if the principal has been disabled meanwhile."""
    return _grants_and_activity(actor, chain)[0]


def _grants_and_activity(actor: User, chain: list[Model]) -> tuple[list[set[str]], bool]:
    """The grants of `_grants`, and whether the principal is still enabled, in one query."""
    cache = _cache.get()
    cache_key = (actor.pk, *((type(item), item.pk) for item in chain))
    if cache is not None and cache_key in cache:
        return cache[cache_key], bool(cache[("active", actor.pk)])
    held, active = readcache.cached(("grants", *cache_key), lambda: _read_grants(actor, chain))
    if cache is not None:
        cache[cache_key] = held
        cache[("active", actor.pk)] = active
    return held, active


def _read_grants(actor: User, chain: list[Model]) -> tuple[list[set[str]], bool]:
    held: list[set[str]] = [set() for _ in chain]
    # Named parameters, as in keys/services/_shared.py's lookup: cheaper to bind on SQLite.
    params: dict[str, Any] = {"actor": actor.pk}
    for level, item in enumerate(chain):
        params[f"object{level}"] = item.pk
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(_grants_sql(tuple(type(item) for item in chain)), params)
        rows = cursor.fetchall()
    active = not any(level == _INACTIVE for level, _ in rows)
    if not active:
        # Disabled since the caller's token (or session) was checked: it holds nothing.
        rows = []
    for level, codename in rows:
        held[level].add(codename)
    return held, active


def _active(actor: User) -> bool:
    """Whether the principal is still enabled in the database, read once per request (the
    grants query reads it too): the principal in hand may be a verified token's, cached
    since before an administrator disabled it."""
    if not actor.is_active:
        return False
    cache = _cache.get()
    key = ("active", actor.pk)
    if cache is not None and key in cache:
        return bool(cache[key])
    active = readcache.cached(
        key, lambda: User.objects.filter(pk=actor.pk, is_active=True).exists()
    )
    if cache is not None:
        cache[key] = active
    return active


@functools.cache
def _grants_sql(models: tuple[type[Model], ...]) -> str:
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    permission = quote(Permission._meta.db_table)
    memberships = User.groups.through._meta
    parts = []
    for level, model in enumerate(models):
        user_rows, group_rows = _permission_models(model)
        user_table = quote(user_rows._meta.db_table)
        group_table = quote(group_rows._meta.db_table)
        parts.append(
            # Identifiers come from model metadata; every value is a query parameter.
            f"SELECT {level}, p.codename FROM {user_table} g "  # noqa: S608
            f"JOIN {permission} p ON p.id = g.permission_id "
            f"WHERE g.content_object_id = %(object{level})s AND g.user_id = %(actor)s"
        )
        parts.append(
            f"SELECT {level}, p.codename FROM {group_table} g "  # noqa: S608
            f"JOIN {permission} p ON p.id = g.permission_id "
            f"WHERE g.content_object_id = %(object{level})s AND g.group_id IN "
            f"(SELECT m.group_id FROM {quote(memberships.db_table)} m WHERE m.user_id = %(actor)s)"
        )
    # The principal's own row says whether it is still enabled, in the same query: the vault
    # endpoint trusts a token it verified once, and must still refuse a principal disabled
    # since (an application disabled in the directory), or deleted since (no row at all).
    parts.append(
        f"SELECT {_INACTIVE}, '' WHERE NOT EXISTS (SELECT 1 FROM {quote(User._meta.db_table)} u "  # noqa: S608
        "WHERE u.id = %(actor)s AND u.is_active)"
    )
    return " UNION ALL ".join(parts)


def _permission_models(model: type[Model]) -> tuple[Any, Any]:
    """The direct foreign-key permission models (for users, for groups) of a securable."""
    return (
        get_user_obj_perms_model(model),  # type: ignore[arg-type]
        get_group_obj_perms_model(model),  # type: ignore[arg-type]
    )


# --- filtering lists -------------------------------------------------------------------------


def visible[M: Model](
    actor: User, queryset: QuerySet[M], action: Action, *, within: Securable | None = None
) -> QuerySet[M]:
    """The part of `queryset` on which `actor` may perform `action`, filtered in SQL.

    The model names the path to each of its securable ancestors with
    `permission_lookups()`, nearest first; grants at any of them count, as in `authorize`.
    The filter is a handful of subqueries, so a page costs the same number of queries
    whatever the actor holds.

    With `within` (the keys of one vault, the versions of one key) the list is narrowed to
    that container, which is decided once, as `authorize` decides it (one query, cached per
    request): a grant there or above returns the container's objects unfiltered, and
    otherwise only grants on the objects themselves can count. A page then reads like an
    administrator's page.
    """
    lookups: list[tuple[str, type[Model]]] = queryset.model.permission_lookups()  # type: ignore[attr-defined]
    if within is not None:
        container = next(path for path, model in lookups if isinstance(within, model))
        queryset = queryset.filter(**{container: within})
    if is_deployment_principal(actor):
        return queryset
    if not actor.is_active:
        return queryset.none()
    if within is not None:
        chain = within.permission_chain()
        grants, active = _grants_and_activity(actor, chain)
        if not active:
            return queryset.none()
        if _allows(action, chain, grants):
            return queryset
        above = {type(item) for item in within.permission_chain()}
        lookups = [(path, model) for path, model in lookups if model not in above]
        vault = _vault_in(within.permission_chain())
        if (
            action.plane is Plane.DATA
            and vault is not None
            and vault.permission_model == Vault.PermissionModel.ACCESS_POLICY
        ):
            # Access policies exist only on the vault, which has just been decided.
            return queryset.none()
        return queryset.filter(_by_role(actor, action, lookups))
    if not _active(actor):
        return queryset.none()
    if action.plane is not Plane.DATA:
        return queryset.filter(_by_role(actor, action, lookups))
    assert action.permission is not None
    vault_path = next(path for path, model in lookups if model is Vault)
    model_field = "permission_model" if vault_path == "pk" else f"{vault_path}__permission_model"
    by_policy = Q(
        **{f"{vault_path}__in": _held_by(actor, Vault, [policy_codename(action.permission)])}
    )
    return queryset.filter(
        Q(**{model_field: Vault.PermissionModel.RBAC}) & _by_role(actor, action, lookups)
        | Q(**{model_field: Vault.PermissionModel.ACCESS_POLICY}) & by_policy
    )


def _by_role(actor: User, action: Action, lookups: list[tuple[str, type[Model]]]) -> Q:
    """Objects on which, or on an ancestor of which, the actor holds a role allowing `action`."""
    data = action.plane is Plane.DATA
    granting = [role for role in roles.BUILT_IN_ROLES if role.grants(str(action), data=data)]
    condition = Q(pk__in=[])
    for path, model in lookups:
        if granting:
            codenames = [role.codename(model._meta.model_name or "") for role in granting]
            condition |= Q(**{f"{path}__in": _held_by(actor, model, codenames)})
    return condition


def _held_by[M: Model](actor: User, model: type[M], codenames: list[str]) -> QuerySet[M]:
    """Objects of `model` on which `actor` (or one of its groups) holds any of `codenames`."""
    return get_objects_for_user(
        actor,
        codenames,
        klass=model,
        use_groups=True,
        any_perm=True,
        with_superuser=False,
        accept_global_perms=False,
    )


def readable_activity[M: Model](actor: User, entries: QuerySet[M]) -> QuerySet[M]:
    """Activity entries `actor` may read: those of vaults (and resource groups) whose
    metadata it may read, and its own calls that were not refused. The rest of the log is
    for administrators.

    Entries name vaults and groups as text, and a purged name can be taken again: an entry
    counts only if it was written after the readable vault (or group) of that name was
    created. A refused call's entry can name what the caller was refused (a key's real
    name, a version), so the caller does not get it back.
    """
    if is_deployment_principal(actor):
        return entries
    if not _active(actor):
        return entries.none()
    vaults = visible(actor, Vault.objects.all(), Action.VAULT_READ).filter(
        name=OuterRef("vault_name"), created_at__lte=OuterRef("time")
    )
    groups = visible(actor, ResourceGroup.objects.all(), Action.RESOURCE_GROUP_READ).filter(
        name=OuterRef("resource_group"), created_at__lte=OuterRef("time")
    )
    return entries.filter(
        Exists(vaults)
        | Q(vault_name="") & Exists(groups)
        | Q(actor_oid=actor.oid) & ~Q(result=Forbidden.result)
    )


# --- role assignments ------------------------------------------------------------------------


def authorize_assignment(
    actor: User, action: Action, role: RoleDefinition | None, scope: Model
) -> None:
    """Raise Forbidden unless `actor` may create (or delete) an assignment of `role` at
    `scope`: a role granting the action at the scope or above, whose condition (Key Vault
    Data Access Administrator's) allows this role. With `role` None the right must hold
    for every role, unconditioned, as switching a vault's permission model requires."""
    if is_deployment_principal(actor):
        return
    chain = scope.permission_chain()  # type: ignore[attr-defined]
    held = [
        granting
        for granting in (_held_roles(chain, _grants(actor, chain)) if actor.is_active else [])
        if granting.grants(str(action), data=False)
    ]
    if any(
        granting.assignable_role_ids is None if role is None else granting.may_assign(role)
        for granting in held
    ):
        return
    if held:
        what = f"'{role.name}'" if role else "every role, as this change requires"
        raise Forbidden(
            f"The role '{held[0].name}' may assign only the Key Vault data roles; it cannot "
            f"assign or remove {what}.",
            inner_code="ForbiddenByRbac",
        )
    raise _denied(actor, action, chain)


def _scope_codename(role: RoleDefinition, scope: Model) -> str:
    return role.codename(scope._meta.model_name or "")


def grant_role(principal: Principal, role: RoleDefinition, scope: Model) -> None:
    assign_perm(_scope_codename(role, scope), principal, scope)
    _forget()


def revoke_role(principal: Principal, role: RoleDefinition, scope: Model) -> None:
    remove_perm(_scope_codename(role, scope), principal, scope)
    _forget()


# --- access policies -------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyEntry:
    principal: Principal
    permissions: tuple[str, ...]


_POLICY_CODENAMES = {policy_codename(permission): permission for permission in KEY_PERMISSIONS}


def policy_entries(vault: Vault) -> list[PolicyEntry]:
    """The vault's access policy: each principal with its key permissions, in two queries."""
    found: dict[Principal, set[str]] = {}
    for model, holder in zip(_permission_models(Vault), ("user", "group"), strict=True):
        rows = model.objects.filter(
            content_object=vault, permission__codename__in=_POLICY_CODENAMES
        ).select_related(holder, "permission")
        for row in rows:
            found.setdefault(getattr(row, holder), set()).add(
                _POLICY_CODENAMES[row.permission.codename]
            )
    order = {permission: index for index, permission in enumerate(KEY_PERMISSIONS)}
    return [
        PolicyEntry(principal, tuple(sorted(held, key=order.__getitem__)))
        for principal, held in sorted(found.items(), key=lambda item: str(item[0]).lower())
    ]


def set_policy(vault: Vault, principal: Principal, permissions: Iterable[str]) -> None:
    """Make `principal`'s key permissions on `vault` exactly `permissions`."""
    wanted = {policy_codename(permission) for permission in permissions}
    holder = "user" if isinstance(principal, User) else "group"
    model = _permission_models(Vault)[0 if holder == "user" else 1]
    current = model.objects.filter(
        content_object=vault, permission__codename__in=_POLICY_CODENAMES, **{holder: principal}
    )
    current.exclude(permission__codename__in=wanted).delete()
    missing = wanted - set(current.values_list("permission__codename", flat=True))
    model.objects.bulk_create(
        model(content_object=vault, permission=permission, **{holder: principal})
        for permission in Permission.objects.filter(
            content_type__app_label=Vault._meta.app_label,
            content_type__model=Vault._meta.model_name,
            codename__in=missing,
        )
    )
    _forget()


# --- explaining ------------------------------------------------------------------------------

ASSIGNMENT_RIGHTS = (
    Action.ROLE_ASSIGNMENT_READ,
    Action.ROLE_ASSIGNMENT_WRITE,
    Action.ROLE_ASSIGNMENT_DELETE,
)
MANAGEMENT_RIGHTS = (
    Action.VAULT_READ,
    Action.VAULT_WRITE,
    Action.VAULT_DELETE,
    Action.ACCESS_POLICY_WRITE,
    *ASSIGNMENT_RIGHTS,
)


@dataclass(frozen=True)
class Grant:
    """Where a right comes from: a role assignment, an access-policy entry, or being an
    administrator of the deployment; `via` names the group it comes through, if any."""

    source: str
    via: str = ""
    role: str = ""
    scope: str = ""
    assignment: str = ""


@dataclass(frozen=True)
class Right:
    action: Action
    grants: tuple[Grant, ...]
    # Grants of the model the vault does not use: kept, shown, and without effect.
    ignored: tuple[Grant, ...] = ()

    @property
    def allowed(self) -> bool:
        return bool(self.grants)


def explain(principal: User, obj: Securable) -> list[Right]:
    """What `principal` may do on `obj` (a vault or a key), and what grants each right.

    It reads the assignment records and policy entries rather than the grant rows that
    `authorize` reads, so that it can name them; the two are written together.
    """
    chain = obj.permission_chain()
    vault = _vault_in(chain)
    assert vault is not None
    # On a key, the management rights that apply are those over its role assignments; the
    # vault's own are shown when asking about the vault.
    management = MANAGEMENT_RIGHTS if chain[0] is vault else ASSIGNMENT_RIGHTS
    rights = [*DATA_ACTIONS, *management]
    if not principal.is_active:
        return [Right(action, ()) for action in rights]
    if is_deployment_principal(principal):
        administrator = (Grant("administrator"),)
        return [Right(action, administrator) for action in rights]
    groups = list(principal.groups.all())
    at_chain = Q(pk__in=[])
    for item in chain:
        if isinstance(item, ResourceGroup):
            at_chain |= Q(resource_group=item, vault=None)
        elif isinstance(item, Vault):
            at_chain |= Q(vault=item, key=None)
        else:
            at_chain |= Q(key=item.pk)
    assignments = [
        (roles.ROLES_BY_ID[str(assignment.role_id)], assignment)
        for assignment in RoleAssignment.objects.filter(at_chain)
        .filter(Q(user=principal) | Q(group__in=groups))
        .select_related("group")
    ]
    entries = [
        entry
        for entry in policy_entries(vault)
        if entry.principal == principal or entry.principal in groups
    ]
    by_policy = vault.permission_model == Vault.PermissionModel.ACCESS_POLICY
    explained = []
    for action in rights:
        data = action.plane is Plane.DATA
        from_roles = tuple(
            Grant(
                "role assignment",
                via=_group_name(assignment.group),
                role=role.name,
                scope=assignment.scope,
                assignment=str(assignment.uid),
            )
            for role, assignment in assignments
            if role.grants(str(action), data=data)
        )
        from_policies = tuple(
            Grant(
                "access policy",
                via=entry.principal.name if isinstance(entry.principal, Group) else "",
            )
            for entry in entries
            if data and action.permission in entry.permissions
        )
        if data and by_policy:
            explained.append(Right(action, from_policies, ignored=from_roles))
        elif data:
            explained.append(Right(action, from_roles, ignored=from_policies))
        else:
            explained.append(Right(action, from_roles))
    return explained


def _group_name(principal: Principal | None) -> str:
    return principal.name if isinstance(principal, Group) else ""
