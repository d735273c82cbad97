"""Every operation on keys and key versions: authorized, recorded, and the only code that
touches key material.

Services take names (vault, key, version) as the faces receive them and resolve them
here, in one query on the hot path. A missing key is reported only to actors who may act
on the vault, so names do not leak to outsiders.
"""

from ._shared import UNCHANGED
from .backup import (
    key_backup,
    key_restore,
)
from .expiry import (
    ExpiryCheck,
    ExpiryNotice,
    key_check_expiry,
)
from .key_files import key_files_create
from .lifecycle import (
    key_create,
    key_delete,
    key_get,
    key_get_deleted,
    key_import,
    key_list,
    key_list_deleted,
    key_list_versions,
    key_purge,
    key_recover,
    key_revert,
    key_rotate,
    key_update,
)
from .master_key import (
    MasterKeyRotation,
    master_key_rotate,
)
from .operations import (
    OperationResult,
    VerifyResult,
    key_decrypt,
    key_encrypt,
    key_sign,
    key_unwrap,
    key_verify,
    key_wrap,
    random_bytes,
)
from .rotation import (
    RotationPolicy,
    key_rotate_if_due,
    key_rotation_policy_get,
    key_rotation_policy_set,
)

__all__ = [
    "UNCHANGED",
    "ExpiryCheck",
    "ExpiryNotice",
    "MasterKeyRotation",
    "OperationResult",
    "RotationPolicy",
    "VerifyResult",
    "key_backup",
    "key_check_expiry",
    "key_create",
    "key_decrypt",
    "key_delete",
    "key_encrypt",
    "key_files_create",
    "key_get",
    "key_get_deleted",
    "key_import",
    "key_list",
    "key_list_deleted",
    "key_list_versions",
    "key_purge",
    "key_recover",
    "key_restore",
    "key_revert",
    "key_rotate",
    "key_rotate_if_due",
    "key_rotation_policy_get",
    "key_rotation_policy_set",
    "key_sign",
    "key_unwrap",
    "key_update",
    "key_verify",
    "key_wrap",
    "master_key_rotate",
    "random_bytes",
]
