from django.contrib.auth.backends import ModelBackend

from accounts.models import User


class PrincipalBackend(ModelBackend):
    """Only people sign in to the console; applications and system principals never do."""

    def user_can_authenticate(self, user: User | None) -> bool:  # type: ignore[override]
        return super().user_can_authenticate(user) and getattr(user, "kind", None) == User.Kind.USER
