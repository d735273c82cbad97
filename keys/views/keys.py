"""Console pages for a vault's keys: the Keys and Deleted keys tabs, creating, importing and
restoring keys, and recovering or purging deleted ones.

Pages read through selectors, so a vault or key the operator cannot see is a 404; each
action calls one service, which authorizes and records it. Permissions are consulted here
only to decide which buttons and forms to show.
"""

from datetime import datetime
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpResponse
from django.urls import reverse
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from kvconsole import clock
from kvconsole.console import done, page, posted
from kvconsole.errors import BadParameter, Conflict
from kvconsole.http import AuthedRequest
from vaults.forms import ConfirmNameForm
from vaults.models import Vault
from vaults.permissions import Action, capabilities
from vaults.views.resources import visible_vault

from .. import selectors, services
from ..crypto import KEY_TYPES
from ..forms import KeyCreateForm, KeyImportForm, RestoreForm
from ..models import Key

PAGE_SIZE = 25
SORT_COLUMNS = {"name": "Name", "type": "Type", "created": "Created", "expires": "Expires"}
EXPIRY_FILTERS = {selectors.EXPIRED: "Expired", selectors.SOON: "Expiring within 30 days"}
ENABLED_FILTERS = {"yes": True, "no": False}


def visible_key(request: AuthedRequest, vault: Vault, name: str, *, deleted: bool = False) -> Key:
    """A key of `vault` the operator may see (a soft-deleted one with `deleted`); 404 else."""
    key = selectors.key_named(actor=request.user, vault=vault, name=name, deleted=deleted)
    if key is None:
        state = "deleted key" if deleted else "key"
        raise Http404(f"No {state} '{name}' in {vault.name} that you can see.")
    return key


def paginated(request: AuthedRequest, items: QuerySet[Any]) -> Page[Any]:
    return Paginator(items, PAGE_SIZE).get_page(request.GET.get("page"))


def badge_times() -> dict[str, datetime]:
    """The moments a page compares expiry dates with, for its badges."""
    now = clock.now()
    return {"now": now, "soon": now + selectors.EXPIRING_SOON}


# --- the Keys tab ------------------------------------------------------------------------------


def _key_filters(request: AuthedRequest) -> dict[str, str]:
    filters = {
        name: request.GET.get(name, "").strip()[:200]
        for name in ("q", "kty", "enabled", "expiry", "sort")
    }
    # Anything unknown is ignored, as if the filter were not set.
    if filters["kty"] not in KEY_TYPES:
        filters["kty"] = ""
    if filters["enabled"] not in ENABLED_FILTERS:
        filters["enabled"] = ""
    if filters["expiry"] not in EXPIRY_FILTERS:
        filters["expiry"] = ""
    if filters["sort"].removeprefix("-") not in SORT_COLUMNS:
        filters["sort"] = "name"
    return filters


def _sort_headers(sort: str) -> list[dict[str, str]]:
    """Each sortable column: its label, the sort its link asks for, and its aria-sort."""
    headers = []
    for column, label in SORT_COLUMNS.items():
        state = {column: "ascending", f"-{column}": "descending"}.get(sort, "")
        headers.append(
            {
                "label": label,
                "sort": f"-{column}" if state == "ascending" else column,
                "aria_sort": state,
            }
        )
    return headers


@require_GET
def key_list(request: AuthedRequest, vault: str) -> HttpResponse:
    found = visible_vault(request, vault)
    filters = _key_filters(request)
    times = badge_times()
    keys = selectors.key_list(
        actor=request.user,
        vault=found,
        q=filters["q"],
        kty=filters["kty"],
        enabled=ENABLED_FILTERS.get(filters["enabled"]),
        expiry=filters["expiry"],
        sort=filters["sort"],
        now=times["now"],
    )
    context = {
        "vault": found,
        "tab": "keys",
        "keys": paginated(request, keys),
        "filters": filters,
        "filtered": any(filters[name] for name in ("q", "kty", "enabled", "expiry")),
        "headers": _sort_headers(filters["sort"]),
        "key_types": KEY_TYPES,
        "expiry_filters": EXPIRY_FILTERS,
        "can": capabilities(
            request.user,
            found,
            create=Action.KEY_CREATE,
            import_key=Action.KEY_IMPORT,
            restore=Action.KEY_RESTORE,
        ),
        **times,
    }
    return page(request, "keys/key_list.html", context, partial="key-table")


# --- creating, importing and restoring ---------------------------------------------------------


