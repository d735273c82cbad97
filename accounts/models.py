"""Principals: people who sign in, and the non-human actors that operations run as."""

import uuid

from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """Any principal an operation can run as; `kind` says which sort it is."""

    class Kind(models.TextChoices):
        USER = "user", "User"
        APPLICATION = "application", "Application"
        SYSTEM = "system", "System"

    # The Azure objectId: stable across renames, shown in activity entries and errors.
    oid = models.UUIDField("object id", default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.USER)
    display_name = models.CharField(max_length=150, blank=True)

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind__in=["user", "application", "system"]),
                name="user_kind_valid",
            )
        ]

    def __str__(self) -> str:
        return self.display_name or self.username


class Application(models.Model):
    """A service principal: a non-human caller of the vault endpoint.

    Its permissions are held by `user`, a principal row of kind application that can never
    sign in to the console; `user.oid` is the service principal's object id.
    """

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="application")
    client_id = models.UUIDField("application (client) id", default=uuid.uuid4, unique=True)
    display_name = models.CharField(max_length=120)
    enabled = models.BooleanField(default=True)
    owner = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="owned_applications"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["display_name", "client_id"]

    def __str__(self) -> str:
        return f"{self.display_name} ({self.client_id})"


class ClientSecret(models.Model):
    """A password credential; only a salted hash of the secret is kept."""

    application = models.ForeignKey(
        Application, on_delete=models.CASCADE, related_name="client_secrets"
    )
    key_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    description = models.CharField(max_length=120, blank=True)
    # The first characters of the secret, as Azure's `hint`, so people can tell them apart.
    hint = models.CharField(max_length=3)
    salt = models.CharField(max_length=32)
    secret_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.description or 'secret'} ({self.hint}…)"


class CertificateCredential(models.Model):
    """A public certificate whose private key signs the application's client assertions."""

    application = models.ForeignKey(
        Application, on_delete=models.CASCADE, related_name="certificates"
    )
    key_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    description = models.CharField(max_length=120, blank=True)
    certificate_pem = models.TextField()
    # Hex, upper case, as Azure shows customKeyIdentifier; the token endpoint matches
    # assertions' x5t (SHA-1) and x5t#S256 headers against them.
    thumbprint_sha1 = models.CharField(max_length=40, db_index=True)
    thumbprint_sha256 = models.CharField(max_length=64, db_index=True)
    subject = models.CharField(max_length=500)
    not_before = models.DateTimeField()
    not_after = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["application", "thumbprint_sha256"], name="certificate_unique_per_app"
            )
        ]

    def __str__(self) -> str:
        return f"{self.subject} ({self.thumbprint_sha1})"


class WorkloadIdentity(models.Model):
    """A workload's managed identity: the secret a host gives the workload in
    IDENTITY_HEADER buys tokens for `application`, so its code and configuration hold none.

    The secret is 256 random bits, so its SHA-256 alone identifies it without a salt.
    """

    application = models.ForeignKey(
        Application, on_delete=models.CASCADE, related_name="workload_identities"
    )
    key_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    description = models.CharField(max_length=120, blank=True)
    hint = models.CharField(max_length=3)
    secret_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.description or 'workload'} ({self.hint}…)"
