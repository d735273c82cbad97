"""Every change to principals: people, applications and their credentials."""

from .principals import cli_principal, principal_get, system_principal

__all__ = ["cli_principal", "principal_get", "system_principal"]
