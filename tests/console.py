"""Helpers for console view tests: htmx requests, and what a fragment looks like."""

from typing import Any

from django.test import Client

HTMX = {"HX-Request": "true", "HX-Current-URL": "http://testserver/"}


def htmx_get(client: Client, url: str, **data: Any) -> Any:
    return client.get(url, data, headers=HTMX)


def htmx_post(client: Client, url: str, data: dict[str, Any] | None = None) -> Any:
    return client.post(url, data or {}, headers=HTMX)


def is_fragment(response: Any) -> bool:
    """A partial answer: no page around it."""
    return b"<html" not in response.content and b'<nav class="primary"' not in response.content


def text(response: Any) -> str:
    return str(response.content.decode())
