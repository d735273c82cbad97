"""The vault endpoint, driven by the official Azure SDK for JavaScript.

tests/js/sdk.mjs runs in Node against the live deployment and checks every result it can with
Node's own crypto; this test gives it an application and then reads what reached the server.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest
from django.conf import settings

from keys.models import Key, KeyVersion
from tests.live import LiveDeployment
from tests.sdk import Sdk
from vaults.models import ActivityEntry, Face, Result, Vault

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("one_entry_per_request"),
]

JS_DIRECTORY = Path(__file__).resolve().parents[1] / "js"


def test_the_javascript_sdk_manages_keys_and_uses_them(
    deployment: LiveDeployment, sdk: Sdk, vault: Vault
) -> None:
    if not (JS_DIRECTORY / "node_modules" / "@azure" / "keyvault-keys").is_dir():
        pytest.fail("The JavaScript SDK is not installed: run `npm ci --prefix tests/js`.")
    app = sdk.app("Key Vault Crypto Officer", vault=vault)
    mark = deployment.log.mark()
    # Only what the script needs: no proxy or AZURE_* settings from the developer's shell, and
    # no NODE_EXTRA_CA_CERTS, so only the CA the script is given makes the server trusted.
    environment = {
        "PATH": os.environ["PATH"],
        "KEY_VAULT_URL": deployment.vault_url(vault.name),
        "AZURE_AUTHORITY_HOST": deployment.authority,
        "AZURE_TENANT_ID": settings.KVCONSOLE_TENANT_ID,
        "AZURE_CLIENT_ID": app.client_id,
        "AZURE_CLIENT_SECRET": app.secret,
        "CA_FILE": deployment.ca_file,
    }
    completed = subprocess.run(
        ["node", "sdk.mjs"],
        cwd=JS_DIRECTORY,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    try:
        report = json.loads(completed.stdout)
    except json.JSONDecodeError:
        pytest.fail(
            f"sdk.mjs exited with {completed.returncode} and no report:\n{completed.stderr}"
        )
    failed = {name: outcome for name, outcome in report["checks"].items() if outcome is not True}
    assert not failed, json.dumps(failed, indent=2)
    assert completed.returncode == 0, completed.stderr

    live_keys = Key.objects.filter(vault=vault, deleted_at__isnull=True)
    stored = {
        key.name: key.current_version.version
        for key in live_keys.select_related("current_version")
        if key.current_version is not None
    }
    assert stored == report["keys"] and len(stored) == 8
    origins = KeyVersion.objects.filter(key__name="js-ec-p256").values_list("origin", flat=True)
    assert list(origins) == ["generated", "generated", "rotated"]

    operations = set(
        ActivityEntry.objects.filter(
            face=Face.API, result=Result.SUCCESS, actor_name=app.principal.username
        ).values_list("operation", flat=True)
    )
    assert {
        "KeyCreate",
        "KeyImport",
        "KeyGet",
        "KeyList",
        "KeyListVersions",
        "KeySign",
        "KeyVerify",
        "KeyEncrypt",
        "KeyDecrypt",
        "KeyWrap",
        "KeyUnwrap",
        "KeyRotate",
        "KeyDelete",
        "KeyRecover",
    } <= operations
    assert not ActivityEntry.objects.filter(face=Face.API, status_code__gte=500).exists()

    vault_requests = [
        (method, path)
        for host, method, path in deployment.log.since(mark)
        if host.startswith(f"{vault.name}.")
    ]
    # A CryptographyClient on a versionless key id leaves the version segment empty.
    assert ("POST", "/keys/js-ec-p256//sign") in vault_requests
    # The recover poller skips the POST when the key still answers; it must not have.
    assert ("POST", "/deletedkeys/js-rsa/recover") in vault_requests
    # The SDK wraps with RSA-OAEP locally unless the client is made remote-only.
    imported = report["keys"]["js-rsa-imported"]
    assert ("POST", f"/keys/js-rsa-imported/{imported}/wrapkey") in vault_requests
