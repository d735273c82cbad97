import os
import sys
from collections.abc import Callable, Iterable
from typing import Any

from django.core.wsgi import get_wsgi_application
from django.http import HttpResponse

from kvconsole import jsonlog

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kvconsole.settings")

_django = get_wsgi_application()


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Django's application, with a response that is not streamed handed over as a list of
    its one body. granian sends a list whole, with its Content-Length; any other iterable it
    pulls chunk by chunk from its own thread and sends chunked, which costs a vault endpoint
    request a sixth of its CPU."""
    response = _django(environ, start_response)
    if not isinstance(response, HttpResponse):
        return response
    try:
        return [response.content]
    finally:
        # What the server would call once it had sent the body: request_finished.
        response.close()


# A server's standard output carries its JSON log lines; other processes (the kv CLI,
# scripts) answer there, and get the lines on standard error as settings.LOGGING says.
jsonlog.send_lines_to(sys.stdout)
