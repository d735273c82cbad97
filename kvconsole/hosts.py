"""The vault-host middleware: requests to a vault's host go to the vault endpoint.

It comes first, so that vault endpoint requests skip the console's middleware (sessions,
CSRF, sign-in, messages), none of which applies to a bearer-token API.
"""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from keys import api
from vaults.selectors import vault_name_for_host


def vault_hosts(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable[..., HttpResponse]:
    def middleware(request: HttpRequest) -> HttpResponse:
        try:
            vault_name = vault_name_for_host(request.META.get("HTTP_HOST", ""))
        except api.DATABASE_UNAVAILABLE:
            # Host aliases are read from the database now and then.
            return api.unavailable_response()
        if vault_name is None:
            return get_response(request)
        return api.serve(request, vault_name)

    return middleware
