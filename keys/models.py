"""Keys and their immutable versions.

A version's private material is stored only in protected form (see keys/protection.py):
the material sealed under a per-version data key, and that data key wrapped by a master key.
"""

import hashlib
import json
import re
import uuid

from django.db import models
from django.db.models.functions import Lower
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from accounts import roles
from vaults.models import ResourceGroup, Vault

# \Z, not $: the database checks use these patterns, and $ allows a trailing newline.
KEY_NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}\Z")
VERSION_ID = re.compile(r"^[0-9a-f]{32}\Z")
KEY_OPERATIONS = ("encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey")


def new_version_id() -> str:
    return uuid.uuid4().hex


class Key(models.Model):
    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    vault = models.ForeignKey(Vault, on_delete=models.CASCADE, related_name="keys")
    name = models.CharField(max_length=127)
    current_version = models.ForeignKey(
        "KeyVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    scheduled_purge_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        permissions = roles.guardian_permissions("key")
        constraints = [
            # Names are case-insensitive and stay taken while the key is soft-deleted.
            models.UniqueConstraint(models.F("vault"), Lower("name"), name="key_name_unique_ci"),
            models.CheckConstraint(
                condition=models.Q(name__regex=KEY_NAME.pattern), name="key_name_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(deleted_at__isnull=True)
                | models.Q(scheduled_purge_at__isnull=False),
                name="key_deleted_has_purge_date",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.vault.name}/{self.name}"

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def activity_scope(self) -> tuple[str, str, str]:
        vault = self.vault
        return vault.resource_group.name, vault.name, f"vaults/{vault.name}/keys/{self.name}"

    def permission_chain(self) -> list[models.Model]:
        return [self, *self.vault.permission_chain()]

    @classmethod
    def permission_lookups(cls) -> list[tuple[str, type[models.Model]]]:
        return [("pk", cls), ("vault", Vault), ("vault__resource_group", ResourceGroup)]


class KeyVersion(models.Model):
    class Origin(models.TextChoices):
        GENERATED = "generated", "Generated"
        IMPORTED = "imported", "Imported"
        ROTATED = "rotated", "Rotated"
        REVERTED = "reverted", "Reverted to an earlier version"

    key = models.ForeignKey(Key, on_delete=models.CASCADE, related_name="versions")
    version = models.CharField(max_length=32, default=new_version_id)
    kty = models.CharField("key type", max_length=8)
    size = models.PositiveSmallIntegerField(null=True, blank=True)
    curve = models.CharField(max_length=8, blank=True)
    public_jwk = models.JSONField()
    key_ops = models.JSONField(default=list)
    enabled = models.BooleanField(default=True)
    not_before = models.DateTimeField(null=True, blank=True)
    expires = models.DateTimeField(null=True, blank=True)
    tags = models.JSONField(default=dict, blank=True)
    origin = models.CharField(max_length=16, choices=Origin.choices)
    source_version = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    # Protected material: never shown, never editable, never logged.
    master_key_id = models.CharField(max_length=32, editable=False)
    wrapped_data_key = models.BinaryField(editable=False)
    sealed_material = models.BinaryField(editable=False)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["key", "version"], name="key_version_unique"),
            models.CheckConstraint(
                condition=models.Q(version__regex=VERSION_ID.pattern), name="key_version_id_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(kty__in=["RSA", "EC", "oct"]), name="key_version_kty_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(not_before__isnull=True)
                | models.Q(expires__isnull=True)
                | models.Q(not_before__lt=models.F("expires")),
                name="key_version_nbf_before_exp",
            ),
        ]
        indexes = [models.Index(fields=["master_key_id"], name="key_version_master_key")]

    def __str__(self) -> str:
        return f"{self.key}/{self.version}"

    @property
    def activity_scope(self) -> tuple[str, str, str]:
        group, vault, key_target = self.key.activity_scope
        return group, vault, f"{key_target}/{self.version}"

    @property
    def is_current(self) -> bool:
        return self.key.current_version_id == self.pk

    @property
    def storage_aad(self) -> bytes:
        """What the sealed material is bound to: its place (vault, key, version) and its
        public half, so it cannot be moved to another row, nor its public key or type be
        swapped (clients encrypt and verify locally with the public key)."""
        public = json.dumps(self.public_jwk, sort_keys=True, separators=(",", ":"))
        return "/".join(
            [
                str(self.key.vault.uid),
                self.key.name.lower(),
                self.version,
                self.kty,
                hashlib.sha256(public.encode()).hexdigest(),
            ]
        ).encode()

    def permission_chain(self) -> list[models.Model]:
        return self.key.permission_chain()

    @classmethod
    def permission_lookups(cls) -> list[tuple[str, type[models.Model]]]:
        return [("key", Key), ("key__vault", Vault), ("key__vault__resource_group", ResourceGroup)]


class KeyUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(Key, on_delete=models.CASCADE)


class KeyGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Key, on_delete=models.CASCADE)


class KeyRotationPolicy(models.Model):
    """A key's rotation policy, in Azure's terms: lifetime actions (Rotate or Notify, after
    creation or before expiry) and the expiry given to versions a rotation makes.

    Durations are kept as the ISO-8601 text the client sent, as Azure echoes them.
    """

    key = models.OneToOneField(Key, on_delete=models.CASCADE, related_name="rotation_policy")
    # [{"trigger": {"timeAfterCreate" | "timeBeforeExpiry": "P30D"}, "action": {"type": ...}}]
    lifetime_actions = models.JSONField(default=list)
    expiry_time = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "key rotation policies"

    def __str__(self) -> str:
        return f"rotation policy of {self.key}"
