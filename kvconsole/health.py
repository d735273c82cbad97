"""Probes for a process supervisor or load balancer: `/healthz` and `/readyz`.

They are answered on any host before any other middleware runs (kvconsole/observability.py):
no sign-in, no token, no host check (a probe calls an address, not a vault's name), no
activity entry.

* `/healthz`: the process answers; it touches nothing else, so a database outage does not
  get healthy processes restarted.
* `/readyz`: the process can serve: the database answers a query and the master keyring is
  loaded. Otherwise 503 with what is missing; the details go to the error log, not to an
  unauthenticated caller.
"""

import logging

from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse

from keys.protection import master_keyring

logger = logging.getLogger(__name__)


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    reasons = []
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        logger.exception("Not ready: the database does not answer")
        reasons.append("The database does not answer.")
    else:
        # Reading the keyring may ask the database whether keys are stored under it.
        try:
            master_keyring.get()
        except ImproperlyConfigured:
            logger.exception("Not ready: the master keyring cannot be loaded")
            reasons.append("The master key is not loaded.")
    if reasons:
        return JsonResponse({"status": "unavailable", "reasons": reasons}, status=503)
    return JsonResponse({"status": "ready"})
