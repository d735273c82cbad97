"""`python manage.py kv ...`: the operator and cron face, shaped like `az keyvault`."""

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts import services as principals
from keys import cli as key_cli
from kvconsole.cli import Invocation, ReportedFailure, render
from kvconsole.errors import ServiceError
from vaults import alerts_cli, directory_cli
from vaults import cli as vault_cli
from vaults.activity import request_context
from vaults.models import Face
from vaults.permissions import request_cache


class Command(BaseCommand):
    help = "Manage resource groups, vaults, keys and the activity log (like az keyvault)."
    # Cron runs this often; the system checks belong to deploy time, not every invocation.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
        vault_cli.register(commands)
        key_cli.register(commands)
        directory_cli.register(commands)
        alerts_cli.register(commands)

    def handle(self, *args: Any, **options: Any) -> None:
        namespace = argparse.Namespace(**options)
        try:
            with request_context(face=Face.CLI), request_cache():
                actor = (
                    principals.principal_get(username=namespace.as_principal)
                    if namespace.as_principal
                    else principals.cli_principal()
                )
                result = namespace.handler(
                    Invocation(options=namespace, actor=actor, stdout=self.stdout)
                )
        except ReportedFailure as failure:
            raise CommandError(str(failure), returncode=failure.exit_code) from None
        except vault_cli.ChainBroken as broken:
            render(broken.report, output=namespace.output, columns=(), stream=self.stdout)
            raise CommandError(f"(ActivityChainBroken) {broken}", returncode=6) from None
        except ServiceError as error:
            raise CommandError(
                f"({error.code}) {error.message}", returncode=error.exit_code
            ) from None
        render(result, output=namespace.output, columns=namespace.columns, stream=self.stdout)
