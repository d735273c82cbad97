"""Console pages for resource groups and vaults.

Pages read through selectors, which show only what the operator may see (anything else is
a 404, so names do not leak); actions call one service each, which authorizes and records.
"""

from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from kvconsole.console import done, page, posted
from kvconsole.errors import BadParameter, Conflict
from kvconsole.http import AuthedRequest

from .. import selectors
from .. import services as vault_services
from ..forms import ResourceGroupForm, VaultCreateForm, VaultPropertiesForm
from ..models import ResourceGroup, Vault
from ..permissions import DEPLOYMENT, Action, capabilities

# --- resource groups -------------------------------------------------------------------------


def visible_group(request: AuthedRequest, name: str) -> ResourceGroup:
    group = selectors.resource_group_list(actor=request.user).filter(name__iexact=name).first()
    if group is None:
        raise Http404(f"No resource group '{name}' that you can see.")
    return group


@require_GET
def group_list(request: AuthedRequest) -> HttpResponse:
    groups = selectors.resource_group_list(actor=request.user).annotate(
        vault_count=Count("vaults", filter=Q(vaults__deleted_at=None))
    )
    can = capabilities(request.user, DEPLOYMENT, create=Action.RESOURCE_GROUP_WRITE)
    return page(request, "vaults/group_list.html", {"groups": groups, "can": can})


@require_http_methods(["GET", "POST"])
def group_create(request: AuthedRequest) -> HttpResponse:
    form = ResourceGroupForm(posted(request))
    if request.method == "POST" and form.is_valid():
        try:
            group = vault_services.resource_group_create(actor=request.user, **form.cleaned_data)
        except (BadParameter, Conflict) as error:
            form.refuse(error)
        else:
            url = reverse("group-detail", args=[group.name])
            return done(request, f"Resource group {group.name} created.", url)
    return page(request, "vaults/group_form.html", {"form": form}, partial="form")


@require_GET
def group_detail(request: AuthedRequest, name: str) -> HttpResponse:
    group = visible_group(request, name)
    vaults = selectors.vault_list(actor=request.user, resource_group=group.name, key_users=True)
    can = capabilities(
        request.user,
        group,
        create_vault=Action.VAULT_WRITE,
        delete=Action.RESOURCE_GROUP_DELETE,
    )
    context = {"group": group, "vaults": vaults, "can": can}
    return page(request, "vaults/group_detail.html", context)


@require_http_methods(["GET", "POST"])
def group_delete(request: AuthedRequest, name: str) -> HttpResponse:
    group = visible_group(request, name)
    if request.method == "POST":
        vault_services.resource_group_delete(actor=request.user, name=group.name)
        return done(request, f"Resource group {group.name} deleted.", reverse("group-list"))
    return page(request, "vaults/group_delete.html", {"group": group}, partial="confirm")


# --- vaults ----------------------------------------------------------------------------------


def visible_vault(request: AuthedRequest, name: str) -> Vault:
    """A live vault the operator may see or use the keys of; 404 for anyone else."""
    vaults = selectors.vault_list(actor=request.user, key_users=True)
    vault = vaults.filter(name=name.lower()).first()
    if vault is None:
        raise Http404(f"No vault '{name}' that you can see.")
    return vault


def readable_vault(request: AuthedRequest, name: str) -> Vault:
    """A live vault the operator may read as a resource (its properties); 404 otherwise, also
    for those who only use its keys."""
    vault = selectors.vault_list(actor=request.user).filter(name=name.lower()).first()
    if vault is None:
        raise Http404(f"No vault '{name}' whose properties you can see.")
    return vault


def _filtered_vaults(request: AuthedRequest) -> tuple[QuerySet[Vault], dict[str, str]]:
    filters = {name: request.GET.get(name, "").strip() for name in ("group", "location", "sku")}
    vaults = selectors.vault_list(
        actor=request.user, resource_group=filters["group"] or None, key_users=True
    )
    if filters["location"]:
        vaults = vaults.filter(location=filters["location"].replace(" ", "").lower())
    if filters["sku"]:
        vaults = vaults.filter(sku=filters["sku"])
    return vaults.annotate(key_count=Count("keys", filter=Q(keys__deleted_at=None))), filters


