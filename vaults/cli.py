"""`kv group ...`, `kv vault ...` and `kv activity ...`: parse, call one service, shape."""

import argparse
from typing import Any

from kvconsole.cli import Invocation, add_tags, boolean, group, leaf, moment, tags
from kvconsole.errors import BadParameter

from . import selectors, services, shapes
from .models import Face, Operation, Result, Vault


def register(commands: Any) -> None:
    _register_groups(group(commands, "group", "Manage resource groups."))
    _register_vaults(group(commands, "vault", "Manage vaults."))
    _register_activity(group(commands, "activity", "Read and verify the activity log."))


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
    update.add_argument("--enable-rbac-authorization", type=boolean)
    update.add_argument("--retention-days", type=int)
    add_tags(update)

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
    options = run.options
    return shapes.vault(
        services.vault_update(
            actor=run.actor,
            name=options.name,
            tags=tags(options.tags),
            sku=options.sku,
            purge_protection=options.enable_purge_protection,
            permission_model=_permission_model(options.enable_rbac_authorization),
            retention_days=options.retention_days,
        )
    )


def _vault_list(run: Invocation) -> Any:
    vaults = services.vault_list(actor=run.actor, resource_group=run.options.resource_group)
    return [shapes.vault(item) for item in vaults]


def _vault_show(run: Invocation) -> Any:
    return shapes.vault(services.vault_get(actor=run.actor, name=run.options.name))


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
