"""Console pages for access: role assignments at resource group, vault and key scope, a
vault's access policies and permission model, and what a principal may effectively do.

Pages read through selectors, so a group, vault or key the operator cannot see is a 404 and
assignments it may not read are not listed; every change calls one access service, which
authorizes and records it. Capabilities decide only which controls are shown.
"""

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from django.contrib.auth.models import Group
from django.db.models import Model
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods

from accounts.models import User
from accounts.roles import BUILT_IN_ROLES, ROLES_BY_ID, RoleDefinition
from kvconsole.console import done, page, posted
from kvconsole.errors import BadParameter, Conflict
from kvconsole.http import AuthedRequest, is_partial

from .. import selectors
from .. import services as vault_services
from ..forms_access import (
    KEY_PERMISSION_LABELS,
    AccessPolicyForm,
    EffectiveAccessForm,
    PermissionModelForm,
    RoleAssignmentForm,
    permissions_initial,
)
from ..models import ResourceGroup, RoleAssignment, Vault
from ..permissions import Action, PolicyEntry, Principal, Right, capabilities
from .resources import visible_group, visible_vault

# --- what the pages show -------------------------------------------------------------------


def principal_ref(principal: Principal) -> tuple[str, str]:
    """What the access services resolve a principal by, and its kind."""
    if isinstance(principal, Group):
        return principal.name, "group"
    if principal.kind == User.Kind.APPLICATION:
        return str(principal.oid), "application"
    return principal.username, "user"


def principal_label(principal: Principal) -> str:
    return principal.name if isinstance(principal, Group) else str(principal)


def _kind_label(principal: Principal) -> str:
    return principal_ref(principal)[1].capitalize()


def _scope_kind(scope: Model) -> str:
    if isinstance(scope, ResourceGroup):
        return "resource group"
    return "vault" if isinstance(scope, Vault) else "key"


def _scope_name(scope: Model) -> str:
    return f"{_scope_kind(scope)} {scope.name}"  # type: ignore[attr-defined]


def _scope_of(assignment: RoleAssignment) -> Model:
    if assignment.key is not None:
        return assignment.key
    return assignment.vault or assignment.resource_group


def _effective_url(scope: Model) -> str:
    """The effective-access page of a vault or key; groups have none."""
    if isinstance(scope, ResourceGroup):
        return ""
    if isinstance(scope, Vault):
        return reverse("vault-effective-access", args=[scope.name])
    return reverse("key-effective-access", args=[scope.vault.name, scope.name])  # type: ignore[attr-defined]


def access_url(scope: Model) -> str:
    """The access page of a resource group, vault or key."""
    if isinstance(scope, ResourceGroup):
        return reverse("group-access", args=[scope.name])
    if isinstance(scope, Vault):
        return reverse("vault-access", args=[scope.name])
    return reverse("key-access", args=[scope.vault.name, scope.name])  # type: ignore[attr-defined]


@dataclass(frozen=True)
class AssignmentRow:
    assignment: RoleAssignment
    role: RoleDefinition
    # Made at the page's scope or below it, where the page may offer its removal; the rest
    # is inherited and removed where it was made.
    here: bool

    @property
    def principal(self) -> Principal:
        holder: Principal = self.assignment.group or self.assignment.user  # type: ignore[assignment]
        return holder

    @property
    def principal_name(self) -> str:
        return principal_label(self.principal)

    @property
    def principal_kind(self) -> str:
        return _kind_label(self.principal)

    @property
    def scope_name(self) -> str:
        return _scope_name(_scope_of(self.assignment))

    @property
    def scope_url(self) -> str:
        return access_url(_scope_of(self.assignment))


def _assignment_rows(assignments: Any, *, here: Model | None) -> list[AssignmentRow]:
    """Rows for assignments; with `here` only those made at it are the page's own."""
    return [
        AssignmentRow(
            assignment,
            ROLES_BY_ID[str(assignment.role_id)],
            here=here is None or _scope_of(assignment) == here,
        )
        for assignment in assignments
    ]


@dataclass(frozen=True)
class PolicyRow:
    entry: PolicyEntry

    @property
    def ref(self) -> tuple[str, str]:
        return principal_ref(self.entry.principal)

    @property
    def principal_name(self) -> str:
        return principal_label(self.entry.principal)

    @property
    def principal_kind(self) -> str:
        return _kind_label(self.entry.principal)

    @property
    def permissions(self) -> list[str]:
        return [KEY_PERMISSION_LABELS[permission] for permission in self.entry.permissions]

    @property
    def query(self) -> str:
        value, kind = self.ref
        return urlencode({"principal": value, "kind": kind})


