from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.db.models.signals import post_migrate


class VaultsConfig(AppConfig):
    name = "vaults"

    def ready(self) -> None:
        from . import readcache, signals
        from .activity import register_sqlite_functions

        connection_created.connect(register_sqlite_functions, dispatch_uid="kvconsole_sqlite")
        post_migrate.connect(
            readcache.install_triggers, sender=self, dispatch_uid="kvconsole_changes"
        )
        # Sign-ins, failures, lockouts and sign-outs go to the activity log.
        signals.connect()
