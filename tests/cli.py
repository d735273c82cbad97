"""Running `manage.py kv ...` in process, as the CLI tests do."""

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command


def kv(*args: str) -> Any:
    """The command's output: parsed JSON when it printed JSON, else the text."""
    out = StringIO()
    call_command("kv", *args, stdout=out)
    text = out.getvalue()
    return json.loads(text) if text.strip().startswith(("{", "[")) else text


def kv_fails(*args: str) -> CommandError:
    """The error of a command that must fail."""
    with pytest.raises(CommandError) as raised:
        kv(*args)
    return raised.value
