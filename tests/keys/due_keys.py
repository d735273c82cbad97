"""Vaults full of keys due for rotation, built in bulk, and a check of their versions.

Used in the test process and, through `manage.py shell -c`, in deployments on disk. Each
version is sealed for its own row, so every one opens; the private keys are drawn from a few
generated ones, since a rotation never reads the material it replaces.
"""

import json
from datetime import timedelta
from typing import Any

from django.db import transaction

from keys import crypto, protection
from keys.models import Key, KeyRotationPolicy, KeyVersion
from keys.services._shared import DEFAULT_KEY_OPS
from kvconsole import clock
from tests.processes import shell
from vaults.models import ResourceGroup, Vault

# Rotate 30 days after creation; versions a rotation makes expire after 90 days.
ROTATE_AFTER = "P30D"
EXPIRY = "P90D"
LIFETIME_ACTIONS = [
    {"trigger": {"timeAfterCreate": ROTATE_AFTER}, "action": {"type": "Rotate"}},
    {"trigger": {"timeBeforeExpiry": "P30D"}, "action": {"type": "Notify"}},
]
BATCH = 1000


def vault_named(name: str, *, group: str = "rotation-rg") -> Vault:
    resource_group, _ = ResourceGroup.objects.get_or_create(
        name=group, defaults={"location": "westeurope"}
    )
    vault, _ = Vault.objects.get_or_create(
        name=name, defaults={"resource_group": resource_group, "location": "westeurope"}
    )
    return vault


def add_due_keys(
    vault: Vault,
    count: int,
    *,
    kty: str = "EC",
    size: int | None = None,
    prefix: str = "key",
    age: timedelta = timedelta(days=31),
    distinct: int = 8,
    expires_in: timedelta | None = None,
) -> None:
    """`count` keys named `{prefix}-00000`... in `vault`, each with one version created
    `age` ago under the policy above (so due once `age` passes 30 days), expiring
    `expires_in` from now if given."""
    spec = crypto.KeySpec.parse(kty, size=size)
    materials = [crypto.generate(spec) for _ in range(min(distinct, count))]
    public = [crypto.public_jwk(material) for material in materials]
    created = clock.now() - age
    for start in range(0, count, BATCH):
        with transaction.atomic():
            keys = Key.objects.bulk_create(
                Key(vault=vault, name=f"{prefix}-{number:05d}")
                for number in range(start, min(count, start + BATCH))
            )
            versions = []
            for number, key in enumerate(keys):
                version = KeyVersion(
                    key=key,
                    kty=spec.kty,
                    size=spec.size if spec.kty == "RSA" else None,
                    curve=spec.curve or "",
                    public_jwk=public[number % len(materials)],
                    key_ops=DEFAULT_KEY_OPS[spec.kty],
                    origin=KeyVersion.Origin.GENERATED,
                    created_at=created,
                    updated_at=created,
                    expires=clock.now() + expires_in if expires_in is not None else None,
                )
                (
                    version.master_key_id,
                    version.wrapped_data_key,
                    version.sealed_material,
                ) = protection.protect(materials[number % len(materials)], aad=version.storage_aad)
                versions.append(version)
            KeyVersion.objects.bulk_create(versions)
            for key, version in zip(keys, versions, strict=True):
                key.current_version = version
            Key.objects.bulk_update(keys, ["current_version"])
            KeyRotationPolicy.objects.bulk_create(
                KeyRotationPolicy(
                    key=key,
                    lifetime_actions=LIFETIME_ACTIONS,
                    expiry_time=EXPIRY,
                    created_at=created,
                    updated_at=created,
                )
                for key in keys
            )


def version_report(vault_name: str) -> dict[str, Any]:
    """Each key's version count, and whatever is wrong with its versions: one that does not
    open or whose sealed key is not its public key, or a current version that is not the
    newest."""
    counts: dict[str, int] = {}
    problems: list[str] = []
    keys = Key.objects.filter(vault__name=vault_name).select_related("vault").order_by("pk")
    for key in keys.iterator(chunk_size=200):
        versions = list(key.versions.order_by("created_at", "pk"))
        counts[key.name] = len(versions)
        if not versions or key.current_version_id != versions[-1].pk:
            problems.append(f"{key.name}: the current version is not the newest")
        for version in versions:
            version.key = key
            material = protection.unprotect(
                version.kty,
                protection.ProtectedMaterial(
                    version.master_key_id, version.wrapped_data_key, version.sealed_material
                ),
                aad=version.storage_aad,
            )
            if crypto.public_jwk(material) != version.public_jwk:
                problems.append(f"{key.name}/{version.version}: sealed key is not its public key")
    return {"versions": counts, "problems": problems}


def print_version_report(vault_name: str) -> None:
    print(json.dumps(version_report(vault_name)))


def deployment_version_report(deployment: dict[str, str], vault_name: str) -> dict[str, Any]:
    """`version_report` read by a deployment on disk itself."""
    return json.loads(
        shell(
            deployment,
            "from tests.keys.due_keys import print_version_report; "
            f"print_version_report({vault_name!r})",
        )
    )
