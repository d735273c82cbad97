"""The console's global search: vaults and keys by name or tag."""

from django.http import HttpResponse
from django.views.decorators.http import require_GET

from kvconsole.console import page
from kvconsole.http import AuthedRequest

from .. import selectors


@require_GET
def search(request: AuthedRequest) -> HttpResponse:
    q = request.GET.get("q", "").strip()[:200]
    context = {
        "search_query": q,
        "vaults": selectors.vault_search(actor=request.user, q=q) if q else [],
        "keys": selectors.key_search(actor=request.user, q=q) if q else [],
    }
    return page(request, "keys/search.html", context)