def _policy_rows(request: AuthedRequest, vault: Vault) -> list[PolicyRow]:
    return [
        PolicyRow(entry) for entry in selectors.access_policy_list(actor=request.user, vault=vault)
    ]


_MANAGEMENT_LABELS = {
    Action.VAULT_READ: "Read the vault",
    Action.VAULT_WRITE: "Change the vault",
    Action.VAULT_DELETE: "Delete the vault",
    Action.ACCESS_POLICY_WRITE: "Change access policies",
    Action.ROLE_ASSIGNMENT_READ: "Read role assignments",
    Action.ROLE_ASSIGNMENT_WRITE: "Add role assignments",
    Action.ROLE_ASSIGNMENT_DELETE: "Remove role assignments",
}


@dataclass(frozen=True)
class RightRow:
    right: Right

    @property
    def label(self) -> str:
        permission = self.right.action.permission
        if permission is not None:
            return f"Keys: {KEY_PERMISSION_LABELS[permission]}"
        return _MANAGEMENT_LABELS.get(self.right.action, self.right.action.azure_name)


# --- role assignments at a scope -----------------------------------------------------------


def _assignment_page(
    request: AuthedRequest, *, scope: Model, template: str, context: dict[str, Any]
) -> HttpResponse:
    """A scope's access page: the assignments that apply there, and adding one (POST)."""
    url = access_url(scope)
    can = capabilities(
        request.user,
        scope,  # type: ignore[arg-type]
        read=Action.ROLE_ASSIGNMENT_READ,
        add=Action.ROLE_ASSIGNMENT_WRITE,
        remove=Action.ROLE_ASSIGNMENT_DELETE,
    )
    form = None
    roles: tuple[RoleDefinition, ...] = ()
    # A POST is handed to the service whoever sends it: the service refuses whoever may not.
    if can["add"] or request.method == "POST":
        # The built-in catalogue, read as data: a page view is not an operation to record.
        roles = BUILT_IN_ROLES
        form = RoleAssignmentForm(posted(request), roles=roles)
    if form is not None and form.is_bound and form.is_valid():
        data = form.cleaned_data
        try:
            assignment = vault_services.role_assignment_create(
                actor=request.user,
                assignee=data["principal"],
                assignee_kind=data["principal_kind"] or None,
                role=data["role"],
                scope=vault_services.scope_path(scope),
            )
        except (BadParameter, Conflict) as error:
            form.refuse(error)
        else:
            row = _assignment_rows([assignment], here=None)[0]
            message = f"{row.role.name} assigned to {row.principal_name} at {_scope_name(scope)}."
            return done(request, message, url)
    assignments = selectors.role_assignment_list(actor=request.user, scope=scope)
    context = {
        **context,
        "scope": scope,
        "scope_kind": _scope_kind(scope),
        "scope_name": _scope_name(scope),
        "access_url": url,
        "effective_url": _effective_url(scope),
        "own": principal_ref(request.user)[0],
        "can": can,
        "form": form,
        "roles": roles,
        "assignments": _assignment_rows(assignments, here=scope),
    }
    return page(request, template, context, partial="assignment-form")


@require_http_methods(["GET", "POST"])
def group_access(request: AuthedRequest, name: str) -> HttpResponse:
    group = visible_group(request, name)
    return _assignment_page(
        request, scope=group, template="vaults/access_group.html", context={"group": group}
    )


@require_http_methods(["GET", "POST"])
def vault_access(request: AuthedRequest, name: str) -> HttpResponse:
    """The vault's Access tab: its permission model, access policies and role assignments."""
    vault = visible_vault(request, name)
    policy_url = reverse("vault-policy-edit", args=[vault.name])
    can = capabilities(
        request.user,
        vault,
        write_policy=Action.ACCESS_POLICY_WRITE,
        edit_vault=Action.VAULT_WRITE,
        assign=Action.ROLE_ASSIGNMENT_WRITE,
    )
    key_assignments = selectors.key_role_assignment_list(actor=request.user, vault=vault)
    context = {
        "vault": vault,
        "tab": "access",
        "policies": _policy_rows(request, vault),
        "policy_form": (
            AccessPolicyForm(url=policy_url)
            if can["write_policy"] and vault.permission_model == Vault.PermissionModel.ACCESS_POLICY
            else None
        ),
        "policy_url": policy_url,
        # Switching also needs the unconditioned right to assign any role; the service
        # decides that, and says so if it refuses.
        "can_switch": can["edit_vault"] and can["assign"],
        "can_write_policy": can["write_policy"],
        "key_assignments": _assignment_rows(key_assignments, here=None),
    }
    return _assignment_page(
        request, scope=vault, template="vaults/access_vault.html", context=context
    )


