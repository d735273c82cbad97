"""Creating a production deployment's key files, once.

A development deployment creates its key files on first use. A production one never does
(a lost file quietly replaced would orphan every key sealed under it), so an operator
creates them deliberately before the first start: each missing file is created (mode 0600)
by the module that reads it, and one that exists is never touched.
"""

from pathlib import Path

from django.conf import settings

from accounts import tokens
from accounts.models import User
from kvconsole import secretfiles
from vaults import activity, webhooks
from vaults.activity import operation
from vaults.models import Operation
from vaults.permissions import DEPLOYMENT, Action, authorize

from .. import protection

KEY_FILES = {
    "KVCONSOLE_MASTER_KEY_FILE": protection.master_keyring.get,
    "KVCONSOLE_BACKUP_KEY_FILE": protection.load_backup_key,
    "KVCONSOLE_TOKEN_KEY_FILE": tokens.jwks,
    "KVCONSOLE_WEBHOOK_KEY_FILE": webhooks.load_webhook_key,
}


@operation(Operation.KEY_FILES_CREATE)
def key_files_create(*, actor: User) -> dict[str, dict[str, object]]:
    """Create whichever of the deployment's key files are missing; for each setting, its
    file and whether it was created now."""
    activity.describe(target="keyFiles")
    authorize(actor, Action.KEY_FILES_CREATE, DEPLOYMENT)
    created: dict[str, dict[str, object]] = {}
    with secretfiles.creating_key_files():
        for name, load in KEY_FILES.items():
            path = Path(getattr(settings, name))
            existed = path.exists()
            load()
            created[name] = {"path": str(path), "created": not existed}
    return created
