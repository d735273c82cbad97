"""Console form for alert rules: where the events happen, which events, and where they go.

The form only parses what the browser sends; the alert services validate names, addresses
and URLs and authorize the scope. Their refusals are shown beside the field they concern.
"""

from typing import Any

from django import forms

from kvconsole.errors import ServiceError

from .forms import ServiceForm
from .models import AlertRule
from .selectors import AlertScopes
from .services.alerts import MAX_ATTEMPTS_THRESHOLD, MAX_WINDOW_SECONDS, SUBSCRIBABLE_EVENT_TYPES

DEPLOYMENT_SCOPE = "deployment"
GROUP_PREFIX, VAULT_PREFIX = "group:", "vault:"

# The field each refusal of the alert services is about; others are the form's own.
_FIELD_OF_ERROR = {
    "InvalidAlertRuleName": "name",
    "AlertRuleExists": "name",
    "InvalidEventType": "event_types",
    "InvalidWebhookUrl": "target",
    "InvalidEmailAddress": "target",
    "KeyNotFound": "key_name",
    "InvalidScope": "scope",
    "VaultNotFound": "scope",
    "ResourceGroupNotFound": "scope",
}


class AlertRuleForm(ServiceForm):
    name = forms.CharField(
        max_length=64,
        help_text="3-64 letters, digits and hyphens; unique in the deployment.",
        widget=forms.TextInput(attrs={"pattern": "[A-Za-z0-9\\-]{3,64}", "autocomplete": "off"}),
    )
    scope = forms.ChoiceField(
        help_text="Where the events happen. A rule on a resource group hears about every vault "
        "in it.",
    )
    key_name = forms.CharField(
        label="Key (optional)",
        max_length=127,
        required=False,
        help_text="With a vault: only the events about this key.",
    )
    event_types = forms.MultipleChoiceField(
        label="Events",
        choices=[(kind.value, kind.label) for kind in SUBSCRIBABLE_EVENT_TYPES],
        widget=forms.CheckboxSelectMultiple,
    )
    channel = forms.ChoiceField(
        choices=AlertRule.Channel.choices,
        initial=AlertRule.Channel.EMAIL,
        widget=forms.RadioSelect,
    )
    target = forms.CharField(
        label="Recipients or webhook URL",
        max_length=1000,
        help_text="Email: addresses separated by commas. Webhook: an HTTPS URL; each delivery is "
        "signed with HMAC-SHA256 under the rule's secret, shown once when the rule is made.",
    )
    schema = forms.ChoiceField(
        label="Webhook schema",
        choices=AlertRule.Schema.choices,
        initial=AlertRule.Schema.EVENT_GRID,
        widget=forms.RadioSelect,
        help_text="How a webhook receives events; email ignores it.",
    )
    attempts = forms.IntegerField(
        label="Refusals that raise Unauthorized access attempts",
        min_value=1,
        max_value=MAX_ATTEMPTS_THRESHOLD,
        initial=AlertRule._meta.get_field("attempts").get_default(),
        help_text="Refusals of one principal on one vault; used only by that event.",
    )
    window_seconds = forms.IntegerField(
        label="Within (seconds)",
        min_value=1,
        max_value=MAX_WINDOW_SECONDS,
        initial=AlertRule._meta.get_field("window_seconds").get_default(),
        help_text="The window the refusals are counted in; one event per window at most.",
    )
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args: Any, scopes: AlertScopes, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices: list[Any] = []
        if scopes.deployment:
            choices.append((DEPLOYMENT_SCOPE, "The whole deployment"))
        if scopes.groups:
            groups = [(GROUP_PREFIX + name, f"Resource group {name}") for name in scopes.groups]
            choices.append(("Resource groups", groups))
        if scopes.vaults:
            vaults = [(VAULT_PREFIX + name, f"Vault {name}") for name in scopes.vaults]
            choices.append(("Vaults", vaults))
        # A scope the form does not offer is still the service's to refuse (and record), as
        # from any other face.
        asked = self.data.get("scope", "") if self.is_bound else ""
        offered = {value for value, _ in _flattened(choices)}
        if asked.startswith((GROUP_PREFIX, VAULT_PREFIX)) and asked not in offered:
            choices.append((asked, asked.split(":", 1)[1]))
        field = self.fields["scope"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = choices

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        scope = cleaned.get("scope", "")
        if cleaned.get("key_name") and scope and not scope.startswith(VAULT_PREFIX):
            self.add_error("key_name", "A key is chosen within a vault: choose the vault first.")
        return cleaned

    def rule_arguments(self) -> dict[str, Any]:
        """What the alert services' `alert_rule_create` takes, from the cleaned form."""
        data = self.cleaned_data
        scope: str = data["scope"]
        group = scope.removeprefix(GROUP_PREFIX) if scope.startswith(GROUP_PREFIX) else ""
        vault = scope.removeprefix(VAULT_PREFIX) if scope.startswith(VAULT_PREFIX) else ""
        return {
            "name": data["name"],
            "resource_group": group,
            "vault_name": vault,
            "key_name": data["key_name"].strip(),
            "event_types": data["event_types"],
            "channel": data["channel"],
            "target": data["target"],
            "schema": data["schema"],
            "attempts": data["attempts"],
            "window_seconds": data["window_seconds"],
            "enabled": data["enabled"],
        }

    def refuse(self, error: ServiceError) -> None:
        field = _FIELD_OF_ERROR.get(error.code)
        self.add_error(field if field in self.fields else None, error.message)


def _flattened(choices: list[Any]) -> list[tuple[str, str]]:
    flat: list[tuple[str, str]] = []
    for value, label in choices:
        if isinstance(label, list):
            flat.extend(label)
        else:
            flat.append((value, label))
    return flat
