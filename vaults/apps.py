from django.apps import AppConfig
from django.db.backends.signals import connection_created


class VaultsConfig(AppConfig):
    name = "vaults"

    def ready(self) -> None:
        from . import signals
        from .activity import register_sqlite_functions

        connection_created.connect(register_sqlite_functions, dispatch_uid="kvconsole_sqlite")
        # Sign-ins, failures, lockouts and sign-outs go to the activity log.
        signals.connect()
