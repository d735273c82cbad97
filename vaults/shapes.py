"""Azure Resource Manager shapes of resource groups and vaults, and AuditEvent-like entries."""

from typing import Any

from django.conf import settings

from .models import ActivityEntry, ResourceGroup, Vault


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
            "tenantId": settings.KVCONSOLE_SUBSCRIPTION_ID,
            "vaultUri": vault.uri,
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
