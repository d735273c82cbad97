"""The floor under a vault endpoint sign: a WSGI application that does only what any server
answering `/sign` must do, served by the production server's own granian command line.

It reads the JSON body, decodes the digest, signs it with an RSA-2048 key and answers the
signature as JSON: nothing of kvconsole's. With KVCONSOLE_FLOOR=audit it also appends one
activity entry to the deployment's log through the INSERT every key operation commits
(`vaults.activity`), and nothing else of ours. tests/benchmarks/test_endpoint.py measures
both beside the production server, so the report shows how much of the sign target the
server, the sign and the audit write take before any of the request path does.
"""

import base64
import json
import os
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_SIGNING = (padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
_AUDIT = os.environ.get("KVCONSOLE_FLOOR") == "audit"

if _AUDIT:
    import django

    django.setup()

    from django.db import connection
    from django.utils import timezone

    from vaults.activity import _insert_chained
    from vaults.models import Face, Operation, Result

    _ACTOR = uuid.uuid4()


def _audit(started: float) -> None:
    """One entry, as a successful sign by an application writes it."""
    _insert_chained(
        {
            "time": timezone.now(),
            "actor_oid": _ACTOR,
            "actor_name": "floor-benchmark",
            "actor_display": "floor benchmark",
            "actor_kind": "application",
            "operation": Operation.KEY_SIGN,
            "resource_group": "bench-rg",
            "vault_name": "bench-vault",
            "target": "vaults/bench-vault/keys/floor/0123456789abcdef0123456789abcdef",
            "result": Result.SUCCESS,
            "status_code": 200,
            "message": "",
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            "face": Face.API,
            "client_ip": "127.0.0.1",
            "correlation_id": "",
            "api_version": "2025-07-01",
            "request_id": str(uuid.uuid4()),
        },
        connection,
    )


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    started = time.perf_counter()
    body = json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
    digest = base64.urlsafe_b64decode(body["value"] + "=" * (-len(body["value"]) % 4))
    signature = _KEY.sign(digest, *_SIGNING)
    if _AUDIT:
        _audit(started)
    answer = json.dumps(
        {"kid": "floor", "value": base64.urlsafe_b64encode(signature).rstrip(b"=").decode()}
    ).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))]
    )
    return [answer]
