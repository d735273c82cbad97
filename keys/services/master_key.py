"""Rotating the deployment master key."""

from collections.abc import Callable
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import QuerySet

from accounts.models import User
from kvconsole.errors import BadParameter
from vaults import activity
from vaults.activity import operation
from vaults.models import Operation
from vaults.permissions import DEPLOYMENT, Action, authorize

from .. import protection
from ..models import KeyVersion
from ..protection import Keyring, ProtectedMaterial


@dataclass(frozen=True)
class MasterKeyRotation:
    primary: str
    rewrapped: int
    resumed: bool


@operation(Operation.MASTER_KEY_ROTATE)
def master_key_rotate(
    *,
    actor: User,
    batch_size: int = 500,
    progress: Callable[[int, int], None] | None = None,
) -> MasterKeyRotation:
    """Re-wrap every data key under a new master key, in batches; rerun to resume."""
    authorize(actor, Action.MASTER_KEY_ROTATE, DEPLOYMENT)
    if batch_size < 1:
        raise BadParameter("The batch size must be at least 1.")
    with protection.rotation_lock():
        keyring, resumed = protection.start_master_key_rotation()
        activity.describe(target=f"masterKeys/{keyring.primary}")
        pending = KeyVersion.objects.exclude(master_key_id=keyring.primary)
        total, rewrapped = pending.count(), 0
        while (done := _rewrap_batch(pending, keyring, batch_size)) is not None:
            rewrapped += done
            if progress is not None:
                progress(rewrapped, total)
    return MasterKeyRotation(keyring.primary, rewrapped, resumed)


def _rewrap_batch(pending: QuerySet[KeyVersion], keyring: Keyring, batch_size: int) -> int | None:
    """Re-wrap one batch and return its size; once none is left, retire the old keys and
    return None."""
    with transaction.atomic():
        batch = list(
            pending.select_related("key__vault").select_for_update(of=("self",), no_key=True)[
                :batch_size
            ]
        )
        if not batch:
            # Retire the old keys only while no new version can be written, so none is sealed
            # under a retired key between this check and the keyring change. On PostgreSQL
            # writers take ROW EXCLUSIVE before sealing (see add_version), which SHARE blocks;
            # SQLite's BEGIN IMMEDIATE already excludes every other writer.
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute(f"LOCK TABLE {KeyVersion._meta.db_table} IN SHARE MODE")
            if pending.exists():
                return 0
            protection.finish_master_key_rotation(keyring)
            return None
        for version in batch:
            version.wrapped_data_key = protection.rewrap_data_key(
                ProtectedMaterial(
                    version.master_key_id, version.wrapped_data_key, version.sealed_material
                ),
                aad=version.storage_aad,
                keyring=keyring,
            )
            version.master_key_id = keyring.primary
        KeyVersion.objects.bulk_update(batch, ["wrapped_data_key", "master_key_id"])
    return len(batch)
