"""Azure Resource Manager shapes of resource groups and vaults, and AuditEvent-like entries."""

from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group

from accounts import roles
from accounts.models import User

from .models import ActivityEntry, ResourceGroup, RoleAssignment, Vault
from .permissions import PolicyEntry, Principal, Right


def resource_group(group: ResourceGroup) -> dict[str, Any]:
    return {
        "id": group.resource_id,
        "name": group.name,
        "type": "Microsoft.Resources/resourceGroups",
        "location": group.location,
        "tags": group.tags or None,
        "properties": {"provisioningState": "Succeeded"},
    }


def vault(vault: Vault) -> dict[str, Any]:
    return {
        "id": vault.resource_id,
        "name": vault.name,
        "type": "Microsoft.KeyVault/vaults",
        "location": vault.location,
        "resourceGroup": vault.resource_group.name,
        "tags": vault.tags or None,
        "properties": {
            "sku": {"family": "A", "name": vault.sku},
            "tenantId": settings.KVCONSOLE_TENANT_ID,
            "vaultUri": vault.uri,
            "hostAliases": [alias.host for alias in vault.host_aliases.all()],
            "enableSoftDelete": True,
            "softDeleteRetentionInDays": vault.soft_delete_retention_days,
            "enablePurgeProtection": vault.purge_protection or None,
            "enableRbacAuthorization": vault.permission_model == Vault.PermissionModel.RBAC,
            "provisioningState": "Succeeded",
        },
    }


def deleted_vault(vault: Vault) -> dict[str, Any]:
    assert vault.deleted_at is not None and vault.scheduled_purge_at is not None
    return {
        "id": f"/subscriptions/{settings.KVCONSOLE_SUBSCRIPTION_ID}/providers/Microsoft.KeyVault"
        f"/locations/{vault.location}/deletedVaults/{vault.name}",
        "name": vault.name,
        "type": "Microsoft.KeyVault/deletedVaults",
        "properties": {
            "vaultId": vault.resource_id,
            "location": vault.location,
            "deletionDate": vault.deleted_at.isoformat(),
            "scheduledPurgeDate": vault.scheduled_purge_at.isoformat(),
            "purgeProtectionEnabled": vault.purge_protection,
            "tags": vault.tags or None,
        },
    }


def activity_entry(entry: ActivityEntry) -> dict[str, Any]:
    """An entry with Azure AuditEvent field names where Azure has one."""
    return {
        "seq": entry.seq,
        "time": entry.time.isoformat(),
        "operationName": entry.operation,
        "resultType": entry.result,
        "httpStatusCode": entry.status_code,
        "resultDescription": entry.message,
        "durationMs": entry.duration_ms,
        "callerIpAddress": entry.client_ip,
        "correlationId": entry.correlation_id,
        "identity": {
            "oid": str(entry.actor_oid) if entry.actor_oid else None,
            "name": entry.actor_name,
            "displayName": entry.actor_display,
            "kind": entry.actor_kind,
        },
        "resourceGroup": entry.resource_group,
        "vaultName": entry.vault_name,
        "target": entry.target,
        "face": entry.face,
        "hash": entry.hash,
    }


def principal(holder: Principal) -> dict[str, Any]:
    """A principal as Azure names one: object id, type and display name."""
    if isinstance(holder, Group):
        return {"principalId": None, "principalType": "Group", "principalName": holder.name}
    kind = "ServicePrincipal" if holder.kind == User.Kind.APPLICATION else "User"
    return {"principalId": str(holder.oid), "principalType": kind, "principalName": holder.username}


def role_assignment(assignment: RoleAssignment) -> dict[str, Any]:
    role = roles.ROLES_BY_ID[str(assignment.role_id)]
    holder: Principal = assignment.group or assignment.user  # type: ignore[assignment]
    return {
        "id": f"{assignment.scope}/providers/Microsoft.Authorization/roleAssignments/"
        f"{assignment.uid}",
        "name": str(assignment.uid),
        "type": "Microsoft.Authorization/roleAssignments",
        "scope": assignment.scope,
        "roleDefinitionId": f"/providers/Microsoft.Authorization/roleDefinitions/{role.id}",
        "roleDefinitionName": role.name,
        **principal(holder),
        "createdBy": assignment.created_by_name,
        "createdOn": assignment.created_at.isoformat(),
    }


def access_policy(entry: PolicyEntry) -> dict[str, Any]:
    """An access-policy entry as ARM shows one (keys only: this service holds only keys)."""
    described = principal(entry.principal)
    return {
        "tenantId": settings.KVCONSOLE_TENANT_ID,
        "objectId": described["principalId"],
        "principalType": described["principalType"],
        "principalName": described["principalName"],
        "permissions": {"keys": list(entry.permissions)},
    }


def right(item: Right) -> dict[str, Any]:
    def grants(found: tuple[Any, ...]) -> list[dict[str, str]]:
        return [{name: value for name, value in vars(grant).items() if value} for grant in found]

    return {
        "action": str(item.action),
        "permission": item.action.permission,
        "allowed": item.allowed,
        "grantedBy": grants(item.grants),
        "ignored": grants(item.ignored),
    }
