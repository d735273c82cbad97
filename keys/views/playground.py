"""The crypto playground of a key version: encrypt, decrypt, sign, verify, wrap and unwrap
through the same services as the vault endpoint, which authorize, refuse and record each
call (face console).

The page offers an operation's form only when the operator's access and the version's
state allow it, and says why otherwise; the service decides again when the form is sent.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.http import Http404, HttpResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.text import slugify
from django.views.decorators.http import require_http_methods
from django_htmx.http import reswap, retarget

from kvconsole.console import page
from kvconsole.errors import BadParameter, ServiceError
from kvconsole.http import AuthedRequest, is_partial
from vaults.permissions import Action, capabilities
from vaults.views.resources import visible_vault

from .. import crypto, selectors
from .. import services as key_services
from ..models import KeyVersion
from ..playground import (
    DecryptForm,
    EncryptForm,
    OperationForm,
    SignForm,
    UnwrapForm,
    VerifyForm,
    WrapForm,
    as_text,
    encode,
)
from ..services._shared import check_usable
from .keys import visible_key

TEMPLATE = "keys/playground.html"
# The version segment that stands for whichever version is the key's current one.
CURRENT = "current"


@dataclass(frozen=True)
class Shown:
    """One value of a result, as copyable text."""

    label: str
    value: str
    element_id: str


@dataclass
class Result:
    values: list[Shown] = field(default_factory=list)
    valid: bool | None = None  # verify's answer


@dataclass(frozen=True)
class Call:
    """Who calls a service on which version, and how results are shown."""

    request: AuthedRequest
    version: KeyVersion
    output: str
    element_prefix: str

    def kwargs(self, data: dict[str, Any]) -> dict[str, Any]:
        return {
            "actor": self.request.user,
            "vault_name": self.version.key.vault.name,
            "name": self.version.key.name,
            "version": self.version.version,
            "algorithm": data["algorithm"],
        }

    def shown(self, label: str, value: bytes | None) -> list[Shown]:
        if value is None:
            return []
        element_id = f"{self.element_prefix}-{slugify(label)}"
        return [Shown(f"{label} ({self.output})", encode(value, self.output), element_id)]

    def shown_as_text(self, label: str, value: bytes) -> list[Shown]:
        text = as_text(value)
        if text is None:
            return []
        return [Shown(f"{label} (text)", text, f"{self.element_prefix}-{slugify(label)}-text")]

    def computed_digest(self, data: dict[str, Any]) -> list[Shown]:
        computed = data["computed"]
        if computed is None:
            return []
        return self.shown(f"{computed.hash_name} digest of the message", computed.value)


def _encrypt(call: Call, data: dict[str, Any]) -> Result:
    done = key_services.key_encrypt(
        **call.kwargs(data), plaintext=data["plaintext"], iv=data.get("iv"), aad=data.get("aad")
    )
    return Result(
        [
            *call.shown("Ciphertext", done.value),
            *call.shown("IV", done.iv),
            *call.shown("Authentication tag", done.tag),
        ]
    )


def _decrypt(call: Call, data: dict[str, Any]) -> Result:
    done = key_services.key_decrypt(
        **call.kwargs(data),
        ciphertext=data["ciphertext"],
        iv=data.get("iv"),
        tag=data.get("tag"),
        aad=data.get("aad"),
    )
    return Result(
        [*call.shown("Plaintext", done.value), *call.shown_as_text("Plaintext", done.value)]
    )


def _sign(call: Call, data: dict[str, Any]) -> Result:
    done = key_services.key_sign(**call.kwargs(data), digest=data["digest"])
    return Result([*call.shown("Signature", done.value), *call.computed_digest(data)])


def _verify(call: Call, data: dict[str, Any]) -> Result:
    done = key_services.key_verify(
        **call.kwargs(data), digest=data["digest"], signature=data["signature"]
    )
    return Result(call.computed_digest(data), valid=done.valid)


def _wrap(call: Call, data: dict[str, Any]) -> Result:
    done = key_services.key_wrap(**call.kwargs(data), key=data["key"])
    return Result(call.shown("Wrapped key", done.value))


def _unwrap(call: Call, data: dict[str, Any]) -> Result:
    done = key_services.key_unwrap(**call.kwargs(data), encrypted_key=data["encrypted_key"])
    return Result(
        [*call.shown("Unwrapped key", done.value), *call.shown_as_text("Unwrapped key", done.value)]
    )


@dataclass(frozen=True)
class Operation:
    key_op: str  # as in a version's key_ops
    title: str
    action: Action
    form_class: type[OperationForm]
    run: Callable[[Call, dict[str, Any]], Result]


OPERATIONS = {
    operation.key_op: operation
    for operation in (
        Operation("encrypt", "Encrypt", Action.KEY_ENCRYPT, EncryptForm, _encrypt),
        Operation("decrypt", "Decrypt", Action.KEY_DECRYPT, DecryptForm, _decrypt),
        Operation("sign", "Sign", Action.KEY_SIGN, SignForm, _sign),
        Operation("verify", "Verify", Action.KEY_VERIFY, VerifyForm, _verify),
        Operation("wrapKey", "Wrap key", Action.KEY_WRAP, WrapForm, _wrap),
        Operation("unwrapKey", "Unwrap key", Action.KEY_UNWRAP, UnwrapForm, _unwrap),
    )
}


@dataclass(frozen=True)
class Family:
    """A tab: an operation and its reverse."""

    name: str
    title: str
    key_ops: tuple[str, str]


FAMILIES = (
    Family("encrypt", "Encrypt / decrypt", ("encrypt", "decrypt")),
    Family("sign", "Sign / verify", ("sign", "verify")),
    Family("wrap", "Wrap / unwrap", ("wrapKey", "unwrapKey")),
)


@dataclass
class Panel:
    """One operation on the page: its form, or why it is not offered, and its result."""

    operation: Operation
    algorithms: tuple[str, ...]
    form: OperationForm | None
    reasons: list[str]
    result: Result | None = None

    @property
    def element_id(self) -> str:
        return f"op-{self.operation.key_op.lower()}"


def _algorithms(version: KeyVersion, key_op: str) -> tuple[str, ...]:
    # Which names fit the key's type, size and curve: a fact about the type, no material.
    size = None if version.kty == "EC" else version.size
    return crypto.algorithms(version.kty, key_op, size=size, curve=version.curve or None)


def _reasons(version: KeyVersion, key_op: str, allowed: bool) -> list[str]:
    """Why the operator cannot use `key_op` on this version now (empty if they can)."""
    reasons = []
    try:
        check_usable(version, key_op)
    except ServiceError as refusal:
        reasons.append(refusal.message)
    if not allowed:
        reasons.append(f"Your access to this key does not include {key_op}.")
    return reasons


def _panel(version: KeyVersion, operation: Operation, allowed: bool, data: Any = None) -> Panel:
    algorithms = _algorithms(version, operation.key_op)
    reasons = _reasons(version, operation.key_op, allowed)
    form = None
    # A sent form is always read: whoever may not use it is refused by the service.
    if data is not None or not reasons:
        form = operation.form_class(
            data, prefix=operation.key_op, kty=version.kty, algorithms=algorithms
        )
    return Panel(operation, algorithms, form, reasons)


def _visible_version(
    request: AuthedRequest, vault_name: str, name: str, version: str
) -> KeyVersion:
    """A version of a live key the operator may see; 404 for anyone else."""
    key = visible_key(request, visible_vault(request, vault_name), name)
    versions = selectors.key_version_list(actor=request.user, key=key)
    if version == CURRENT:
        version = key.current_version.version if key.current_version else ""
    found = versions.filter(version=version.lower()).first()
    if found is None:
        raise Http404(f"No version '{version}' of key {key.name} that you can see.")
    return found


def _sent_and_family(
    request: AuthedRequest, version: KeyVersion, families: list[Family]
) -> tuple[Operation | None, Family]:
    """The operation a POST sends, and the tab to show: the sent operation's, or the one
    asked for, or the first this key type has."""
    if request.method != "POST":
        chosen = request.GET.get("family")
        return None, next((family for family in families if family.name == chosen), families[0])
    sent = OPERATIONS.get(request.POST.get("operation", ""))
    for family in families:
        if sent is not None and sent.key_op in family.key_ops:
            return sent, family
    offered = ", ".join(family.title.lower() for family in families)
    raise BadParameter(f"This {version.kty} key offers only: {offered}.")


@require_http_methods(["GET", "POST"])
def key_playground(request: AuthedRequest, vault: str, key: str, version: str) -> HttpResponse:
    target = _visible_version(request, vault, key, version)
    allowed = capabilities(
        request.user,
        target.key,
        **{operation.key_op: operation.action for operation in OPERATIONS.values()},
    )
    families = [
        family
        for family in FAMILIES
        if any(_algorithms(target, key_op) for key_op in family.key_ops)
    ]
    sent, family = _sent_and_family(request, target, families)
    panels = [
        _panel(
            target,
            OPERATIONS[key_op],
            allowed[key_op],
            request.POST if sent and sent.key_op == key_op else None,
        )
        for key_op in family.key_ops
    ]
    context = {
        "vault": target.key.vault,
        "key": target.key,
        "version": target,
        "tab": "keys",
        "families": families,
        "family": family,
        "panels": panels,
        "post_url": reverse(
            "key-playground", args=[target.key.vault.name, target.key.name, target.version]
        ),
    }
    if sent is None:
        return page(request, TEMPLATE, context, partial="playground")
    panel = next(panel for panel in panels if panel.operation is sent)
    form = panel.form
    assert form is not None
    if form.is_valid():
        call = Call(request, target, form.cleaned_data["output"], panel.element_id)
        try:
            panel.result = sent.run(call, form.cleaned_data)
        except BadParameter as error:
            form.refuse(error)
    context["panel"] = panel
    if panel.result is not None:
        # Plaintext and unwrapped keys are kept by no browser or proxy cache.
        response = page(request, TEMPLATE, context, partial="result")
        add_never_cache_headers(response)
        return response
    # The errors belong beside the fields: the whole operation is swapped, not its result.
    response = page(request, TEMPLATE, context, partial="operation")
    if is_partial(request):
        reswap(retarget(response, f"#{panel.element_id}"), "outerHTML")
    return response