@require_http_methods(["GET", "POST"])
def key_create(request: AuthedRequest, vault: str) -> HttpResponse:
    found = visible_vault(request, vault)
    can = capabilities(request.user, found, create=Action.KEY_CREATE)
    url = reverse("key-create", args=[found.name])
    # A change of type posts the form back to be shown again with what was filled in so
    # far (posted, so that the CSRF token never lands in a URL); the size or curve and the
    # operations become the new type's defaults.
    refresh = request.method == "POST" and "refresh" in request.POST
    if request.method == "POST" and not refresh:
        form = KeyCreateForm(request.POST, refresh_url=url)
    else:
        source = request.POST if refresh else request.GET
        initial: dict[str, Any] = {
            name: value
            for name, value in source.dict().items()
            if name not in ("ops", "size", "curve", "refresh", "csrfmiddlewaretoken")
        }
        if "kty" in source:
            # An unticked box is not sent: absent means unticked here, not the default.
            initial["enabled"] = "enabled" in source
        form = KeyCreateForm(initial=initial, refresh_url=url)
    if request.method == "POST" and form.is_valid():
        try:
            created = services.key_create(
                actor=request.user, vault_name=found.name, **form.service_arguments()
            )
        except (BadParameter, Conflict) as error:
            form.refuse(error)
        else:
            key = created.key.name
            next_page = "key-rotation-policy" if form.cleaned_data["next_rotation_policy"] else None
            return done(
                request,
                f"Key {key} created (version {created.version}).",
                reverse(next_page or "key-detail", args=[found.name, key]),
            )
    context = {"vault": found, "form": form, "can": can}
    return page(request, "keys/key_create.html", context, partial="form", status=_shown(can))


def _shown(can: dict[str, bool]) -> int:
    """A form page's status: 403 when the operator may not use the form it would hold."""
    return 200 if all(can.values()) else 403


@sensitive_post_parameters("pasted", "pem_password")
@require_http_methods(["GET", "POST"])
# Innermost: Django hides the locals of the function its wrapper calls.
@sensitive_variables()
def key_import(request: AuthedRequest, vault: str) -> HttpResponse:
    found = visible_vault(request, vault)
    can = capabilities(request.user, found, import_key=Action.KEY_IMPORT)
    form = KeyImportForm(posted(request), request.FILES if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            imported = services.key_import(
                actor=request.user, vault_name=found.name, **form.service_arguments()
            )
        except (BadParameter, Conflict) as error:
            form.refuse(error)
        else:
            key = imported.key.name
            return done(
                request,
                f"Key {key} imported (version {imported.version}).",
                reverse("key-detail", args=[found.name, key]),
            )
    context = {"vault": found, "form": form, "can": can}
    return page(request, "keys/key_import.html", context, partial="form", status=_shown(can))


@require_http_methods(["GET", "POST"])
def key_restore(request: AuthedRequest, vault: str) -> HttpResponse:
    found = visible_vault(request, vault)
    vaults = list(selectors.restorable_vaults(actor=request.user).values_list("name", flat=True))
    initial = {"vault": found.name}
    files = request.FILES if request.method == "POST" else None
    # The form offers the vaults one may restore into; a POST naming any other vault is the
    # service's to refuse (and record), as from any other face.
    posted_vault = request.POST.get("vault", "") if request.method == "POST" else ""
    choices = [*vaults, posted_vault] if posted_vault not in ("", *vaults) else vaults
    form = RestoreForm(posted(request), files, vaults=choices, initial=initial)
    if request.method == "POST" and form.is_valid():
        target = form.cleaned_data["vault"]
        try:
            restored = services.key_restore(
                actor=request.user, vault_name=target, blob=form.cleaned_data["file"]
            )
        except (BadParameter, Conflict) as error:
            form.refuse(error)
        else:
            key = restored.key.name
            return done(
                request,
                f"Key {key} restored into {target}.",
                reverse("key-detail", args=[target, key]),
            )
    can = {"restore": bool(vaults)}
    context = {"vault": found, "form": form, "can": can}
    return page(request, "keys/key_restore.html", context, partial="form", status=_shown(can))


# --- the Deleted keys tab ----------------------------------------------------------------------


@require_GET
def deleted_key_list(request: AuthedRequest, vault: str) -> HttpResponse:
    found = visible_vault(request, vault)
    keys = selectors.key_list(actor=request.user, vault=found, deleted=True)
    context = {
        "vault": found,
        "tab": "deleted-keys",
        "keys": paginated(request, keys),
        "can": capabilities(
            request.user, found, recover=Action.KEY_RECOVER, purge=Action.KEY_PURGE
        ),
    }
    return page(request, "keys/deleted_key_list.html", context, partial="deleted-table")


@require_POST
def key_recover(request: AuthedRequest, vault: str, key: str) -> HttpResponse:
    found = visible_vault(request, vault)
    deleted = visible_key(request, found, key, deleted=True)
    services.key_recover(actor=request.user, vault_name=found.name, name=deleted.name)
    return done(
        request,
        f"Key {deleted.name} recovered.",
        reverse("key-detail", args=[found.name, deleted.name]),
    )


@require_http_methods(["GET", "POST"])
def key_purge(request: AuthedRequest, vault: str, key: str) -> HttpResponse:
    found = visible_vault(request, vault)
    deleted = visible_key(request, found, key, deleted=True)
    form = ConfirmNameForm(posted(request), expected=deleted.name)
    if request.method == "POST" and form.is_valid():
        services.key_purge(actor=request.user, vault_name=found.name, name=deleted.name)
        return done(
            request,
            f"Key {deleted.name} purged; it cannot be recovered.",
            reverse("deleted-key-list", args=[found.name]),
        )
    context = {"vault": found, "key": deleted, "form": form}
    return page(request, "keys/key_purge.html", context, partial="confirm")
