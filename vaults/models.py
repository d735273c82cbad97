"""Resource groups, vaults and the activity log."""

import re
import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.functions import Lower
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from accounts import roles

# Azure's naming rules. Vault names become DNS labels, so they are lower-case here and
# compared case-insensitively by lower-casing input before lookups. \Z, not $: the
# database checks use these patterns too, and $ would let a trailing newline through.
RESOURCE_GROUP_NAME = re.compile(r"^[-\w.()]{1,90}(?<!\.)\Z")
VAULT_NAME = re.compile(r"^(?!.*--)[a-z][a-z0-9-]{1,22}[a-z0-9]\Z")
LOCATION_NAME = re.compile(r"^[a-z0-9]{1,64}\Z")
MAX_TAGS = 15
MAX_TAG_LENGTH = 256

# Access-policy key permissions, as Azure's ARM enum lists them ("all" stands for every one).
KEY_PERMISSIONS = (
    "get",
    "list",
    "update",
    "create",
    "import",
    "delete",
    "recover",
    "backup",
    "restore",
    "decrypt",
    "encrypt",
    "unwrapKey",
    "wrapKey",
    "verify",
    "sign",
    "purge",
    "release",
    "rotate",
    "getrotationpolicy",
    "setrotationpolicy",
)
MAX_ACCESS_POLICIES = 1024


def policy_codename(permission: str) -> str:
    """The django-guardian permission on a vault that an access policy entry is stored as."""
    return f"policy_keys_{permission.lower()}_vault"


