"""Rate limits of the vault endpoint: per vault and per principal, shared by every server
process on the machine.

Azure throttles each vault by the requests it receives in 10-second windows, key creations
on a budget of their own (reference §10), and a subscription at five times a vault's figure.
Here a vault has those two budgets, and a principal one across every vault; a request that
would overdraw any of them is refused with 429 and `Retry-After`, and counts against none
(as in Azure, a throttled request does not count).

The counters are fixed windows aligned on the epoch, kept in a small file that every
process maps into memory (MAP_SHARED) and changes only under an exclusive `flock`, so the
workers of one server, and the CLI beside them, draw on one budget. A check is a hash, two
lock system calls and a few reads of shared memory: no database statement, which would cost
more than the key operation it guards. The table is open-addressed by a 64-bit hash of the
budget's name; a slot whose window has passed is free for any other name. If every slot a
name may take is in use this window (a table far too small for the traffic), the request is
let through uncounted rather than refused for someone else's traffic.
"""

import fcntl
import functools
import hashlib
import math
import mmap
import os
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from kvconsole.errors import Throttled
from vaults.models import Operation

SLOTS = 65536
# Name hash, window number, requests counted in that window.
SLOT = struct.Struct("<QqQ")
PROBES = 8
TABLE_BYTES = SLOTS * SLOT.size

# Operations that make key material or a key: Azure's CREATE column.
CREATES = frozenset({Operation.KEY_CREATE, Operation.KEY_IMPORT, Operation.KEY_ROTATE})

THROTTLED = "Request was not processed because too many requests were received. Reason: {}"


@dataclass(frozen=True)
class Budget:
    """A named allowance of `limit` requests per window, and the reason a refusal gives."""

    name: str
    limit: int
    reason: str

    @functools.cached_property
    def key(self) -> int:
        """The name's slot key: a hash every process agrees on (Python's own hash() differs
        between processes); 0 marks an empty slot."""
        digest = hashlib.blake2b(self.name.encode(), digest_size=8).digest()
        return int.from_bytes(digest) or 1


class Counters:
    """The shared table, as mapped by one process."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        if os.fstat(descriptor).st_size < TABLE_BYTES:
            # Every process grows it to the same size, so their races are harmless.
            os.ftruncate(descriptor, TABLE_BYTES)
        self.descriptor = descriptor
        self.table = mmap.mmap(descriptor, TABLE_BYTES, mmap.MAP_SHARED)
        # flock excludes other processes, not other threads of this one.
        self.threads = threading.Lock()

    def take(
        self, budgets: tuple[Budget, ...] | list[Budget], window_seconds: int, now: float
    ) -> Budget | None:
        """Count one request against every budget, or against none and return the budget
        that has no room left in this window."""
        window = int(now // window_seconds)
        table = self.table
        with self.threads:
            fcntl.flock(self.descriptor, fcntl.LOCK_EX)
            try:
                counted = []
                for budget in budgets:
                    key = budget.key
                    slot, count = self._slot(key, window)
                    if slot is None:
                        continue
                    if count >= budget.limit:
                        return budget
                    counted.append((slot, key, count + 1))
                for slot, key, count in counted:
                    SLOT.pack_into(table, slot, key, window, count)
                return None
            finally:
                fcntl.flock(self.descriptor, fcntl.LOCK_UN)

    def close(self) -> None:
        self.table.close()
        os.close(self.descriptor)

    def _slot(self, key: int, window: int) -> tuple[int | None, int]:
        """The offset of `key`'s slot (or of a free one it may take) and what it has counted
        in `window`."""
        free = None
        for probe in range(PROBES):
            offset = ((key + probe) % SLOTS) * SLOT.size
            found, in_window, count = SLOT.unpack_from(self.table, offset)
            if found == key:
                return offset, count if in_window == window else 0
            if free is None and (found == 0 or in_window != window):
                free = offset
        return free, 0


# (process id, the setting's value, its table): checked by identity on every request.
_opened: tuple[int, object, Counters] | None = None
_opening = threading.Lock()


def counters() -> Counters:
    """This process's mapping of the table: opened after any fork, since a lock taken on a
    descriptor shared with the parent would not exclude the parent."""
    global _opened
    configured = settings.KVCONSOLE_RATE_LIMIT_FILE
    pid = os.getpid()
    opened = _opened
    if opened is None or opened[0] != pid or opened[1] is not configured:
        with _opening:
            opened = _opened
            if opened is None or opened[0] != pid or opened[1] is not configured:
                if opened is not None and opened[0] == pid:
                    # Only tests move the table; the one they left is not used again.
                    opened[2].close()
                opened = _opened = (pid, configured, Counters(Path(configured)))
    return opened[2]


def budgets(*, vault_name: str, principal_oid: object, operation: Operation) -> tuple[Budget, ...]:
    """The budgets a request draws on; a limit of 0 is no limit."""
    creates = operation in CREATES
    limit = (
        settings.KVCONSOLE_RATE_LIMIT_VAULT_CREATE
        if creates
        else settings.KVCONSOLE_RATE_LIMIT_VAULT
    )
    return _budgets(
        vault_name, principal_oid, creates, limit, settings.KVCONSOLE_RATE_LIMIT_PRINCIPAL
    )


# Built once per caller and vault: the names and their hashes would cost a request more
# than its turn at the shared table.
@functools.lru_cache(maxsize=4096)
def _budgets(
    vault_name: str, principal_oid: object, creates: bool, vault_limit: int, principal_limit: int
) -> tuple[Budget, ...]:
    vault = vault_name.lower()
    candidates = (
        Budget(f"vault-create:{vault}", vault_limit, "VaultRequestTypeLimitReached")
        if creates
        else Budget(f"vault:{vault}", vault_limit, "VaultOperationLimitReached"),
        Budget(f"principal:{principal_oid}", principal_limit, "PrincipalRequestLimitReached"),
    )
    return tuple(budget for budget in candidates if budget.limit > 0)


def admit(*, vault_name: str, principal_oid: object, operation: Operation) -> None:
    """Count the request, or raise Throttled with the seconds until its window ends."""
    wanted = budgets(vault_name=vault_name, principal_oid=principal_oid, operation=operation)
    if not wanted:
        return
    window_seconds = settings.KVCONSOLE_RATE_LIMIT_WINDOW_SECONDS
    now = time.time()
    exhausted = counters().take(wanted, window_seconds, now)
    if exhausted is not None:
        remaining = window_seconds - now % window_seconds
        raise Throttled(
            THROTTLED.format(exhausted.reason), retry_after=max(1, math.ceil(remaining))
        )