@require_GET
def vault_list(request: AuthedRequest) -> HttpResponse:
    vaults, filters = _filtered_vaults(request)
    visible = selectors.vault_list(actor=request.user, key_users=True)
    context = {
        "vaults": vaults,
        "filters": filters,
        "groups": selectors.resource_group_list(actor=request.user).values_list("name", flat=True),
        "locations": sorted(set(visible.values_list("location", flat=True))),
        "skus": Vault.Sku.choices,
        "can_create": _creatable_groups(request).exists(),
    }
    return page(request, "vaults/vault_list.html", context, partial="vault-table")


def _creatable_groups(request: AuthedRequest) -> QuerySet[ResourceGroup]:
    return selectors.resource_group_list(actor=request.user, action=Action.VAULT_WRITE)


@require_http_methods(["GET", "POST"])
def vault_create(request: AuthedRequest) -> HttpResponse:
    creatable = list(_creatable_groups(request).values_list("name", flat=True))
    if request.method == "GET" and not creatable:
        raise Http404("There is no resource group you may create vaults in.")
    # The form offers the groups one may create in; a POST naming any other group is the
    # service's to refuse (and record), as from any other face.
    posted_group = request.POST.get("resource_group", "") if request.method == "POST" else ""
    groups = [*creatable, posted_group] if posted_group not in ("", *creatable) else creatable
    initial = {"resource_group": request.GET.get("group", creatable[0] if creatable else "")}
    form = VaultCreateForm(posted(request), groups=groups, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            vault = vault_services.vault_create(actor=request.user, **form.cleaned_data)
        except (BadParameter, Conflict) as error:
            form.refuse(error)
        else:
            url = reverse("vault-detail", args=[vault.name])
            return done(request, f"Vault {vault.name} created.", url)
    return page(request, "vaults/vault_form.html", {"form": form}, partial="form")


@require_GET
def vault_detail(request: AuthedRequest, name: str) -> HttpResponse:
    return redirect("key-list", visible_vault(request, name).name)


@require_http_methods(["GET", "POST"])
def vault_properties(request: AuthedRequest, name: str) -> HttpResponse:
    vault = readable_vault(request, name)
    can = capabilities(request.user, vault, edit=Action.VAULT_WRITE, delete=Action.VAULT_DELETE)
    form = VaultPropertiesForm(posted(request), vault=vault)
    if request.method == "POST" and form.is_valid():
        try:
            vault_services.vault_update(actor=request.user, name=vault.name, **form.cleaned_data)
        except BadParameter as error:
            form.refuse(error)
        else:
            url = reverse("vault-properties", args=[vault.name])
            return done(request, f"Vault {vault.name} updated.", url)
    context = {"vault": vault, "form": form, "can": can, "tab": "properties"}
    return page(request, "vaults/vault_properties.html", context, partial="form")


@require_http_methods(["GET", "POST"])
def vault_delete(request: AuthedRequest, name: str) -> HttpResponse:
    vault = readable_vault(request, name)
    if request.method == "POST":
        # Forced only past the keys the operator was shown: keys created since the
        # confirmation come back as the service's refusal.
        with_keys = request.POST.get("with_keys") == "yes"
        vault_services.vault_delete(actor=request.user, name=vault.name, force=with_keys)
        message = (
            f"Vault {vault.name} deleted; it can be recovered for "
            f"{vault.soft_delete_retention_days} days."
        )
        return done(request, message, reverse("vault-list"))
    key_count = vault.keys.filter(deleted_at=None).count()
    context = {"vault": vault, "key_count": key_count}
    return page(request, "vaults/vault_delete.html", context, partial="confirm")
