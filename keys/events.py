"""The Event Grid events about keys: their `data`, and the new-version event every create,
import, rotation and revert raises."""

from datetime import datetime
from typing import Any

from vaults import events
from vaults.models import Event, EventType

from .models import KeyVersion


def key_data(version: KeyVersion) -> dict[str, Any]:
    """Event Grid's `data` for a key version: PascalCase, times in epoch seconds."""
    key = version.key
    return {
        "Id": f"{key.vault.uri}keys/{key.name}/{version.version}",
        "VaultName": key.vault.name,
        "ObjectType": "Key",
        "ObjectName": key.name,
        "Version": version.version,
        "NBF": _seconds(version.not_before),
        "EXP": _seconds(version.expires),
    }


def emit_for_version(
    event_type: EventType, version: KeyVersion, *, once: str | None = None
) -> Event | None:
    """Record an event about a version, in the caller's transaction."""
    key = version.key
    return events.emit(
        event_type,
        vault=key.vault,
        subject=key.name,
        data=key_data(version),
        key_name=key.name,
        once=once,
    )


def _seconds(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment is not None else None