class ResourceGroup(models.Model):
    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=90)
    location = models.CharField(max_length=64)
    tags = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = roles.guardian_permissions("resourcegroup")
        constraints = [
            models.UniqueConstraint(Lower("name"), name="resource_group_name_unique_ci"),
            models.CheckConstraint(
                condition=models.Q(name__regex=RESOURCE_GROUP_NAME.pattern),
                name="resource_group_name_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def resource_id(self) -> str:
        return f"/subscriptions/{settings.KVCONSOLE_SUBSCRIPTION_ID}/resourceGroups/{self.name}"

    @property
    def activity_scope(self) -> tuple[str, str, str]:
        return self.name, "", f"resourceGroups/{self.name}"

    def permission_chain(self) -> list[models.Model]:
        return [self]

    @classmethod
    def permission_lookups(cls) -> list[tuple[str, type[models.Model]]]:
        """The query path to this model's permission chain, nearest first."""
        return [("pk", cls)]


class Vault(models.Model):
    class Sku(models.TextChoices):
        STANDARD = "standard", "Standard"
        PREMIUM = "premium", "Premium"

    class PermissionModel(models.TextChoices):
        RBAC = "rbac", "Azure role-based access control"
        ACCESS_POLICY = "access_policy", "Vault access policy"

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=24, unique=True)
    resource_group = models.ForeignKey(
        ResourceGroup, on_delete=models.PROTECT, related_name="vaults"
    )
    location = models.CharField(max_length=64)
    sku = models.CharField(max_length=16, choices=Sku.choices, default=Sku.STANDARD)
    soft_delete_retention_days = models.PositiveSmallIntegerField(default=90)
    purge_protection = models.BooleanField(default=False)
    permission_model = models.CharField(
        max_length=16, choices=PermissionModel.choices, default=PermissionModel.RBAC
    )
    tags = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    scheduled_purge_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        permissions = (
            *roles.guardian_permissions("vault"),
            *((policy_codename(p), f"Access policy: keys {p}") for p in KEY_PERMISSIONS),
        )
        constraints = [
            models.CheckConstraint(
                condition=models.Q(name__regex=VAULT_NAME.pattern), name="vault_name_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(soft_delete_retention_days__range=(7, 90)),
                name="vault_retention_7_to_90_days",
            ),
            models.CheckConstraint(
                condition=models.Q(sku__in=["standard", "premium"]), name="vault_sku_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(permission_model__in=["rbac", "access_policy"]),
                name="vault_permission_model_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(deleted_at__isnull=True)
                | models.Q(scheduled_purge_at__isnull=False),
                name="vault_deleted_has_purge_date",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def uri(self) -> str:
        """The vault endpoint's base URL, as Azure's `vaultUri` (with a trailing slash)."""
        port = settings.KVCONSOLE_VAULT_PORT
        suffix = settings.KVCONSOLE_VAULT_HOST_SUFFIX
        return f"https://{self.name}.{suffix}{'' if port == 443 else f':{port}'}/"

    @property
    def resource_id(self) -> str:
        return f"{self.resource_group.resource_id}/providers/Microsoft.KeyVault/vaults/{self.name}"

    @property
    def activity_scope(self) -> tuple[str, str, str]:
        return self.resource_group.name, self.name, f"vaults/{self.name}"

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def recovery_level(self) -> str:
        """Azure's recoveryLevel: soft delete is always on; purge protection drops '+Purgeable'."""
        level = "Recoverable" if self.soft_delete_retention_days == 90 else "CustomizedRecoverable"
        return level if self.purge_protection else f"{level}+Purgeable"

    def permission_chain(self) -> list[models.Model]:
        return [self, self.resource_group]

    @classmethod
    def permission_lookups(cls) -> list[tuple[str, type[models.Model]]]:
        return [("pk", cls), ("resource_group", ResourceGroup)]


class VaultHostAlias(models.Model):
    """Another host name (with its port) that a vault's endpoint answers on, for machines
    where `{vault}.{suffix}` does not resolve, such as `127.0.0.1:8443`."""

    vault = models.ForeignKey(Vault, on_delete=models.CASCADE, related_name="host_aliases")
    # Lower case, with the port unless it is 443, as the Host header names it.
    host = models.CharField(max_length=255, unique=True)

    class Meta:
        ordering = ["host"]

    def __str__(self) -> str:
        return self.host


class ResourceGroupUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(ResourceGroup, on_delete=models.CASCADE)


class ResourceGroupGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(ResourceGroup, on_delete=models.CASCADE)


class VaultUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(Vault, on_delete=models.CASCADE)


class VaultGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Vault, on_delete=models.CASCADE)


class RoleAssignment(models.Model):
    """Who assigned which role to whom at which scope, and when.

    The grant itself is a django-guardian permission on the scope object (see
    vaults/permissions.py); this record names it for listing and removal.
    """

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    role_id = models.UUIDField()
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    group = models.ForeignKey(
        "auth.Group", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    # The scope is the most specific of these that is set; the others are its ancestors.
    resource_group = models.ForeignKey(
        ResourceGroup, on_delete=models.CASCADE, related_name="role_assignments"
    )
    vault = models.ForeignKey(
        Vault, null=True, blank=True, on_delete=models.CASCADE, related_name="role_assignments"
    )
    key = models.ForeignKey(
        "keys.Key", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    scope = models.CharField(max_length=400)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_name = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(user__isnull=True) ^ models.Q(group__isnull=True),
                name="role_assignment_one_principal",
            ),
            models.CheckConstraint(
                condition=models.Q(key__isnull=True) | models.Q(vault__isnull=False),
                name="role_assignment_key_in_vault",
            ),
            models.UniqueConstraint(
                fields=["role_id", "user", "scope"],
                condition=models.Q(user__isnull=False),
                name="role_assignment_unique_user",
            ),
            models.UniqueConstraint(
                fields=["role_id", "group", "scope"],
                condition=models.Q(group__isnull=False),
                name="role_assignment_unique_group",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role_id} at {self.scope}"

    @classmethod
    def permission_lookups(cls) -> list[tuple[str, type[models.Model]]]:
        """An assignment is read with rights at its scope or above (unset scopes never match)."""
        key_model = cls._meta.get_field("key").related_model
        assert isinstance(key_model, type)
        return [("key", key_model), ("vault", Vault), ("resource_group", ResourceGroup)]


class Operation(models.TextChoices):
    """Operation names, as Azure's AuditEvent operationName where Azure has one."""

    RESOURCE_GROUP_PUT = "ResourceGroupPut"
    RESOURCE_GROUP_PATCH = "ResourceGroupPatch"
    RESOURCE_GROUP_GET = "ResourceGroupGet"
    RESOURCE_GROUP_LIST = "ResourceGroupList"
    RESOURCE_GROUP_DELETE = "ResourceGroupDelete"
    VAULT_PUT = "VaultPut"
    VAULT_PATCH = "VaultPatch"
    VAULT_GET = "VaultGet"
    VAULT_LIST = "VaultList"
    VAULT_DELETE = "VaultDelete"
    VAULT_LIST_DELETED = "VaultListDeleted"
    VAULT_RECOVER = "VaultRecover"
    VAULT_PURGE = "VaultPurge"
    KEY_CREATE = "KeyCreate"
    KEY_IMPORT = "KeyImport"
    KEY_GET = "KeyGet"
    KEY_LIST = "KeyList"
    KEY_LIST_VERSIONS = "KeyListVersions"
    KEY_UPDATE = "KeyUpdate"
    KEY_ROTATE = "KeyRotate"
    # Rotation by a key's policy (`kv rotate-due`): Azure's name for the automatic rotation.
    KEY_ROTATE_IF_DUE = "KeyRotateIfDue"
    KEY_REVERT = "KeyRevert"
    KEY_DELETE = "KeyDelete"
    KEY_GET_DELETED = "KeyGetDeleted"
    KEY_LIST_DELETED = "KeyListDeleted"
    KEY_RECOVER = "KeyRecover"
    KEY_PURGE = "KeyPurge"
    KEY_BACKUP = "KeyBackup"
    KEY_RESTORE = "KeyRestore"
    KEY_ENCRYPT = "KeyEncrypt"
    KEY_DECRYPT = "KeyDecrypt"
    KEY_SIGN = "KeySign"
    KEY_VERIFY = "KeyVerify"
    KEY_WRAP = "KeyWrap"
    KEY_UNWRAP = "KeyUnwrap"
    KEY_ROTATION_POLICY_GET = "KeyRotationPolicyGet"
    KEY_ROTATION_POLICY_SET = "KeyRotationPolicySet"
    # A `kv check-expiry` run, and each Event Grid notification it raises (Azure's names).
    KEY_CHECK_EXPIRY = "KeyCheckExpiry"
    KEY_NEAR_EXPIRY_NOTIFICATION = "KeyNearExpiryEventGridNotification"
    KEY_EXPIRED_NOTIFICATION = "KeyExpiredEventGridNotification"
    RANDOM_BYTES_GET = "GetRandomBytes"
    # A vault endpoint request for no operation the endpoint has (an unknown path or method).
    UNSUPPORTED_REQUEST = "UnsupportedRequest"
    MASTER_KEY_ROTATE = "MasterKeyRotate"
    KEY_FILES_CREATE = "KeyFilesCreate"
    TOKEN_KEY_ROTATE = "TokenSigningKeyRotate"  # noqa: S105 (an operation name)
    ROLE_DEFINITION_LIST = "RoleDefinitionList"
    ROLE_ASSIGNMENT_CREATE = "RoleAssignmentCreate"
    ROLE_ASSIGNMENT_LIST = "RoleAssignmentList"
    ROLE_ASSIGNMENT_DELETE = "RoleAssignmentDelete"
    ACCESS_POLICY_SET = "VaultAccessPolicySet"
    ACCESS_POLICY_DELETE = "VaultAccessPolicyDelete"
    ACCESS_POLICY_LIST = "VaultAccessPolicyList"
    # Azure's Event Grid name for a change of who may use a vault's keys; access-policy and
    # role-assignment changes are recorded under their own names above.
    PERMISSION_MODEL_CHANGE = "VaultAccessPolicyChanged"
    EFFECTIVE_ACCESS_GET = "EffectiveAccessGet"
    APPLICATION_CREATE = "ApplicationCreate"
    APPLICATION_UPDATE = "ApplicationUpdate"
    APPLICATION_GET = "ApplicationGet"
    APPLICATION_LIST = "ApplicationList"
    APPLICATION_DELETE = "ApplicationDelete"
    APPLICATION_SECRET_ADD = "ApplicationSecretAdd"  # noqa: S105 (an operation name)
    APPLICATION_CERTIFICATE_ADD = "ApplicationCertificateAdd"
    APPLICATION_CREDENTIAL_LIST = "ApplicationCredentialList"
    APPLICATION_CREDENTIAL_DELETE = "ApplicationCredentialDelete"
    APPLICATION_SIGN_IN = "ApplicationSignIn"
    WORKLOAD_IDENTITY_ADD = "WorkloadIdentityAdd"
    WORKLOAD_IDENTITY_LIST = "WorkloadIdentityList"
    WORKLOAD_IDENTITY_DELETE = "WorkloadIdentityDelete"
    SIGN_IN = "SignIn"
    SIGN_OUT = "SignOut"
    SIGN_IN_LOCKOUT = "SignInLockout"
    # A person's TOTP authenticator: enrolled by its owner, reset by a deployment principal.
    TWO_FACTOR_ENROL = "TwoFactorEnrol"
    TWO_FACTOR_RESET = "TwoFactorReset"
    # Alert rules are the deployment's Event Grid subscriptions; a dead-lettered or requeued
    # notification is a change an operator must be able to trace.
    ALERT_RULE_CREATE = "AlertRuleCreate"
    ALERT_RULE_UPDATE = "AlertRuleUpdate"
    ALERT_RULE_LIST = "AlertRuleList"
    ALERT_RULE_GET = "AlertRuleGet"
    ALERT_RULE_DELETE = "AlertRuleDelete"
    ALERT_RULE_SECRET_GET = "AlertRuleSecretGet"  # noqa: S105 (an operation name)
    ALERT_RULE_REKEY = "AlertRuleRekey"
    ALERT_RULE_TEST = "AlertRuleTest"
    NOTIFICATION_LIST = "NotificationList"
    NOTIFICATION_DELIVER = "NotificationDeliver"
    NOTIFICATION_DEAD_LETTER = "NotificationDeadLetter"
    NOTIFICATION_REQUEUE = "NotificationRequeue"


class Face(models.TextChoices):
    CONSOLE = "console", "Console"
    API = "api", "Vault endpoint"
    CLI = "cli", "CLI"
    SYSTEM = "system", "In-process"


class Result(models.TextChoices):
    SUCCESS = "Success"
    BAD_PARAMETER = "BadParameter"
    NOT_FOUND = "NotFound"
    UNAUTHORIZED = "Unauthorized"
    FORBIDDEN = "Forbidden"
    CONFLICT = "Conflict"
    # Refused by the vault endpoint's rate limits (429), as Azure logs a throttled request.
    THROTTLED = "Throttled"
    FAILURE = "Failure"


class ActivityQuerySet(models.QuerySet["ActivityEntry"]):
    """The log is append-only: bulk changes are refused at the ORM level."""

    def update(self, **kwargs: Any) -> int:
        raise PermissionError("Activity entries are append-only.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise PermissionError("Activity entries are append-only.")

    def with_result(self, result: str) -> "ActivityQuerySet":
        """Entries with `result`. Only failures are indexed (successes are nearly all of
        the log, found newest first by seq alone), and the database uses that partial index
        only when the query states its condition."""
        entries = self.filter(result=result)
        return entries if result == Result.SUCCESS else entries.exclude(result=Result.SUCCESS)


class ChangeCounter(models.Model):
    """One row that every committed change to what key operations look up and authorize
    with (keys and versions, vaults, groups, principals, memberships, grants) moves on.

    Database triggers move it in the transaction that makes the change, so no writer (a
    service, the admin, a shell) can forget to; vaults/readcache.py installs them and reads
    the value once per request to know whether its per-process cache is still current.
    """

    value = models.BigIntegerField()

    def __str__(self) -> str:
        return f"change {self.value}"


class SequenceField(models.BigIntegerField):
    """A 64-bit primary key the application numbers itself. SQLite stores a column declared
    exactly INTEGER PRIMARY KEY as the row id, so the table needs no second b-tree (and each
    append no second page write) to find a row by it."""

    def db_type(self, connection: BaseDatabaseWrapper) -> str | None:
        if connection.vendor == "sqlite":
            return "integer"
        return super().db_type(connection)


class ActivityEntry(models.Model):
    # A dense sequence (not an auto-increment id): the chain links seq n to seq n-1, so a
    # gap is a deleted entry.
    seq = SequenceField(primary_key=True)
    time = models.DateTimeField()
    actor_oid = models.UUIDField(null=True, blank=True)
    actor_name = models.CharField(max_length=150)
    actor_display = models.CharField(max_length=150, blank=True)
    actor_kind = models.CharField(max_length=16)
    operation = models.CharField(max_length=40, choices=Operation.choices)
    resource_group = models.CharField(max_length=90, blank=True)
    vault_name = models.CharField(max_length=24, blank=True)
    target = models.CharField(max_length=400, blank=True)
    result = models.CharField(max_length=16, choices=Result.choices)
    status_code = models.PositiveSmallIntegerField()
    message = models.CharField(max_length=500, blank=True)
    duration_ms = models.FloatField()
    face = models.CharField(max_length=8, choices=Face.choices)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    correlation_id = models.CharField(max_length=64, blank=True)
    # Vault endpoint requests: the api-version asked for and the x-ms-request-id sent back.
    api_version = models.CharField(max_length=16, blank=True)
    request_id = models.CharField(max_length=36, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    objects = ActivityQuerySet.as_manager()

    class Meta:
        ordering = ["-seq"]
        verbose_name_plural = "activity entries"
        # Every entry is an insert into each of these, on every request: they are kept few,
        # in ascending seq order (new entries go to the end of each value's run rather than
        # splitting pages at its front; both databases read them backwards for newest
        # first), and failures only for the result filter.
        indexes = [
            # (time, seq): a time range read newest first straight from the index.
            models.Index(fields=["time", "seq"], name="activity_time_seq"),
            models.Index(fields=["vault_name", "seq"], name="activity_vault_seq"),
            models.Index(fields=["operation", "seq"], name="activity_operation_seq"),
            models.Index(
                fields=["result", "seq"],
                name="activity_failure_seq",
                condition=~models.Q(result="Success"),
            ),
            models.Index(fields=["face", "seq"], name="activity_face_seq"),
            # Descending: the search by actor is an OR with the target prefix, whose rows
            # the database gathers and sorts; gathered newest first, they sort far faster.
            models.Index(fields=["actor_name", "-seq"], name="activity_actor_seq"),
            models.Index(fields=["target"], name="activity_target"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.operation} {self.result}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise PermissionError("Activity entries are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise PermissionError("Activity entries are append-only.")


# --- events, alert rules and their notifications ---------------------------------------------


class EventType(models.TextChoices):
    """Azure Event Grid's Key Vault event types, and the deployment's two security events."""

    KEY_NEW_VERSION_CREATED = "Microsoft.KeyVault.KeyNewVersionCreated", "Key new version created"
    KEY_NEAR_EXPIRY = "Microsoft.KeyVault.KeyNearExpiry", "Key near expiry"
    KEY_EXPIRED = "Microsoft.KeyVault.KeyExpired", "Key expired"
    VAULT_ACCESS_POLICY_CHANGED = (
        "Microsoft.KeyVault.VaultAccessPolicyChanged",
        "Vault access policy changed",
    )
    UNAUTHORIZED_ACCESS_ATTEMPTS = (
        "kvconsole.UnauthorizedAccessAttempts",
        ("Unauthorized access attempts"),
    )
    SIGN_IN_LOCKOUT = "kvconsole.SignInLockout", "Sign-in lockout"
    # Sent by `kv alert test` to one rule only; no rule subscribes to it.
    ALERT_TEST = "kvconsole.AlertTest", "Alert test"


class Event(models.Model):
    """Something people may need to hear about, in Event Grid's terms. It is written in the
    transaction of the change that caused it, with a notification for each matching rule
    (the outbox), so neither is ever lost nor sent for a change that rolled back."""

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    event_type = models.CharField(max_length=64, choices=EventType.choices)
    # Event Grid's topic (the vault's resource id) and subject (the object's name).
    topic = models.CharField(max_length=400)
    subject = models.CharField(max_length=400)
    time = models.DateTimeField()
    # Event Grid's `data`, with its PascalCase names (Id, VaultName, ObjectType, ...).
    data = models.JSONField(default=dict)
    # Where it happened, for matching rules by scope.
    resource_group = models.CharField(max_length=90, blank=True)
    vault_name = models.CharField(max_length=24, blank=True)
    key_name = models.CharField(max_length=127, blank=True)
    # Events that must happen once (a version nearing expiry at a threshold) carry a key
    # that no second event may share.
    once = models.CharField(max_length=400, null=True, blank=True, unique=True)

    class Meta:
        ordering = ["-time", "-id"]
        indexes = [models.Index(fields=["event_type", "time"], name="event_type_time")]

    def __str__(self) -> str:
        return f"{self.event_type} {self.subject}"


class AlertRule(models.Model):
    """Who hears about which events where: a scope (the deployment, a resource group, a
    vault or one key), the event types, and a channel (email, or a webhook in the Event Grid
    or CloudEvents 1.0 schema)."""

    class Channel(models.TextChoices):
        EMAIL = "email", "Email"
        WEBHOOK = "webhook", "Webhook"

    class Schema(models.TextChoices):
        EVENT_GRID = "eventgrid", "Event Grid"
        CLOUD_EVENTS = "cloudevents", "CloudEvents 1.0"

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=80, unique=True)
    enabled = models.BooleanField(default=True)
    # The scope: empty names widen it (all empty = the whole deployment).
    resource_group = models.CharField(max_length=90, blank=True)
    vault_name = models.CharField(max_length=24, blank=True)
    key_name = models.CharField(max_length=127, blank=True)
    event_types = models.JSONField(default=list)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    # Email: the recipients, comma-separated. Webhook: the HTTPS URL.
    target = models.CharField(max_length=1000)
    schema = models.CharField(max_length=12, choices=Schema.choices, default=Schema.EVENT_GRID)
    # UnauthorizedAccessAttempts: this many refusals of one principal on one vault within
    # the window raise one event.
    attempts = models.PositiveIntegerField(default=10)
    window_seconds = models.PositiveIntegerField(default=300)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=150, blank=True)
    # A webhook's signing secret is derived from the deployment's webhook key, the uid and
    # this salt, so no secret is stored; re-keying the rule draws a new salt.
    signing_salt = models.UUIDField(default=uuid.uuid4, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Notification(models.Model):
    """One event for one rule's channel: the outbox row a worker delivers, retries with
    backoff, marks delivered once, or dead-letters after too many attempts."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        DEAD = "dead", "Dead-lettered"

    # Sent as the idempotency id: a receiver that sees it twice knows it is one delivery.
    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="notifications")
    rule = models.ForeignKey(
        AlertRule, null=True, on_delete=models.SET_NULL, related_name="notifications"
    )
    # The channel as it was when the event happened: a later edit of the rule does not
    # redirect what is already on its way.
    channel = models.CharField(max_length=8, choices=AlertRule.Channel.choices)
    target = models.CharField(max_length=1000)
    schema = models.CharField(max_length=12, choices=AlertRule.Schema.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_error = models.CharField(max_length=500, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            # What a worker looks for: the due pending rows, oldest due first.
            models.Index(
                fields=["next_attempt_at", "id"],
                name="notification_due",
                condition=models.Q(status="pending"),
            ),
            # The dead letters: counted on every metrics scrape and listed newest first,
            # without reading the delivered rows that outnumber them.
            models.Index(
                fields=["id"], name="notification_dead", condition=models.Q(status="dead")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} to {self.channel}: {self.status}"
