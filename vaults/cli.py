"""`kv group ...`, `kv vault ...` and `kv activity ...`: parse, call one service, shape."""

import argparse
from typing import Any

from kvconsole.cli import Invocation, add_tags, boolean, group, leaf, moment, tags
from kvconsole.errors import BadParameter

from . import selectors, services, shapes
from .models import KEY_PERMISSIONS, Face, Operation, Result, Vault


def register(commands: Any) -> None:
    _register_groups(group(commands, "group", "Manage resource groups."))
    _register_vaults(group(commands, "vault", "Manage vaults."))
    _register_activity(group(commands, "activity", "Read and verify the activity log."))
    _register_roles(group(commands, "role", "Role definitions and role assignments (RBAC)."))


def _register_groups(commands: Any) -> None:
    create = leaf(commands, "create", _group_create, "Create a resource group.")
    create.add_argument("--name", "-n", required=True)
    create.add_argument("--location", "-l", required=True)
    add_tags(create)
    update = leaf(commands, "update", _group_update, "Replace a resource group's tags.")
    update.add_argument("--name", "-n", required=True)
    add_tags(update)
    leaf(commands, "list", _group_list, "List resource groups.", columns=("name", "location"))
    show = leaf(commands, "show", _group_show, "Show a resource group.")
    show.add_argument("--name", "-n", required=True)
    delete = leaf(commands, "delete", _group_delete, "Delete an empty resource group.")
    delete.add_argument("--name", "-n", required=True)


def _group_create(run: Invocation) -> Any:
    options = run.options
    return shapes.resource_group(
        services.resource_group_create(
            actor=run.actor, name=options.name, location=options.location, tags=tags(options.tags)
        )
    )


def _group_update(run: Invocation) -> Any:
    options = run.options
    return shapes.resource_group(
        services.resource_group_update(
            actor=run.actor, name=options.name, tags=tags(options.tags) or {}
        )
    )


def _group_list(run: Invocation) -> Any:
    return [shapes.resource_group(item) for item in services.resource_group_list(actor=run.actor)]


def _group_show(run: Invocation) -> Any:
    return shapes.resource_group(
        services.resource_group_get(actor=run.actor, name=run.options.name)
    )


def _group_delete(run: Invocation) -> Any:
    services.resource_group_delete(actor=run.actor, name=run.options.name)


