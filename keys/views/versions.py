"""Console pages for one key: its versions, each version's attributes, rotating, reverting,
the rotation policy, deleting and backing up.

As on every console page, reads go through selectors (404 for what the operator cannot
see) and each action is one service call, which authorizes and records it.
"""

import json

from django.http import Http404, HttpResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from kvconsole.console import done, page, posted
from kvconsole.errors import BadParameter, Conflict
from kvconsole.http import AuthedRequest
from vaults.permissions import Action, capabilities
from vaults.views.resources import visible_vault

from .. import selectors, services
from ..forms import RotationPolicyForm, VersionAttributesForm
from ..models import Key, KeyVersion
from .keys import badge_times, paginated, visible_key


def _key_capabilities(request: AuthedRequest, key: Key) -> dict[str, bool]:
    return capabilities(
        request.user,
        key,
        update=Action.KEY_UPDATE,
        rotate=Action.KEY_ROTATE,
        delete=Action.KEY_DELETE,
        backup=Action.KEY_BACKUP,
        read_policy=Action.ROTATION_POLICY_READ,
        write_policy=Action.ROTATION_POLICY_WRITE,
    )


@require_GET
def key_detail(request: AuthedRequest, vault: str, key: str) -> HttpResponse:
    found = visible_key(request, visible_vault(request, vault), key)
    versions = selectors.key_version_list(actor=request.user, key=found).order_by(
        "-created_at", "-id"
    )
    context = {
        "vault": found.vault,
        "key": found,
        "versions": paginated(request, versions),
        "can": _key_capabilities(request, found),
        **badge_times(),
    }
    return page(request, "keys/key_detail.html", context, partial="versions")


@require_POST
def key_rotate(request: AuthedRequest, vault: str, key: str) -> HttpResponse:
    found = visible_key(request, visible_vault(request, vault), key)
    rotated = services.key_rotate(actor=request.user, vault_name=found.vault.name, name=found.name)
    return done(
        request,
        f"Key {found.name} rotated: version {rotated.version} is now current.",
        reverse("key-detail", args=[found.vault.name, found.name]),
    )


@require_http_methods(["GET", "POST"])
def key_rotation_policy(request: AuthedRequest, vault: str, key: str) -> HttpResponse:
    found = visible_key(request, visible_vault(request, vault), key)
    names = {"vault_name": found.vault.name, "name": found.name}
    shown = None
    if request.method == "POST":
        form = RotationPolicyForm(request.POST)
    else:
        shown = services.key_rotation_policy_get(actor=request.user, **names)
        form = RotationPolicyForm(policy=shown.policy)
    if request.method == "POST" and form.is_valid():
        try:
            services.key_rotation_policy_set(
                actor=request.user,
                lifetime_actions=form.lifetime_actions(),
                expiry_time=form.cleaned_data["expiry_time"],
                **names,
            )
        except (BadParameter, Conflict) as error:
            form.refuse(error)
        else:
            return done(
                request,
                f"Rotation policy of {found.name} saved.",
                reverse("key-detail", args=[found.vault.name, found.name]),
            )
    can = capabilities(request.user, found, write_policy=Action.ROTATION_POLICY_WRITE)
    context = {"vault": found.vault, "key": found, "policy": shown, "form": form, "can": can}
    return page(request, "keys/rotation_policy.html", context, partial="form")


@require_http_methods(["GET", "POST"])
def key_delete(request: AuthedRequest, vault: str, key: str) -> HttpResponse:
    found = visible_key(request, visible_vault(request, vault), key)
    if request.method == "POST":
        deleted = services.key_delete(
            actor=request.user, vault_name=found.vault.name, name=found.name
        )
        message = (
            f"Key {deleted.name} deleted; it can be recovered from Deleted keys until "
            f"{deleted.scheduled_purge_at:%Y-%m-%d %H:%M} UTC."
        )
        return done(request, message, reverse("key-list", args=[found.vault.name]))
    context = {"vault": found.vault, "key": found}
    return page(request, "keys/key_delete.html", context, partial="confirm")


@require_POST
def key_backup(request: AuthedRequest, vault: str, key: str) -> HttpResponse:
    found = visible_key(request, visible_vault(request, vault), key)
    blob = services.key_backup(actor=request.user, vault_name=found.vault.name, name=found.name)
    filename = f"{found.vault.name}-{found.name}.keybackup"
    response = HttpResponse(
        blob,
        content_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
    # A backup holds the key (sealed): no cache keeps a copy.
    add_never_cache_headers(response)
    return response


# --- versions ----------------------------------------------------------------------------------


def _visible_version(request: AuthedRequest, vault: str, key: str, version: str) -> KeyVersion:
    found = visible_key(request, visible_vault(request, vault), key)
    versions = selectors.key_version_list(actor=request.user, key=found)
    match = versions.filter(version=version.lower()).first()
    if match is None:
        raise Http404(f"No version '{version}' of {found.name} that you can see.")
    match.key = found
    return match


@require_http_methods(["GET", "POST"])
def version_detail(request: AuthedRequest, vault: str, key: str, version: str) -> HttpResponse:
    shown = _visible_version(request, vault, key, version)
    found = shown.key
    form = VersionAttributesForm(posted(request), version=shown)
    if request.method == "POST" and form.is_valid():
        try:
            services.key_update(
                actor=request.user,
                vault_name=found.vault.name,
                name=found.name,
                version=shown.version,
                **form.attributes(),
            )
        except (BadParameter, Conflict) as error:
            form.refuse(error)
        else:
            return done(
                request,
                f"Version {shown.version} of {found.name} updated.",
                reverse("key-version", args=[found.vault.name, found.name, shown.version]),
            )
    context = {
        "vault": found.vault,
        "key": found,
        "version": shown,
        # oct keys have no public part to show.
        "public_jwk": json.dumps(shown.public_jwk, indent=2) if shown.kty != "oct" else "",
        "form": form,
        "can": _key_capabilities(request, found),
        **badge_times(),
    }
    return page(request, "keys/version_detail.html", context, partial="form")


@require_POST
def version_enabled(request: AuthedRequest, vault: str, key: str, version: str) -> HttpResponse:
    shown = _visible_version(request, vault, key, version)
    found = shown.key
    enabled = request.POST.get("enabled") == "true"
    services.key_update(
        actor=request.user,
        vault_name=found.vault.name,
        name=found.name,
        version=shown.version,
        enabled=enabled,
    )
    return done(
        request,
        f"Version {shown.version} of {found.name} {'enabled' if enabled else 'disabled'}.",
        reverse("key-version", args=[found.vault.name, found.name, shown.version]),
    )


@require_POST
def version_revert(request: AuthedRequest, vault: str, key: str, version: str) -> HttpResponse:
    shown = _visible_version(request, vault, key, version)
    found = shown.key
    reverted = services.key_revert(
        actor=request.user, vault_name=found.vault.name, name=found.name, version=shown.version
    )
    return done(
        request,
        f"Key {found.name} reverted to version {shown.version}: its material is now the "
        f"current version, {reverted.version}.",
        reverse("key-detail", args=[found.vault.name, found.name]),
    )
