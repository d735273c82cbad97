"""Plumbing shared by the `kv` command's subcommands: argument types and output."""

import argparse
import base64
import binascii
import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from io import TextIOBase
from typing import Any, cast

from rich import box
from rich.console import Console
from rich.table import Table

from accounts.models import User


@dataclass(frozen=True)
class Invocation:
    """One parsed `kv` command: its options, the principal it runs as, and where a command
    that writes its output as it goes (instead of returning it) writes it."""

    # Options can hold key material or passwords given on the command line.
    options: argparse.Namespace = field(repr=False)
    actor: User
    stdout: TextIOBase = field(default_factory=lambda: cast(TextIOBase, sys.stdout), repr=False)


class ReportedFailure(Exception):
    """A command has written its report and must still exit non-zero, so that cron (or a
    script) notices the part that failed."""

    def __init__(self, message: str, *, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


Handler = Callable[[Invocation], Any]


def leaf(
    subparsers: Any,
    name: str,
    handler: Handler,
    help_text: str,
    *,
    columns: Iterable[str] = (),
) -> argparse.ArgumentParser:
    """Add one runnable subcommand; `columns` choose what `--output table` shows of a list."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help_text, description=help_text
    )
    parser.add_argument(
        "--output", "-o", choices=["json", "table"], default="json", help="Output format."
    )
    parser.add_argument(
        "--as",
        dest="as_principal",
        metavar="USERNAME",
        help="Run as this principal (default: the system principal cli:<os user>).",
    )
    parser.set_defaults(handler=handler, columns=tuple(columns))
    return parser


def group(subparsers: Any, name: str, help_text: str) -> Any:
    """A command group such as `key` whose subcommands are required."""
    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    return parser.add_subparsers(dest=f"{name}_command", required=True, metavar="COMMAND")


def boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered in {"true", "yes", "1"}:
        return True
    if lowered in {"false", "no", "0"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got '{text}'")


def moment(text: str) -> datetime:
    """An ISO-8601 time; a time without a zone is taken as UTC, as az does."""
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not an ISO-8601 date and time, such as 2027-01-31T00:00:00Z"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def base64_bytes(text: str) -> bytes:
    """Standard or URL-safe base64, padded or not."""
    cleaned = text.strip().replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise argparse.ArgumentTypeError("not valid base64") from None


def tags(values: list[str] | None) -> dict[str, str] | None:
    """az-style `--tags a=1 b=2`; a bare name gets an empty value, `--tags ""` clears all."""
    if values is None:
        return None
    result: dict[str, str] = {}
    for value in values:
        if not value:
            continue
        name, _, tag_value = value.partition("=")
        result[name] = tag_value
    return result


def add_tags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tags", nargs="*", metavar="NAME=VALUE", help="Space-separated tags.")


def render(result: Any, *, output: str, columns: tuple[str, ...], stream: Any = None) -> None:
    """Print a result as Azure-shaped JSON, or as a table."""
    stream = stream or sys.stdout
    if result is None:
        return
    if output == "json":
        stream.write(json.dumps(result, indent=2, default=str) + "\n")
        return
    console = Console(file=stream, width=200, highlight=False, soft_wrap=True)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False)
    if isinstance(result, list):
        names = list(columns) or _scalar_fields(result[0] if result else {})
        for name in names:
            table.add_column(name.split(".")[-1])
        for row in result:
            table.add_row(*(_cell(_lookup(row, name)) for name in names))
    else:
        table.add_column("Field")
        table.add_column("Value")
        for name, value in _flatten(result):
            table.add_row(name, _cell(value))
    console.print(table)


def _lookup(row: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        row = row.get(part) if isinstance(row, dict) else None
    return row


def _scalar_fields(row: dict[str, Any]) -> list[str]:
    return [name for name, value in row.items() if not isinstance(value, dict | list)]


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if not isinstance(value, dict):
        return [(prefix or "value", value)]
    rows: list[tuple[str, Any]] = []
    for name, item in value.items():
        key = f"{prefix}.{name}" if prefix else name
        rows.extend(_flatten(item, key) if isinstance(item, dict) else [(key, item)])
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)