def _vault_name(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", "-n", required=True, help="The vault name.")


def _register_vaults(commands: Any) -> None:
    create = leaf(commands, "create", _vault_create, "Create a vault.")
    _vault_name(create)
    create.add_argument("--resource-group", "-g", required=True)
    create.add_argument("--location", "-l", help="Default: the resource group's location.")
    create.add_argument("--sku", choices=Vault.Sku.values, default=Vault.Sku.STANDARD)
    create.add_argument(
        "--retention-days", type=int, default=90, help="Soft-delete retention, 7-90 days."
    )
    create.add_argument("--enable-purge-protection", type=boolean, default=False)
    create.add_argument(
        "--enable-rbac-authorization",
        type=boolean,
        default=True,
        help="true: Azure RBAC; false: vault access policies.",
    )
    add_tags(create)

    update = leaf(commands, "update", _vault_update, "Update a vault's properties.")
    _vault_name(update)
    update.add_argument("--sku", choices=Vault.Sku.values)
    update.add_argument("--enable-purge-protection", type=boolean)
    update.add_argument(
        "--enable-rbac-authorization", type=boolean, help="true: Azure RBAC; false: policies."
    )
    update.add_argument(
        "--permission-model",
        choices=["rbac", "access-policy"],
        help="Switch the permission model (needs the right to assign roles).",
    )
    update.add_argument("--retention-days", type=int)
    update.add_argument(
        "--host-aliases",
        nargs="*",
        metavar="HOST[:PORT]",
        help="Replace the other host names the vault endpoint answers on (none: clear them).",
    )
    add_tags(update)

    set_policy = leaf(
        commands, "set-policy", _vault_set_policy, "Set a principal's key permissions."
    )
    _vault_name(set_policy)
    _policy_principal(set_policy)
    set_policy.add_argument(
        "--key-permissions",
        nargs="+",
        required=True,
        metavar="PERMISSION",
        help=f"Any of: all, {', '.join(KEY_PERMISSIONS)}.",
    )
    delete_policy = leaf(
        commands, "delete-policy", _vault_delete_policy, "Remove a principal's access policy."
    )
    _vault_name(delete_policy)
    _policy_principal(delete_policy)
    show_access = leaf(
        commands,
        "show-access",
        _vault_show_access,
        "What a principal may do on a vault or key, and what grants each right.",
        columns=("action", "permission", "allowed", "grantedBy"),
    )
    _vault_name(show_access)
    show_access.add_argument("--key", help="A key in the vault (default: the vault).")
    show_access.add_argument(
        "--assignee", required=True, help="A user name or an application's client id."
    )

    listing = leaf(
        commands,
        "list",
        _vault_list,
        "List vaults.",
        columns=("name", "resourceGroup", "location", "properties.sku.name"),
    )
    listing.add_argument("--resource-group", "-g")
    show = leaf(commands, "show", _vault_show, "Show a vault.")
    _vault_name(show)
    delete = leaf(commands, "delete", _vault_delete, "Soft-delete a vault.")
    _vault_name(delete)
    delete.add_argument(
        "--force", action="store_true", help="Delete the vault even though it holds keys."
    )
    leaf(
        commands,
        "list-deleted",
        _vault_list_deleted,
        "List soft-deleted vaults.",
        columns=("name", "properties.deletionDate", "properties.scheduledPurgeDate"),
    )
    recover = leaf(commands, "recover", _vault_recover, "Recover a soft-deleted vault.")
    _vault_name(recover)
    purge = leaf(commands, "purge", _vault_purge, "Permanently delete a soft-deleted vault.")
    _vault_name(purge)


def _permission_model(rbac: bool | None) -> str | None:
    if rbac is None:
        return None
    return Vault.PermissionModel.RBAC if rbac else Vault.PermissionModel.ACCESS_POLICY


def _vault_create(run: Invocation) -> Any:
    options = run.options
    return shapes.vault(
        services.vault_create(
            actor=run.actor,
            name=options.name,
            resource_group=options.resource_group,
            location=options.location,
            sku=options.sku,
            retention_days=options.retention_days,
            purge_protection=options.enable_purge_protection,
            permission_model=_permission_model(options.enable_rbac_authorization)
            or Vault.PermissionModel.RBAC,
            tags=tags(options.tags),
        )
    )


def _vault_update(run: Invocation) -> Any:
    """The permission model switches first, as its own recorded operation; the other
    properties follow in one update."""
    options = run.options
    if options.permission_model and options.enable_rbac_authorization is not None:
        raise BadParameter("Give --permission-model or --enable-rbac-authorization, not both.")
    model = (
        options.permission_model.replace("-", "_")
        if options.permission_model
        else _permission_model(options.enable_rbac_authorization)
    )
    vault = None
    if model is not None:
        vault = services.vault_permission_model_set(
            actor=run.actor, name=options.name, permission_model=model
        )
    others = (
        options.tags,
        options.sku,
        options.enable_purge_protection,
        options.retention_days,
        options.host_aliases,
    )
    if vault is None or any(value is not None for value in others):
        vault = services.vault_update(
            actor=run.actor,
            name=options.name,
            tags=tags(options.tags),
            sku=options.sku,
            purge_protection=options.enable_purge_protection,
            retention_days=options.retention_days,
            host_aliases=options.host_aliases,
        )
    return shapes.vault(vault)


def _policy_principal(parser: argparse.ArgumentParser) -> None:
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--upn", help="A user's name.")
    who.add_argument("--group", help="A group's name.")
    who.add_argument("--spn", help="An application's client id.")
    who.add_argument("--object-id", help="A user's or application's object id.")


def _policy_holder(options: argparse.Namespace) -> tuple[str, str | None]:
    if options.upn:
        return options.upn, "user"
    if options.group:
        return options.group, "group"
    if options.spn:
        return options.spn, "application"
    return options.object_id, None


def _vault_set_policy(run: Invocation) -> Any:
    principal, kind = _policy_holder(run.options)
    entry = services.access_policy_set(
        actor=run.actor,
        vault_name=run.options.name,
        principal=principal,
        principal_kind=kind,
        key_permissions=run.options.key_permissions,
    )
    return shapes.access_policy(entry)


def _vault_delete_policy(run: Invocation) -> Any:
    principal, kind = _policy_holder(run.options)
    services.access_policy_delete(
        actor=run.actor, vault_name=run.options.name, principal=principal, principal_kind=kind
    )


def _vault_show_access(run: Invocation) -> Any:
    options = run.options
    found = services.effective_access(
        actor=run.actor, vault_name=options.name, principal=options.assignee, key_name=options.key
    )
    if options.output == "table":
        return [{**shapes.right(item), "grantedBy": _grant_summary(item)} for item in found.rights]
    return {
        "principal": shapes.principal(found.principal),
        "scope": services.scope_path(found.target),
        "permissionModel": found.model,
        "rights": [shapes.right(item) for item in found.rights],
    }


def _grant_summary(item: Any) -> str:
    parts = []
    for grant in item.grants:
        what = f"{grant.role} at {grant.scope}" if grant.role else grant.source
        parts.append(what + (f" (via group {grant.via})" if grant.via else ""))
    return "; ".join(parts)


def _vault_list(run: Invocation) -> Any:
    vaults = services.vault_list(actor=run.actor, resource_group=run.options.resource_group)
    return [shapes.vault(item) for item in vaults]


def _vault_show(run: Invocation) -> Any:
    shaped = shapes.vault(services.vault_get(actor=run.actor, name=run.options.name))
    policies = services.access_policy_list(actor=run.actor, vault_name=run.options.name)
    shaped["properties"]["accessPolicies"] = [shapes.access_policy(entry) for entry in policies]
    return shaped


def _vault_delete(run: Invocation) -> Any:
    services.vault_delete(actor=run.actor, name=run.options.name, force=run.options.force)


def _vault_list_deleted(run: Invocation) -> Any:
    return [shapes.deleted_vault(item) for item in services.vault_list_deleted(actor=run.actor)]


def _vault_recover(run: Invocation) -> Any:
    return shapes.vault(services.vault_recover(actor=run.actor, name=run.options.name))


def _vault_purge(run: Invocation) -> Any:
    services.vault_purge(actor=run.actor, name=run.options.name)


def _register_activity(commands: Any) -> None:
    listing = leaf(
        commands,
        "list",
        _activity_list,
        "List activity entries, newest first.",
        columns=(
            "seq",
            "time",
            "identity.name",
            "operationName",
            "target",
            "resultType",
            "durationMs",
            "face",
        ),
    )
    listing.add_argument("--vault-name")
    listing.add_argument("--operation", choices=Operation.values)
    listing.add_argument("--result", choices=Result.values)
    listing.add_argument("--face", choices=Face.values)
    listing.add_argument("--actor", help="The principal's user name.")
    listing.add_argument("--since", type=moment)
    listing.add_argument("--until", type=moment)
    listing.add_argument("--top", type=int, default=100, help="At most this many entries.")
    verify = leaf(commands, "verify", _activity_verify, "Check the activity log's hash chain.")
    verify.add_argument(
        "--anchor",
        metavar="SEQ:HASH",
        help="A head recorded earlier (printed by a previous verify); proves nothing was cut off.",
    )


def _activity_list(run: Invocation) -> Any:
    options = run.options
    entries = selectors.activity_list(
        actor=run.actor,
        vault=options.vault_name,
        operation=options.operation,
        result=options.result,
        face=options.face,
        actor_name=options.actor,
        since=options.since,
        until=options.until,
    )[: max(options.top, 0)]
    return [shapes.activity_entry(entry) for entry in entries]


class ChainBroken(Exception):
    """`kv activity verify` found tampering: the report is printed, then the exit is non-zero."""

    def __init__(self, report: dict[str, Any]):
        super().__init__(report["problem"])
        self.report = report


def _activity_verify(run: Invocation) -> Any:
    anchor = None
    if run.options.anchor:
        seq, _, head_hash = run.options.anchor.partition(":")
        if not seq.isdigit() or len(head_hash) != 64:
            raise BadParameter("--anchor must look like 1234:<64 hex digits>.")
        anchor = (int(seq), head_hash.lower())
    report = selectors.activity_verify(actor=run.actor, anchor=anchor).as_dict()
    if not report["ok"]:
        raise ChainBroken(report)
    return report


def _register_roles(commands: Any) -> None:
    definitions = group(commands, "definition", "Built-in role definitions.")
    leaf(
        definitions,
        "list",
        _role_definition_list,
        "List the built-in roles.",
        columns=("roleName", "name", "description"),
    )
    assignments = group(commands, "assignment", "Role assignments.")
    create = leaf(assignments, "create", _role_assignment_create, "Assign a role at a scope.")
    _assignee(create, required=True)
    create.add_argument("--role", required=True, help="A role name or id.")
    create.add_argument("--scope", required=True, help=_SCOPE_HELP)
    listing = leaf(
        assignments,
        "list",
        _role_assignment_list,
        "List role assignments.",
        columns=("principalName", "principalType", "roleDefinitionName", "scope"),
    )
    _assignee(listing, required=False)
    listing.add_argument("--role")
    listing.add_argument("--scope", help=_SCOPE_HELP)
    listing.add_argument(
        "--include-inherited",
        action="store_true",
        help="With --scope: also assignments at the scopes above it.",
    )
    delete = leaf(assignments, "delete", _role_assignment_delete, "Remove a role assignment.")
    delete.add_argument("--ids", help="The assignment's id (or name).")
    _assignee(delete, required=False)
    delete.add_argument("--role")
    delete.add_argument("--scope", help=_SCOPE_HELP)


_SCOPE_HELP = "/resourceGroups/{group}[/providers/Microsoft.KeyVault/vaults/{vault}[/keys/{key}]]"


def _assignee(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument(
        "--assignee",
        required=required,
        help="A user name, a group name, or an application's client id.",
    )


def _role_definition_list(run: Invocation) -> Any:
    return [role.as_dict() for role in services.role_definition_list(actor=run.actor)]


def _role_assignment_create(run: Invocation) -> Any:
    options = run.options
    return shapes.role_assignment(
        services.role_assignment_create(
            actor=run.actor, assignee=options.assignee, role=options.role, scope=options.scope
        )
    )


def _role_assignment_list(run: Invocation) -> Any:
    options = run.options
    found = services.role_assignment_list(
        actor=run.actor,
        scope=options.scope,
        assignee=options.assignee,
        role=options.role,
        include_inherited=options.include_inherited,
    )
    return [shapes.role_assignment(item) for item in found]


def _role_assignment_delete(run: Invocation) -> Any:
    options = run.options
    services.role_assignment_delete(
        actor=run.actor,
        assignment_id=options.ids,
        assignee=options.assignee,
        role=options.role,
        scope=options.scope,
    )
