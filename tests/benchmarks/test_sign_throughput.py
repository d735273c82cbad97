"""RSA-2048 RS256 signing through the service layer against raw `cryptography`, same process.

The service path includes everything a real call pays: resolving the key, authorizing the
actor, checking the version may sign, the loaded-key cache and the chained activity entry,
committed to a database file in WAL mode. It is measured twice: as an administrator, and as an
application holding Key Vault Crypto User on the vault, whose grants are read afresh for each
call as they are for each request. The baseline is `cryptography` signing with a key
object already in memory. The issue's target: the service reaches at least 40% of it.

The application's figure is reported beside it, not held to that target: reading its grants
is one more query per call, which costs more the faster the machine signs (on a machine
signing 4,000 times a second it lands near 0.38, against 0.40 to 0.43 for the service path).
"""

import hashlib
import time
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from keys import services
from keys.protection import ProtectedMaterial, unprotect
from tests.benchmarks.conftest import BenchReport
from tests.factories import ApplicationFactory
from vaults import services as vault_services
from vaults.models import ActivityEntry
from vaults.permissions import request_cache

ROUNDS = 9
SECONDS_PER_ROUND = 1.0


def throughput(call: Callable[[], object]) -> float:
    """Calls per second over one timed round, after a warm-up call."""
    call()
    count, started = 0, time.perf_counter()
    deadline = started + SECONDS_PER_ROUND
    while (now := time.perf_counter()) < deadline:
        for _ in range(20):
            call()
        count += 20
    return count / (now - started)


@pytest.mark.django_db(transaction=True)
def test_service_sign_reaches_40_percent_of_raw_cryptography(
    system, make_key, bench_report: BenchReport
) -> None:
    version = make_key("bench-rsa", kty="RSA", size=2048)
    digest = hashlib.sha256(b"benchmark").digest()
    vault_name = version.key.vault.name
    private_key = unprotect(
        version.kty,
        ProtectedMaterial(version.master_key_id, version.wrapped_data_key, version.sealed_material),
        aad=version.storage_aad,
    ).key
    assert isinstance(private_key, rsa.RSAPrivateKey)
    prehashed = utils.Prehashed(hashes.SHA256())
    pkcs1 = padding.PKCS1v15()

    def raw() -> object:
        return private_key.sign(digest, pkcs1, prehashed)

    def service() -> object:
        return services.key_sign(
            actor=system, vault_name=vault_name, name="bench-rsa", algorithm="RS256", digest=digest
        )

    application = ApplicationFactory.create()
    vault_services.role_assignment_create(
        actor=system,
        assignee=str(application.oid),
        role="Key Vault Crypto User",
        scope=f"/resourceGroups/{version.key.vault.resource_group.name}/providers/"
        f"Microsoft.KeyVault/vaults/{vault_name}",
    )

    def as_application() -> object:
        with request_cache():
            return services.key_sign(
                actor=application,
                vault_name=vault_name,
                name="bench-rsa",
                algorithm="RS256",
                digest=digest,
            )

    entries_before = ActivityEntry.objects.count()
    # Interleave rounds so that drift in machine load hits both sides alike.
    raw_rates, service_rates, application_rates = [], [], []
    for _ in range(ROUNDS):
        raw_rates.append(throughput(raw))
        service_rates.append(throughput(service))
        application_rates.append(throughput(as_application))
    raw_rate, service_rate = max(raw_rates), max(service_rates)
    application_rate = max(application_rates)
    ratio, application_ratio = service_rate / raw_rate, application_rate / raw_rate
    written = ActivityEntry.objects.count() - entries_before

    print(
        f"\nRSA-2048 RS256 sign, best of {ROUNDS} rounds of {SECONDS_PER_ROUND:.0f} s\n"
        f"  cryptography, loaded key   {raw_rate:8.0f} ops/s\n"
        f"  keys.services.key_sign     {service_rate:8.0f} ops/s   ({written} activity entries)\n"
        f"  ratio                      {ratio:8.2f}   (target >= 0.40)\n"
        f"  as an application          {application_rate:8.0f} ops/s   ratio "
        f"{application_ratio:.2f} (one grants query more per call)"
    )
    bench_report.ratio(
        "RSA-2048 sign through keys.services.key_sign",
        measured=f"{service_rate:,.0f} ops/s",
        baseline=f"{raw_rate:,.0f} ops/s raw cryptography",
        ratio=ratio,
        target=">= 0.40",
        met=ratio >= 0.40,
    )
    assert written > 0
    assert ratio >= 0.40
