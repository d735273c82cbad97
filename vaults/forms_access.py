"""Console forms for access: role assignments, access policies and a vault's permission
model, and the principal picker they share.

Forms only parse what the browser sends. The access services resolve principals and roles,
authorize and record; their refusals appear as the forms' own errors.
"""

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django import forms
from django.http import QueryDict
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from accounts.roles import RoleDefinition

from .forms import ServiceForm
from .models import Vault

PRINCIPAL_KINDS = (
    ("", "Any"),
    ("user", "User"),
    ("group", "Group"),
    ("application", "Application"),
)

# The key permissions as the Azure portal names and groups them.
KEY_PERMISSION_GROUPS: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    (
        "keys_management",
        "Key management operations",
        (
            ("get", "Get"),
            ("list", "List"),
            ("update", "Update"),
            ("create", "Create"),
            ("import", "Import"),
            ("delete", "Delete"),
            ("recover", "Recover"),
            ("backup", "Backup"),
            ("restore", "Restore"),
        ),
    ),
    (
        "keys_crypto",
        "Cryptographic operations",
        (
            ("decrypt", "Decrypt"),
            ("encrypt", "Encrypt"),
            ("unwrapKey", "Unwrap Key"),
            ("wrapKey", "Wrap Key"),
            ("verify", "Verify"),
            ("sign", "Sign"),
        ),
    ),
    ("keys_privileged", "Privileged key operations", (("purge", "Purge"), ("release", "Release"))),
    (
        "keys_rotation",
        "Rotation policy operations",
        (
            ("rotate", "Rotate"),
            ("getrotationpolicy", "Get Rotation Policy"),
            ("setrotationpolicy", "Set Rotation Policy"),
        ),
    ),
)
KEY_PERMISSION_LABELS = {
    permission: label for _, _, choices in KEY_PERMISSION_GROUPS for permission, label in choices
}


@dataclass(frozen=True)
class PolicyTemplate:
    name: str
    key_permissions: tuple[str, ...]


# Azure's access-policy templates, keys only (kvconsole holds no secrets or certificates).
# "Key Management" and "Key, Secret & Certificate Management" tick the portal's key
# management operations, as hashicorp/terraform-provider-azurerm's templates list them
# (internal/services/keyvault/key_vault_access_policy_data_source.go). "SQL Server
# Connector" ticks Get, List, Unwrap Key and Wrap Key: Microsoft's SQL Server EKM setup
# guide (setup-steps-for-extensible-key-management-using-the-azure-key-vault.md) and
# azure/key-vault/general/rbac-migration.md.
_KEY_MANAGEMENT = (
    "get",
    "list",
    "update",
    "create",
    "import",
    "delete",
    "recover",
    "backup",
    "restore",
)
ACCESS_POLICY_TEMPLATES = {
    "key-management": PolicyTemplate("Key Management", _KEY_MANAGEMENT),
    "key-secret-certificate-management": PolicyTemplate(
        "Key, Secret & Certificate Management", _KEY_MANAGEMENT
    ),
    "sql-server-connector": PolicyTemplate(
        "SQL Server Connector", ("get", "list", "unwrapKey", "wrapKey")
    ),
}


class PrincipalInput(forms.TextInput):
    """A text input that suggests matching users, groups and applications as the operator
    types: htmx fills its <datalist> from the principal search. Without JavaScript it is a
    plain text input, and the services resolve what was typed."""

    def render(
        self,
        name: str,
        value: Any,
        attrs: dict[str, Any] | None = None,
        renderer: Any = None,
    ) -> SafeString:
        attrs = dict(attrs or {})
        options = f"{attrs.get('id', name)}-options"
        attrs.update(
            {
                "list": options,
                "autocomplete": "off",
                "spellcheck": "false",
                "hx-get": reverse("principal-search"),
                "hx-trigger": "input changed delay:250ms",
                "hx-target": f"#{options}",
                "hx-swap": "outerHTML",
                "hx-sync": "this:replace",
                "hx-vals": json.dumps({"list": options}),
            }
        )
        field = super().render(name, value, attrs, renderer)
        return format_html('{}<datalist id="{}"></datalist>', field, options)


def principal_field(help_text: str) -> forms.CharField:
    return forms.CharField(
        label="Principal", max_length=200, widget=PrincipalInput, help_text=help_text
    )


