"""The one place that decides who may do what.

Every service calls `authorize(actor, action, obj)` before it acts. Actions are Azure's
management actions and data actions, so roles and access policies can map onto them.
Today only superusers and system principals are allowed; role assignments and access
policies plug in here without any caller changing.
"""

from enum import StrEnum
from typing import Protocol

from django.db import models
from django.db.models import QuerySet

from accounts.models import User
from kvconsole.errors import Forbidden

from .models import ResourceGroup, Vault


class Action(StrEnum):
    RESOURCE_GROUP_READ = "Microsoft.Resources/subscriptions/resourceGroups/read"
    RESOURCE_GROUP_WRITE = "Microsoft.Resources/subscriptions/resourceGroups/write"
    RESOURCE_GROUP_DELETE = "Microsoft.Resources/subscriptions/resourceGroups/delete"
    VAULT_READ = "Microsoft.KeyVault/vaults/read"
    VAULT_WRITE = "Microsoft.KeyVault/vaults/write"
    VAULT_DELETE = "Microsoft.KeyVault/vaults/delete"
    DELETED_VAULT_READ = "Microsoft.KeyVault/locations/deletedVaults/read"
    VAULT_RECOVER = "Microsoft.KeyVault/vaults/recover/action"
    VAULT_PURGE = "Microsoft.KeyVault/locations/deletedVaults/purge/action"
    KEY_READ = "Microsoft.KeyVault/vaults/keys/read"
    KEY_CREATE = "Microsoft.KeyVault/vaults/keys/create/action"
    KEY_IMPORT = "Microsoft.KeyVault/vaults/keys/import/action"
    KEY_UPDATE = "Microsoft.KeyVault/vaults/keys/update/action"
    KEY_ROTATE = "Microsoft.KeyVault/vaults/keys/rotate/action"
    KEY_DELETE = "Microsoft.KeyVault/vaults/keys/delete"
    KEY_RECOVER = "Microsoft.KeyVault/vaults/keys/recover/action"
    KEY_PURGE = "Microsoft.KeyVault/vaults/keys/purge/action"
    KEY_BACKUP = "Microsoft.KeyVault/vaults/keys/backup/action"
    KEY_RESTORE = "Microsoft.KeyVault/vaults/keys/restore/action"
    KEY_ENCRYPT = "Microsoft.KeyVault/vaults/keys/encrypt/action"
    KEY_DECRYPT = "Microsoft.KeyVault/vaults/keys/decrypt/action"
    KEY_SIGN = "Microsoft.KeyVault/vaults/keys/sign/action"
    KEY_VERIFY = "Microsoft.KeyVault/vaults/keys/verify/action"
    KEY_WRAP = "Microsoft.KeyVault/vaults/keys/wrap/action"
    KEY_UNWRAP = "Microsoft.KeyVault/vaults/keys/unwrap/action"
    # Deployment-wide; Azure has no equivalent because Microsoft holds its master keys.
    MASTER_KEY_ROTATE = "kvconsole/masterKeys/rotate/action"
    ACTIVITY_READ = "kvconsole/activity/read"


class Securable(Protocol):
    """Anything access can be granted on: it names its ancestors, nearest first."""

    def permission_chain(self) -> list[models.Model]: ...


class Deployment:
    """The whole deployment: the scope of creating resource groups."""

    def permission_chain(self) -> list[models.Model]:
        return []

    def __str__(self) -> str:
        return "/"


DEPLOYMENT = Deployment()


def is_deployment_principal(actor: User) -> bool:
    """Superusers and system principals act on the whole deployment."""
    return actor.is_active and (actor.is_superuser or actor.kind == User.Kind.SYSTEM)


def authorize(actor: User, action: Action, obj: Securable) -> None:
    """Raise Forbidden unless `actor` may perform `action` on `obj`."""
    if is_deployment_principal(actor):
        return
    raise Forbidden(
        f"The user, group or application '{actor.username}' (oid={actor.oid}) does not "
        f"have permission to perform action '{action}' on {_scope(obj)}.",
        inner_code="ForbiddenByRbac",
    )


def _scope(obj: Securable) -> str:
    """The vault (or group) a refusal names, as Azure does: never the key itself, so that
    a refusal reads the same whether or not the key exists."""
    for item in obj.permission_chain():
        if isinstance(item, Vault):
            return f"key vault '{item.name};location={item.location}'"
        if isinstance(item, ResourceGroup):
            return f"resource group '{item.name}'"
    return "this deployment"


def visible[M: models.Model](actor: User, queryset: QuerySet[M]) -> QuerySet[M]:
    """The part of `queryset` that `actor` may see, filtered in SQL."""
    return queryset if is_deployment_principal(actor) else queryset.none()
