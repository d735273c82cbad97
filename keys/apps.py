from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_delete


class KeysConfig(AppConfig):
    name = "keys"

    def ready(self) -> None:
        from .models import KeyVersion

        # Purging a key or a whole vault deletes version rows by cascade; their loaded
        # material must leave memory with them.
        post_delete.connect(_forget_material, sender=KeyVersion, dispatch_uid="forget_material")


def _forget_material(sender: type, instance: Any, **kwargs: Any) -> None:
    from .protection import material_cache

    material_cache.forget([instance.pk])