def principal_kind_field() -> forms.ChoiceField:
    return forms.ChoiceField(
        choices=PRINCIPAL_KINDS,
        required=False,
        label="Principal type",
        help_text="Needed only when a user and a group have the same name.",
    )


_ASSIGNEE_HELP = "A user's name, a group's name, or an application's client id; start typing."


class RoleAssignmentForm(ServiceForm):
    principal = principal_field(_ASSIGNEE_HELP)
    principal_kind = principal_kind_field()
    role = forms.ChoiceField(help_text="A built-in role; it applies here and to everything below.")

    def __init__(self, *args: Any, roles: Sequence[RoleDefinition], **kwargs: Any) -> None:
        # Ids unique on a page that holds other principal pickers.
        kwargs.setdefault("auto_id", "assignment-%s")
        super().__init__(*args, **kwargs)
        field = self.fields["role"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [("", "Choose a role"), *((role.id, role.name) for role in roles)]


class EffectiveAccessForm(ServiceForm):
    principal = principal_field(
        "A user's name or an application's client id; a group's members each have their own."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "effective-%s")
        super().__init__(*args, **kwargs)


def _permission_field(label: str, choices: tuple[tuple[str, str], ...]) -> forms.Field:
    return forms.MultipleChoiceField(
        label=label, choices=choices, required=False, widget=forms.CheckboxSelectMultiple
    )


def permissions_initial(permissions: Iterable[str]) -> dict[str, list[str]]:
    """The checkbox fields' initial values that tick exactly `permissions`."""
    wanted = set(permissions)
    return {
        field: [permission for permission, _ in choices if permission in wanted]
        for field, _, choices in KEY_PERMISSION_GROUPS
    }


class AccessPolicyForm(ServiceForm):
    """A principal's key permissions. Choosing a template ticks its permissions: the form is
    sent back with `apply=template` (at once with htmx, by a button without it), and the
    server answers with the boxes ticked and nothing saved."""

    principal = principal_field(_ASSIGNEE_HELP)
    principal_kind = principal_kind_field()
    template = forms.ChoiceField(
        label="Configure from template",
        required=False,
        choices=[("", "None"), *((key, t.name) for key, t in ACCESS_POLICY_TEMPLATES.items())],
        help_text="Ticks the template's key permissions; you can change them before saving.",
    )
    keys_management = _permission_field(*KEY_PERMISSION_GROUPS[0][1:])
    keys_crypto = _permission_field(*KEY_PERMISSION_GROUPS[1][1:])
    keys_privileged = _permission_field(*KEY_PERMISSION_GROUPS[2][1:])
    keys_rotation = _permission_field(*KEY_PERMISSION_GROUPS[3][1:])

    def __init__(self, *args: Any, url: str, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "policy-%s")
        super().__init__(*args, **kwargs)
        self.fields["template"].widget.attrs.update(
            {
                "hx-post": url,
                "hx-trigger": "change",
                "hx-vals": json.dumps({"apply": "template"}),
                "hx-target": "closest form",
                "hx-swap": "outerHTML",
            }
        )

    @classmethod
    def with_template(cls, data: QueryDict, *, url: str) -> "AccessPolicyForm":
        """An unsaved form for the principal in `data`, with its template's permissions
        ticked (or the ones ticked in `data` if it names no template)."""
        chosen = ACCESS_POLICY_TEMPLATES.get(str(data.get("template", "")))
        ticked = (
            chosen.key_permissions
            if chosen is not None
            else [value for field, _, _ in KEY_PERMISSION_GROUPS for value in data.getlist(field)]
        )
        initial: dict[str, Any] = {
            "principal": data.get("principal", ""),
            "principal_kind": data.get("principal_kind", ""),
            "template": data.get("template", "") if chosen is not None else "",
            **permissions_initial(ticked),
        }
        return cls(initial=initial, url=url)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        permissions = [
            permission
            for field, _, _ in KEY_PERMISSION_GROUPS
            for permission in cleaned.get(field, [])
        ]
        if not permissions:
            raise forms.ValidationError("Tick at least one key permission, or choose a template.")
        cleaned["key_permissions"] = permissions
        return cleaned


class PermissionModelForm(ServiceForm):
    permission_model = forms.ChoiceField(
        choices=Vault.PermissionModel.choices, widget=forms.HiddenInput
    )