def visible_key(request: AuthedRequest, vault: Vault, name: str) -> Model:
    key = selectors.key_for_access(actor=request.user, vault=vault, name=name)
    if key is None:
        raise Http404(f"No key '{name}' that you can see.")
    return key


@require_http_methods(["GET", "POST"])
def key_access(request: AuthedRequest, vault_name: str, key_name: str) -> HttpResponse:
    vault = visible_vault(request, vault_name)
    key = visible_key(request, vault, key_name)
    return _assignment_page(
        request, scope=key, template="vaults/access_key.html", context={"vault": vault, "key": key}
    )


def _back_url(request: AuthedRequest, default: str) -> str:
    """The page the operator came from, if it is on this host; `default` otherwise."""
    back = request.POST.get("next") or request.GET.get("next") or ""
    safe = url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return back if back and safe else default


@require_http_methods(["GET", "POST"])
def role_assignment_delete(request: AuthedRequest, uid: UUID) -> HttpResponse:
    assignment = selectors.role_assignment_get(actor=request.user, uid=uid)
    if assignment is None:
        raise Http404("No role assignment that you can see.")
    row = _assignment_rows([assignment], here=None)[0]
    back = _back_url(request, row.scope_url)
    if request.method == "POST":
        vault_services.role_assignment_delete(actor=request.user, assignment_id=str(uid))
        message = f"{row.role.name} removed from {row.principal_name} at {row.scope_name}."
        return done(request, message, back)
    context = {"row": row, "back": back}
    return page(request, "vaults/access_assignment_delete.html", context, partial="confirm")


# --- access policies and the permission model ----------------------------------------------


@require_http_methods(["GET", "POST"])
def vault_policy_edit(request: AuthedRequest, name: str) -> HttpResponse:
    """Add or change a principal's access policy; `?principal=&kind=` starts from its entry."""
    vault = visible_vault(request, name)
    url = reverse("vault-policy-edit", args=[vault.name])
    editing = None
    if request.method == "GET":
        wanted = (request.GET.get("principal", ""), request.GET.get("kind", ""))
        editing = next((row for row in _policy_rows(request, vault) if row.ref == wanted), None)
        ticked = permissions_initial(editing.entry.permissions) if editing is not None else {}
        initial = {"principal": wanted[0], "principal_kind": wanted[1], **ticked}
        form = AccessPolicyForm(initial=initial, url=url)
    elif request.POST.get("apply") == "template":
        form = AccessPolicyForm.with_template(request.POST, url=url)
    else:
        form = AccessPolicyForm(request.POST, url=url)
        if form.is_valid():
            data = form.cleaned_data
            try:
                entry = vault_services.access_policy_set(
                    actor=request.user,
                    vault_name=vault.name,
                    principal=data["principal"],
                    principal_kind=data["principal_kind"] or None,
                    key_permissions=data["key_permissions"],
                )
            except BadParameter as error:
                form.refuse(error)
            else:
                count = len(entry.permissions)
                message = (
                    f"Access policy of {principal_label(entry.principal)} saved: "
                    f"{count} key permission{'s' if count != 1 else ''}."
                )
                return done(request, message, reverse("vault-access", args=[vault.name]))
    context = {
        "vault": vault,
        "tab": "access",
        "form": form,
        "policy_url": url,
        "editing": editing,
        "can": capabilities(request.user, vault, write=Action.ACCESS_POLICY_WRITE),
    }
    return page(request, "vaults/access_policy.html", context, partial="form")


@require_http_methods(["GET", "POST"])
def vault_policy_delete(request: AuthedRequest, name: str) -> HttpResponse:
    vault = visible_vault(request, name)
    source = request.POST if request.method == "POST" else request.GET
    principal, kind = source.get("principal", ""), source.get("kind", "")
    row = next((row for row in _policy_rows(request, vault) if row.ref == (principal, kind)), None)
    if request.method == "POST":
        vault_services.access_policy_delete(
            actor=request.user,
            vault_name=vault.name,
            principal=principal,
            principal_kind=kind or None,
        )
        who = row.principal_name if row is not None else principal
        message = f"Access policy of {who} removed from vault {vault.name}."
        return done(request, message, reverse("vault-access", args=[vault.name]))
    if row is None:
        raise Http404("No such access policy that you can see.")
    context = {"vault": vault, "tab": "access", "row": row}
    return page(request, "vaults/access_policy_delete.html", context, partial="confirm")


