"""Console pages for resource groups and vaults."""

from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from kvconsole.http import AuthedRequest

from .. import selectors


@require_GET
@login_required
def overview(request: AuthedRequest) -> HttpResponse:
    vaults = selectors.vault_list(actor=request.user).annotate(
        key_count=Count("keys", filter=Q(keys__deleted_at=None))
    )
    groups = selectors.resource_group_list(actor=request.user)
    return render(request, "vaults/overview.html", {"vaults": vaults, "groups": groups})
