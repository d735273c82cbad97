"""Who may use a vault: role assignments, access policies, the vault's permission model,
and what a principal may effectively do."""

import re
import uuid
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.auth.models import Group
from django.db import IntegrityError
from django.db.models import Model, QuerySet

from accounts import roles
from accounts.models import Application, User
from accounts.roles import RoleDefinition
from kvconsole.errors import BadParameter, Conflict, NotFound

from .. import activity, events, permissions
from ..activity import operation
from ..models import (
    KEY_PERMISSIONS,
    MAX_ACCESS_POLICIES,
    EventType,
    Operation,
    ResourceGroup,
    RoleAssignment,
    Vault,
)
from ..permissions import DEPLOYMENT, Action, MissingResourceGroup, Principal, authorize
from .resources import _lock_vault, vault_lookup

_SCOPE = re.compile(
    r"(?:/subscriptions/(?P<subscription>[^/]+))?"
    r"/resourceGroups/(?P<group>[^/]+)"
    r"(?:/providers/Microsoft\.KeyVault/vaults/(?P<vault>[^/]+)(?:/keys/(?P<key>[^/]+))?)?/?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Scope:
    """A parsed scope: a resource group, a vault in it, or a key in that vault."""

    group: str
    vault: str | None = None
    key: str | None = None


@dataclass(frozen=True)
class EffectiveAccess:
    principal: Principal
    target: Vault | Model
    model: str
    rights: list[permissions.Right]


def parse_scope(text: str) -> Scope:
    """A scope written as Azure writes it, with or without the subscription."""
    match = _SCOPE.fullmatch(text.strip())
    subscription = settings.KVCONSOLE_SUBSCRIPTION_ID
    named = match["subscription"] if match is not None else None
    if named is not None and named.lower() != subscription.lower():
        raise BadParameter(
            f"The scope '{text}' is in subscription '{named}'; this deployment "
            f"is subscription '{subscription}'. Leave the subscription out, or use this one.",
            code="InvalidScope",
        )
    if match is None:
        raise BadParameter(
            f"The scope '{text}' is not valid. Use /resourceGroups/{{group}}, "
            "/resourceGroups/{group}/providers/Microsoft.KeyVault/vaults/{vault} or "
            ".../vaults/{vault}/keys/{key}.",
            code="InvalidScope",
        )
    return Scope(match["group"], match["vault"], match["key"])


def scope_path(obj: Model) -> str:
    """The canonical scope of a resource group, vault or key, without the subscription."""
    chain: list[Any] = obj.permission_chain()  # type: ignore[attr-defined]
    path = ""
    for item in reversed(chain):
        if isinstance(item, ResourceGroup):
            path = f"/resourceGroups/{item.name}"
        elif isinstance(item, Vault):
            path += f"/providers/Microsoft.KeyVault/vaults/{item.name}"
        else:
            path += f"/keys/{item.name}"
    return path


def _keys() -> QuerySet[Any]:
    # The key app builds on this one; resolving a key scope must not import it.
    return apps.get_model("keys", "Key")._default_manager.select_related("vault__resource_group")


def _scope_object(actor: User, action: Action, scope: Scope) -> Model:
    """The resource group, vault or key a scope names. Whoever may not act at the nearest
    existing ancestor learns nothing about what exists below it. The caller authorizes the
    object itself: a right held at a vault or key is enough there, without one on the group."""
    activity.describe(resource_group=scope.group)
    group = ResourceGroup.objects.filter(name__iexact=scope.group).first()
    if group is None:
        authorize(actor, action, MissingResourceGroup(scope.group))
        raise NotFound(
            f"Resource group '{scope.group}' could not be found.", code="ResourceGroupNotFound"
        )
    activity.describe(resource_group=group.name)
    if scope.vault is None:
        activity.describe(group)
        return group
    vault = (
        Vault.objects.select_related("resource_group")
        .filter(name=scope.vault.lower(), resource_group=group, deleted_at=None)
        .first()
    )
    if vault is None:
        authorize(actor, action, group)
        raise NotFound(f"Vault '{scope.vault}' was not found.", code="VaultNotFound")
    activity.describe(vault)
    if scope.key is None:
        return vault
    key = _keys().filter(vault=vault, name__iexact=scope.key, deleted_at=None).first()
    if key is None:
        authorize(actor, action, vault)
        raise NotFound(f"A key with (name/id) {scope.key} was not found.", code="KeyNotFound")
    activity.describe(vault=vault.name, target=f"vaults/{vault.name}/keys/{key.name}")
    return key


def _role(name_or_id: str) -> RoleDefinition:
    role = roles.role_named(name_or_id)
    if role is None:
        raise BadParameter(
            f"Role '{name_or_id}' doesn't exist. `kv role definition list` shows the roles.",
            code="RoleDefinitionDoesNotExist",
        )
    return role


def resolve_principal(assignee: str, *, kind: str | None = None) -> Principal:
    """A user name, a group name, or an application's client id (or any principal's object
    id); `kind` ("user", "group" or "application") narrows the search."""
    text = assignee.strip()
    found: list[Principal] = []
    try:
        as_uuid: uuid.UUID | None = uuid.UUID(text)
    except ValueError:
        as_uuid = None
    if kind in (None, "application") and as_uuid is not None:
        application = Application.objects.filter(client_id=as_uuid).select_related("user").first()
        if application is not None:
            return application.user
    if kind in (None, "user", "application") and as_uuid is not None:
        by_oid = User.objects.filter(oid=as_uuid).first()
        if by_oid is not None:
            return by_oid
    if kind in (None, "user"):
        found += User.objects.filter(username=text, kind=User.Kind.USER)
    if kind in (None, "group"):
        found += Group.objects.filter(name=text)
    if len(found) > 1:
        raise BadParameter(
            f"'{assignee}' names both a user and a group; say which one is meant.",
            code="AmbiguousPrincipal",
        )
    if not found:
        what = {"user": "user", "group": "group", "application": "application"}.get(
            kind or "", "user, group or application"
        )
        raise BadParameter(f"No {what} matches '{assignee}'.", code="PrincipalNotFound")
    return found[0]


def _names_actor(actor: User, text: str) -> bool:
    """Whether `text` names the actor itself (by name, object id or client id)."""
    text = text.strip()
    if text in (actor.username, str(actor.oid)):
        return True
    return (
        Application.objects.filter(user=actor, client_id__iexact=text).exists()
        if _is_uuid(text)
        else False
    )


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def principal_name(principal: Principal) -> str:
    return principal.name if isinstance(principal, Group) else principal.username


def _assignment_target(scope: Model, uid: uuid.UUID | str) -> None:
    """Record an assignment against its scope's vault, so vault readers see it."""
    path = scope_path(scope)
    vault = next(
        (item for item in scope.permission_chain() if isinstance(item, Vault)),  # type: ignore[attr-defined]
        None,
    )
    target = f"{path.removeprefix('/')}/roleAssignments/{uid}"
    if vault is not None:
        activity.describe(vault=vault.name, target=target[:400])
    else:
        activity.describe(target=target[:400])


def _access_changed(target: Model) -> None:
    """Event Grid's VaultAccessPolicyChanged, in the transaction of the change: for a vault,
    for a key's vault (naming the key, so rules on the key hear of it too), and for each live
    vault of a resource group, since an assignment there reaches every one of them."""
    if isinstance(target, ResourceGroup):
        vaults = list(target.vaults.filter(deleted_at=None).select_related("resource_group"))
        key_name = ""
    elif isinstance(target, Vault):
        vaults, key_name = [target], ""
    else:
        vaults, key_name = [target.vault], target.name  # type: ignore[attr-defined]
    for vault in vaults:
        events.emit(
            EventType.VAULT_ACCESS_POLICY_CHANGED,
            vault=vault,
            subject=vault.name,
            data=events.vault_data(vault),
            key_name=key_name,
        )


# --- role definitions and assignments ------------------------------------------------------


@operation(Operation.ROLE_DEFINITION_LIST)
def role_definition_list(*, actor: User) -> tuple[RoleDefinition, ...]:
    """The built-in roles; like Azure's, their definitions are readable by every principal."""
    return roles.BUILT_IN_ROLES


@operation(Operation.ROLE_ASSIGNMENT_CREATE)
def role_assignment_create(
    *, actor: User, assignee: str, role: str, scope: str, assignee_kind: str | None = None
) -> RoleAssignment:
    """Assign `role` to a principal at a scope; it applies there and to everything below."""
    parsed = parse_scope(scope)
    definition = _role(role)
    target = _scope_object(actor, Action.ROLE_ASSIGNMENT_WRITE, parsed)
    permissions.authorize_assignment(actor, Action.ROLE_ASSIGNMENT_WRITE, definition, target)
    principal = resolve_principal(assignee, kind=assignee_kind)
    chain: list[Any] = target.permission_chain()  # type: ignore[attr-defined]
    assignment = RoleAssignment(
        role_id=definition.id,
        user=principal if isinstance(principal, User) else None,
        group=principal if isinstance(principal, Group) else None,
        resource_group=next(item for item in chain if isinstance(item, ResourceGroup)),
        vault=next((item for item in chain if isinstance(item, Vault)), None),
        key=None if isinstance(target, ResourceGroup | Vault) else target,  # type: ignore[misc]
        scope=scope_path(target),
        created_by=actor if actor.pk else None,
        created_by_name=actor.username,
    )
    _assignment_target(target, assignment.uid)
    exists = Conflict("The role assignment already exists.", code="RoleAssignmentExists")
    if _assignments_of(principal).filter(role_id=definition.id, scope=assignment.scope).exists():
        raise exists
    try:
        with activity.atomic():
            assignment.save()
            permissions.grant_role(principal, definition, target)
            _access_changed(target)
    except IntegrityError:
        # The same assignment made meanwhile; anything else (the scope purged meanwhile)
        # is not a conflict and goes up as it is.
        if (
            _assignments_of(principal)
            .filter(role_id=definition.id, scope=assignment.scope)
            .exists()
        ):
            raise exists from None
        raise
    return assignment


def _assignments_of(principal: Principal) -> QuerySet[RoleAssignment]:
    if isinstance(principal, Group):
        return RoleAssignment.objects.filter(group=principal)
    return RoleAssignment.objects.filter(user=principal)


@operation(Operation.ROLE_ASSIGNMENT_LIST)
def role_assignment_list(
    *,
    actor: User,
    scope: str | None = None,
    assignee: str | None = None,
    role: str | None = None,
    include_inherited: bool = False,
) -> QuerySet[RoleAssignment]:
    """Assignments the actor may read: at `scope` (and above it, with `include_inherited`),
    of one principal or one role, newest last."""
    assignments = permissions.visible(
        actor,
        RoleAssignment.objects.select_related("user", "group", "resource_group"),
        Action.ROLE_ASSIGNMENT_READ,
    )
    if scope is not None:
        target = _scope_object(actor, Action.ROLE_ASSIGNMENT_READ, parse_scope(scope))
        authorize(actor, Action.ROLE_ASSIGNMENT_READ, target)  # type: ignore[arg-type]
        if include_inherited:
            assignments = assignments.filter(
                scope__in=[scope_path(item) for item in target.permission_chain()]  # type: ignore[attr-defined]
            )
        else:
            assignments = assignments.filter(scope=scope_path(target))
    if role is not None:
        assignments = assignments.filter(role_id=_role(role).id)
    if assignee is not None:
        principal = resolve_principal(assignee)
        if isinstance(principal, Group):
            assignments = assignments.filter(group=principal)
        else:
            assignments = assignments.filter(user=principal)
    return assignments


@operation(Operation.ROLE_ASSIGNMENT_DELETE)
def role_assignment_delete(
    *,
    actor: User,
    assignment_id: str | None = None,
    assignee: str | None = None,
    role: str | None = None,
    scope: str | None = None,
) -> RoleAssignment:
    """Remove one assignment, named by its id or by assignee, role and scope."""
    if assignment_id is not None:
        activity.describe(target=f"roleAssignments/{assignment_id}"[:400])
        assignment = _assignment_by_id(assignment_id)
        if assignment is None:
            authorize(actor, Action.ROLE_ASSIGNMENT_DELETE, DEPLOYMENT)
            raise NotFound(
                f"Role assignment '{assignment_id}' was not found.",
                code="RoleAssignmentNotFound",
            )
        target = _assignment_scope(assignment)
        _assignment_target(target, assignment.uid)
        definition = roles.ROLES_BY_ID[str(assignment.role_id)]
        permissions.authorize_assignment(actor, Action.ROLE_ASSIGNMENT_DELETE, definition, target)
    else:
        if assignee is None or role is None or scope is None:
            raise BadParameter("Name the assignment by its id, or by assignee, role and scope.")
        definition = _role(role)
        target = _scope_object(actor, Action.ROLE_ASSIGNMENT_DELETE, parse_scope(scope))
        permissions.authorize_assignment(actor, Action.ROLE_ASSIGNMENT_DELETE, definition, target)
        principal = resolve_principal(assignee)
        found = (
            _assignments_of(principal)
            .filter(role_id=definition.id, scope=scope_path(target))
            .first()
        )
        if found is None:
            raise NotFound(
                f"No assignment of '{definition.name}' to '{assignee}' at {scope_path(target)}.",
                code="RoleAssignmentNotFound",
            )
        assignment = found
        _assignment_target(target, assignment.uid)
    principal_holder: Principal = assignment.group or assignment.user  # type: ignore[assignment]
    with activity.atomic():
        deleted, _ = RoleAssignment.objects.filter(pk=assignment.pk).delete()
        if not deleted:
            raise NotFound(
                f"Role assignment '{assignment.uid}' was not found.",
                code="RoleAssignmentNotFound",
            )
        permissions.revoke_role(principal_holder, definition, target)
        _access_changed(target)
    return assignment


def _assignment_by_id(text: str) -> RoleAssignment | None:
    try:
        uid = uuid.UUID(text.strip().rsplit("/", 1)[-1])
    except ValueError:
        return None
    return (
        RoleAssignment.objects.select_related("user", "group", "resource_group", "vault")
        .filter(uid=uid)
        .first()
    )


def _assignment_scope(assignment: RoleAssignment) -> Model:
    if assignment.key_id is not None:
        key: Model = _keys().get(pk=assignment.key_id)
        return key
    if assignment.vault is not None:
        return assignment.vault
    return assignment.resource_group


# --- access policies -------------------------------------------------------------------------


def clean_key_permissions(values: list[str]) -> list[str]:
    """Azure's key permission names, in any case; `all` stands for every one."""
    if not values:
        raise BadParameter("Give at least one key permission (or 'all').")
    by_lower = {permission.lower(): permission for permission in KEY_PERMISSIONS}
    unknown = [value for value in values if value.lower() not in {*by_lower, "all"}]
    if unknown:
        raise BadParameter(
            f"Unknown key permission(s): {', '.join(unknown)}. Valid values are all, "
            f"{', '.join(KEY_PERMISSIONS)}."
        )
    if any(value.lower() == "all" for value in values):
        return list(KEY_PERMISSIONS)
    wanted = {by_lower[value.lower()] for value in values}
    return [permission for permission in KEY_PERMISSIONS if permission in wanted]


@operation(Operation.ACCESS_POLICY_SET)
def access_policy_set(
    *,
    actor: User,
    vault_name: str,
    principal: str,
    principal_kind: str | None = None,
    key_permissions: list[str],
) -> permissions.PolicyEntry:
    """Set a principal's key permissions in the vault's access policy (replacing its
    previous ones), as `az keyvault set-policy` does."""
    vault = vault_lookup(vault_name, actor=actor, action=Action.ACCESS_POLICY_WRITE)
    authorize(actor, Action.ACCESS_POLICY_WRITE, vault)
    wanted = clean_key_permissions(key_permissions)
    holder = resolve_principal(principal, kind=principal_kind)
    activity.describe(
        vault=vault.name, target=f"vaults/{vault.name}/accessPolicies/{principal_name(holder)}"
    )
    with activity.atomic():
        # The vault row lock makes concurrent additions count against the limit in turn.
        vault = _lock_vault(vault)
        entries = permissions.policy_entries(vault)
        present = any(entry.principal == holder for entry in entries)
        if not present and len(entries) >= MAX_ACCESS_POLICIES:
            raise BadParameter(
                f"Vault '{vault.name}' already has {MAX_ACCESS_POLICIES} access policies, the "
                "most a vault can hold; remove one first, or use Azure RBAC.",
                code="AccessPolicyLimitExceeded",
            )
        permissions.set_policy(vault, holder, wanted)
        _access_changed(vault)
    return permissions.PolicyEntry(holder, tuple(wanted))


@operation(Operation.ACCESS_POLICY_DELETE)
def access_policy_delete(
    *, actor: User, vault_name: str, principal: str, principal_kind: str | None = None
) -> None:
    """Remove a principal's entry from the vault's access policy."""
    vault = vault_lookup(vault_name, actor=actor, action=Action.ACCESS_POLICY_WRITE)
    authorize(actor, Action.ACCESS_POLICY_WRITE, vault)
    holder = resolve_principal(principal, kind=principal_kind)
    activity.describe(
        vault=vault.name, target=f"vaults/{vault.name}/accessPolicies/{principal_name(holder)}"
    )
    with activity.atomic():
        vault = _lock_vault(vault)
        if not any(entry.principal == holder for entry in permissions.policy_entries(vault)):
            raise NotFound(
                f"Vault '{vault.name}' has no access policy for '{principal}'.",
                code="AccessPolicyNotFound",
            )
        permissions.set_policy(vault, holder, [])
        _access_changed(vault)


@operation(Operation.ACCESS_POLICY_LIST)
def access_policy_list(*, actor: User, vault_name: str) -> list[permissions.PolicyEntry]:
    vault = vault_lookup(vault_name, actor=actor, action=Action.VAULT_READ)
    authorize(actor, Action.VAULT_READ, vault)
    return permissions.policy_entries(vault)


# --- the permission model --------------------------------------------------------------------


@operation(Operation.PERMISSION_MODEL_CHANGE)
def vault_permission_model_set(*, actor: User, name: str, permission_model: str) -> Vault:
    """Switch the vault between Azure RBAC and access policies. Grants of the other model
    are kept but ignored; the switch takes effect with the next authorization."""
    vault = vault_lookup(name, actor=actor, action=Action.VAULT_WRITE)
    # Azure requires both: changing the vault, and the unconditioned right to grant any
    # role (a Data Access Administrator's condition does not stretch to this).
    authorize(actor, Action.VAULT_WRITE, vault)
    permissions.authorize_assignment(actor, Action.ROLE_ASSIGNMENT_WRITE, None, vault)
    if permission_model not in Vault.PermissionModel.values:
        raise BadParameter(
            f"permissionModel must be one of {', '.join(Vault.PermissionModel.values)}; got "
            f"'{permission_model}'."
        )
    with activity.atomic():
        vault = _lock_vault(vault)
        switched = vault.permission_model != permission_model
        vault.permission_model = permission_model
        vault.save(update_fields=["permission_model", "updated_at"])
        if switched:
            _access_changed(vault)
    return vault


# --- effective access ------------------------------------------------------------------------


@operation(Operation.EFFECTIVE_ACCESS_GET)
def effective_access(
    *, actor: User, vault_name: str, principal: str, key_name: str | None = None
) -> EffectiveAccess:
    """What `principal` may do on a vault (or one key in it), and which assignment or
    policy grants each right. Asking about others takes the right to read role assignments
    there; callers may ask about themselves wherever they hold any right. Anyone else is
    refused alike whether or not the key exists."""
    vault = vault_lookup(vault_name, actor=actor, action=Action.ROLE_ASSIGNMENT_READ)
    about_self = _names_actor(actor, principal)

    def may_ask(obj: Model) -> bool:
        if permissions.may(actor, Action.ROLE_ASSIGNMENT_READ, obj):  # type: ignore[arg-type]
            return True
        return about_self and any(
            right.allowed
            for right in permissions.explain(actor, obj)  # type: ignore[arg-type]
        )

    target: Model = vault
    if key_name is not None:
        activity.describe(vault=vault.name, target=f"vaults/{vault.name}/keys/{key_name}"[:400])
        key = _keys().filter(vault=vault, name__iexact=key_name, deleted_at=None).first()
        if key is None:
            if not may_ask(vault):
                authorize(actor, Action.ROLE_ASSIGNMENT_READ, vault)
            raise NotFound(f"A key with (name/id) {key_name} was not found.", code="KeyNotFound")
        target = key
    if not may_ask(target):
        authorize(actor, Action.ROLE_ASSIGNMENT_READ, target)  # type: ignore[arg-type]
    subject = resolve_principal(principal)
    if isinstance(subject, Group):
        raise BadParameter(
            "Effective access is worked out for a user or an application; a group's members "
            "each have their own."
        )
    return EffectiveAccess(
        principal=subject,
        target=target,
        model=vault.permission_model,
        rights=permissions.explain(subject, target),  # type: ignore[arg-type]
    )