@require_http_methods(["GET", "POST"])
def vault_permission_model(request: AuthedRequest, name: str) -> HttpResponse:
    """Switch the vault between Azure RBAC and access policies, after saying what changes."""
    vault = visible_vault(request, name)
    switch_to = (
        Vault.PermissionModel.ACCESS_POLICY
        if vault.permission_model == Vault.PermissionModel.RBAC
        else Vault.PermissionModel.RBAC
    )
    form = PermissionModelForm(posted(request), initial={"permission_model": switch_to})
    if request.method == "POST" and form.is_valid():
        try:
            vault = vault_services.vault_permission_model_set(
                actor=request.user,
                name=vault.name,
                permission_model=form.cleaned_data["permission_model"],
            )
        except BadParameter as error:
            form.refuse(error)
        else:
            message = f"Vault {vault.name} now uses {vault.get_permission_model_display()}."
            return done(request, message, reverse("vault-access", args=[vault.name]))
    context = {
        "vault": vault,
        "tab": "access",
        "form": form,
        "switch_to": Vault.PermissionModel(switch_to),
        "can": capabilities(
            request.user, vault, edit=Action.VAULT_WRITE, assign=Action.ROLE_ASSIGNMENT_WRITE
        ),
        "policy_count": len(selectors.access_policy_list(actor=request.user, vault=vault)),
        "assignment_count": selectors.role_assignment_list(actor=request.user, scope=vault).count()
        + selectors.key_role_assignment_list(actor=request.user, vault=vault).count(),
    }
    return page(request, "vaults/access_model.html", context, partial="confirm")


# --- effective access ------------------------------------------------------------------------


def _effective_page(request: AuthedRequest, *, vault: Vault, key: Model | None) -> HttpResponse:
    form = EffectiveAccessForm(request.GET or None)
    found = None
    if form.is_bound and form.is_valid():
        try:
            found = vault_services.effective_access(
                actor=request.user,
                vault_name=vault.name,
                principal=form.cleaned_data["principal"],
                key_name=key.name if key is not None else None,  # type: ignore[attr-defined]
            )
        except BadParameter as error:
            form.refuse(error)
    rights = [RightRow(right) for right in found.rights] if found is not None else []
    scope = key if key is not None else vault
    context = {
        "vault": vault,
        "key": key,
        "tab": "access",
        "form": form,
        "found": found,
        "effective_url": _effective_url(scope),
        "access_url": access_url(scope),
        "rights_count": len(rights),
        "allowed_count": sum(row.right.allowed for row in rights),
        "data_rights": [row for row in rights if row.right.action.permission is not None],
        "management_rights": [row for row in rights if row.right.action.permission is None],
        "own": principal_ref(request.user)[0],
    }
    return page(request, "vaults/access_effective.html", context, partial="effective")


@require_GET
def vault_effective_access(request: AuthedRequest, name: str) -> HttpResponse:
    return _effective_page(request, vault=visible_vault(request, name), key=None)


@require_GET
def key_effective_access(request: AuthedRequest, vault_name: str, key_name: str) -> HttpResponse:
    vault = visible_vault(request, vault_name)
    return _effective_page(request, vault=vault, key=visible_key(request, vault, key_name))


# --- the principal picker --------------------------------------------------------------------

_LIST_ID = re.compile(r"[a-z][a-z0-9-]{0,63}")


@require_GET
def principal_search(request: AuthedRequest) -> HttpResponse:
    """Principals matching what was typed: the picker's suggestions for htmx, a page else."""
    q = request.GET.get("principal", "").strip()[:200]
    list_id = request.GET.get("list", "")
    context = {
        "q": q,
        "choices": selectors.principal_search(actor=request.user, q=q),
        "list_id": list_id if _LIST_ID.fullmatch(list_id) else "principal-options",
        "limit": selectors.PRINCIPAL_SUGGESTIONS,
    }
    if is_partial(request):
        # Rendered without the alert region, which `page` would empty at every keystroke.
        return render(request, "vaults/access_principals.html#options", context)
    return page(request, "vaults/access_principals.html", context)
