from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Identities"

    def ready(self) -> None:
        # Sign-ins, failures, lockouts and sign-outs go to the activity log.
        from . import signals

        signals.connect()
