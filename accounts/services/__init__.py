"""Finding and creating the principals that operations run as."""

from .principals import cli_principal, principal_get, system_principal

__all__ = ["cli_principal", "principal_get", "system_principal"]
