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
