"""Finding and creating the principals that operations run as."""

import getpass

from kvconsole.errors import NotFound

from ..models import User


def system_principal(*, name: str) -> User:
    """The system principal `name` (created on first use); it may never sign in."""
    user, created = User.objects.get_or_create(
        username=name, defaults={"kind": User.Kind.SYSTEM, "display_name": name}
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    elif user.kind != User.Kind.SYSTEM:
        raise NotFound(f"'{name}' is not a system principal.", code="PrincipalNotFound")
    return user


def cli_principal() -> User:
    """The principal a CLI command runs as when no --as is given: cli:<os user>."""
    return system_principal(name=f"cli:{getpass.getuser()}")


def principal_get(*, username: str) -> User:
    """An active principal by user name."""
    try:
        return User.objects.get(username=username, is_active=True)
    except User.DoesNotExist:
        raise NotFound(
            f"No active principal named '{username}'.", code="PrincipalNotFound"
        ) from None
