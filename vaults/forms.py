"""Console forms for resource groups and vaults.

Forms parse what a browser sends and apply the same naming rules the services enforce
(vaults/validation.py), so a mistake is shown beside its field; the service still checks
everything again, and its refusals appear as the form's own errors.
"""

from collections.abc import Callable
from typing import Any

from django import forms

from kvconsole.errors import BadParameter, ServiceError

from . import validation
from .models import MAX_TAGS, Vault
from .services.resources import MAX_RETENTION_DAYS, MIN_RETENTION_DAYS


def checked_by(rule: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A form field validator from a service rule that raises BadParameter."""

    def validate(value: Any) -> Any:
        try:
            return rule(value)
        except BadParameter as error:
            raise forms.ValidationError(error.message) from None

    return validate


class TagsField(forms.CharField):
    """Tags as `name=value` lines."""

    widget = forms.Textarea(attrs={"rows": 3, "placeholder": "environment=production"})

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("help_text", f"One name=value pair per line; at most {MAX_TAGS}.")
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, dict):
            return "\n".join(f"{name}={text}" for name, text in value.items())
        return value

    def to_python(self, value: Any) -> dict[str, str]:  # type: ignore[override]
        tags: dict[str, str] = {}
        for number, line in enumerate((value or "").splitlines(), start=1):
            if not line.strip():
                continue
            name, equals, text = line.partition("=")
            if not equals or not name.strip():
                raise forms.ValidationError(f"Line {number} is not name=value.")
            tags[name.strip()] = text.strip()
        return checked_by(validation.clean_tags)(tags)


class ServiceForm(forms.Form):
    """A form that can show a service's refusal as its own error."""

    def refuse(self, error: ServiceError) -> None:
        self.add_error(None, error.message)


class ResourceGroupForm(ServiceForm):
    name = forms.CharField(
        max_length=90,
        validators=[checked_by(validation.clean_resource_group_name)],
        help_text="1-90 letters, digits, underscores, hyphens, periods and parentheses; "
        "not ending with a period.",
    )
    location = forms.CharField(
        max_length=64,
        initial="westeurope",
        validators=[checked_by(validation.clean_location)],
        help_text="An Azure region name, such as westeurope.",
    )
    tags = TagsField()


class VaultCreateForm(ServiceForm):
    name = forms.CharField(
        max_length=24,
        validators=[checked_by(validation.clean_vault_name)],
        help_text="3-24 letters, digits and hyphens; starts with a letter, ends with a letter "
        "or digit, no '--'. Unique in the deployment, soft-deleted vaults included.",
        widget=forms.TextInput(attrs={"pattern": "[A-Za-z][A-Za-z0-9\\-]{1,22}[A-Za-z0-9]"}),
    )
    resource_group = forms.ChoiceField(help_text="Groups you may create vaults in.")
    location = forms.CharField(
        max_length=64,
        required=False,
        help_text="Leave empty for the resource group's location.",
    )
    sku = forms.ChoiceField(
        choices=Vault.Sku.choices,
        initial=Vault.Sku.STANDARD,
        label="Pricing tier (SKU)",
        help_text="Premium vaults would add hardware-protected (-HSM) keys.",
    )
    retention_days = forms.IntegerField(
        min_value=MIN_RETENTION_DAYS,
        max_value=MAX_RETENTION_DAYS,
        initial=MAX_RETENTION_DAYS,
        label="Soft-delete retention (days)",
        help_text=f"{MIN_RETENTION_DAYS}-{MAX_RETENTION_DAYS} days; fixed once the vault exists.",
    )
    purge_protection = forms.BooleanField(
        required=False,
        help_text="Deleted keys and the vault cannot be purged before their retention ends. "
        "Cannot be turned off once on.",
    )
    permission_model = forms.ChoiceField(
        choices=Vault.PermissionModel.choices,
        initial=Vault.PermissionModel.RBAC,
        widget=forms.RadioSelect,
    )
    tags = TagsField()

    def __init__(self, *args: Any, groups: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["resource_group"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [(name, name) for name in groups]

    def clean_location(self) -> str:
        location: str = self.cleaned_data["location"]
        return checked_by(validation.clean_location)(location) if location else ""


class VaultPropertiesForm(ServiceForm):
    sku = forms.ChoiceField(choices=Vault.Sku.choices, label="Pricing tier (SKU)")
    purge_protection = forms.BooleanField(required=False, help_text="Cannot be turned off once on.")
    tags = TagsField()

    def __init__(self, *args: Any, vault: Vault, **kwargs: Any) -> None:
        kwargs.setdefault(
            "initial",
            {"sku": vault.sku, "purge_protection": vault.purge_protection, "tags": vault.tags},
        )
        super().__init__(*args, **kwargs)
        if vault.purge_protection:
            self.fields["purge_protection"].disabled = True


class ConfirmNameForm(forms.Form):
    """A destructive action confirmed by typing the name of what it destroys."""

    confirm = forms.CharField(label="Type the name to confirm")

    def __init__(self, *args: Any, expected: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.expected = expected
        self.fields["confirm"].widget.attrs.update(
            {"data-confirm-name": expected, "autocomplete": "off", "spellcheck": "false"}
        )

    def clean_confirm(self) -> str:
        typed: str = self.cleaned_data["confirm"]
        if typed != self.expected:
            raise forms.ValidationError(f"Type {self.expected} exactly to confirm.")
        return typed
