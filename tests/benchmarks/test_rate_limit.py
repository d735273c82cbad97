"""What the vault endpoint's rate limits cost a request: CPU per `ratelimit.admit` (a vault's
and a principal's budget counted in the shared table, under its file lock), against one
RSA-2048 sign with `cryptography`, the cheapest expensive thing the endpoint does, measured
in turns beside it.

Target: at most 3% of a sign, so that the endpoint's ratio to raw signs (tests/benchmarks/
test_endpoint.py) barely moves.
"""

import statistics
import time
import uuid
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from keys.api import ratelimit
from tests.benchmarks.conftest import BenchReport
from vaults.models import Operation

ROUNDS = 9
ADMITS = 20_000
SIGNS = 200
TARGET = 0.03


def cpu_per_call(function: Any, calls: int) -> float:
    started = time.process_time()
    for _ in range(calls):
        function()
    return (time.process_time() - started) / calls


def test_a_rate_limit_check_costs_little_beside_a_sign(
    settings: Any, tmp_path: Path, bench_report: BenchReport
) -> None:
    settings.KVCONSOLE_RATE_LIMIT_FILE = tmp_path / "rate-limits"
    # Never reached: every call counts and none is refused.
    settings.KVCONSOLE_RATE_LIMIT_VAULT = 10**9
    settings.KVCONSOLE_RATE_LIMIT_PRINCIPAL = 10**9
    principal = uuid.uuid4()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    digest = b"\x01" * 32

    def admit() -> None:
        ratelimit.admit(vault_name="bench", principal_oid=principal, operation=Operation.KEY_SIGN)

    def sign() -> None:
        key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))

    admit()
    ratios, admits, signs = [], [], []
    for _ in range(ROUNDS):
        before = cpu_per_call(sign, SIGNS)
        admitted = cpu_per_call(admit, ADMITS)
        after = cpu_per_call(sign, SIGNS)
        signs.append((before + after) / 2)
        admits.append(admitted)
        ratios.append(admitted / signs[-1])
    ratio = statistics.median(ratios)
    print(
        f"\n  rate limit check {statistics.median(admits) * 1e6:.1f} us CPU, "
        f"RSA-2048 sign {statistics.median(signs) * 1e6:.0f} us: {ratio:.2%} of a sign"
    )
    bench_report.ratio(
        "vault endpoint rate limit check (vault and principal budgets, shared table)",
        measured=f"{statistics.median(admits) * 1e6:.1f} us CPU per request",
        baseline=f"RSA-2048 sign, {statistics.median(signs) * 1e6:.0f} us CPU",
        ratio=ratio,
        target=f"at most {TARGET:.0%}",
        met=ratio <= TARGET,
    )
    assert ratio <= TARGET
