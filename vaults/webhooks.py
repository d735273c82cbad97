"""Webhook signing: each rule's secret, derived rather than stored, and the signature header.

A rule's secret is HMAC-SHA256 of the deployment's webhook key (a file, like the master and
backup keys) over the rule's uid and signing salt. The database holds no secret: someone who
reads it cannot forge a delivery. Re-keying a rule draws a new salt, and so a new secret;
replacing the key file changes every rule's secret at once.
"""

import base64
import hashlib
import hmac
import json
import os
from pathlib import Path
from threading import Lock

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from kvconsole import secretfiles

from .models import AlertRule

SIGNATURE_HEADER = "X-Kvconsole-Signature"
DELIVERY_HEADER = "X-Kvconsole-Delivery"
KEY_BYTES = 32

_loaded: tuple[tuple[int, int, int], bytes] | None = None
_lock = Lock()


def rule_secret(rule: AlertRule) -> str:
    """The signing secret of `rule`, as its receiver is given it (64 hex digits)."""
    message = f"kvconsole webhook signing secret\n{rule.uid}\n{rule.signing_salt}".encode()
    return hmac.new(_webhook_key(), message, hashlib.sha256).hexdigest()


def signature(secret: str, body: bytes) -> str:
    """The signature header's value: HMAC-SHA256 over the exact body bytes, keyed with the
    secret's text."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def load_webhook_key() -> None:
    """Read the webhook key now (creating its file where that is allowed), not at the first
    delivery."""
    _webhook_key()


def _webhook_key() -> bytes:
    """The deployment's webhook key, read again whenever its file is replaced."""
    global _loaded
    path = Path(settings.KVCONSOLE_WEBHOOK_KEY_FILE)
    if not path.exists():
        secretfiles.create_development_file(
            path,
            json.dumps(
                {"format": 1, "key": base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")}
            ),
        )
    stamp = secretfiles.stamp(path)
    with _lock:
        if _loaded is None or _loaded[0] != stamp:
            _loaded = (stamp, _read_key(path))
        return _loaded[1]


def _read_key(path: Path) -> bytes:
    try:
        key = base64.b64decode(json.loads(path.read_text())["key"], validate=True)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ImproperlyConfigured(f"The webhook key file {path} is unreadable.") from error
    if len(key) != KEY_BYTES:
        raise ImproperlyConfigured(f"The webhook key file {path} is malformed.")
    return key
