"""Console forms for keys: create, import, a version's attributes, rotation policies, restore.

Forms parse what a browser sends and show the services' own rules beside their fields
(the same functions the services call); the service checks everything again, and its
refusals appear as the form's errors. Pasted or uploaded key material is read here and
handed to the service, never rendered back.
"""

import json
from datetime import UTC, datetime
from typing import Any

from django import forms
from django.conf import settings
from django.core.validators import RegexValidator
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_variables

from kvconsole import clock
from kvconsole.errors import BadParameter
from vaults.forms import ServiceForm, TagsField

from . import rotation
from .crypto import EC_CURVES, KEY_TYPES, OCT_SIZES, RSA_SIZES
from .models import KEY_NAME, KEY_OPERATIONS, KeyVersion
from .services._shared import DEFAULT_KEY_OPS, SUPPORTED_KEY_OPS, check_validity

SIZES = {"RSA": RSA_SIZES, "oct": OCT_SIZES}
DATETIME_LOCAL = "%Y-%m-%dT%H:%M"


class UtcDateTimeField(forms.DateTimeField):
    """A `datetime-local` input read and shown in UTC, whatever the server's time zone."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_LOCAL)
    input_formats = [DATETIME_LOCAL, "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"]

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        with timezone.override(UTC):
            return super().prepare_value(value)

    def to_python(self, value: Any) -> datetime | None:
        with timezone.override(UTC):
            return super().to_python(value)


class NeverEchoedTextarea(forms.Textarea):
    """A textarea whose value is never sent back to the browser (pasted key material)."""

    def format_value(self, value: Any) -> None:
        return None


def key_name_field() -> forms.CharField:
    return forms.CharField(
        max_length=127,
        validators=[
            RegexValidator(KEY_NAME, "Use 1-127 letters, digits and hyphens."),
        ],
        help_text="1-127 letters, digits and hyphens. An existing key's name adds a new "
        "version to that key.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )


def operations_field(kty: str | None) -> forms.MultipleChoiceField:
    offered = SUPPORTED_KEY_OPS[kty] if kty else KEY_OPERATIONS
    return forms.MultipleChoiceField(
        choices=[(operation, operation) for operation in offered],
        widget=forms.CheckboxSelectMultiple,
        label="Permitted operations",
        required=kty is not None,
        initial=DEFAULT_KEY_OPS[kty] if kty else [],
    )


class _AttributesForm(ServiceForm):
    """What every version has besides its material: enabled, validity, operations, tags."""

    enabled = forms.BooleanField(required=False, initial=True)
    not_before = UtcDateTimeField(
        label="Activation (nbf, UTC)", help_text="Empty: usable from now on."
    )
    expires = UtcDateTimeField(label="Expiry (exp, UTC)", help_text="Empty: never expires.")
    tags = TagsField()

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean() or {}
        try:
            check_validity(cleaned.get("not_before"), cleaned.get("expires"))
        except BadParameter as error:
            self.add_error("expires", error.message)
        return cleaned

    def attributes(self) -> dict[str, Any]:
        """The cleaned attributes as the key services name them."""
        data = self.cleaned_data
        return {
            "enabled": data["enabled"],
            "not_before": data["not_before"],
            "expires": data["expires"],
            "key_ops": list(data["ops"]) or None,
            "tags": data["tags"],
        }


class KeyCreateForm(_AttributesForm):
    field_order = ["name", "kty", "size", "curve", "ops", "enabled", "not_before", "expires"]

    name = key_name_field()
    kty = forms.ChoiceField(
        choices=[(kty, kty) for kty in KEY_TYPES], label="Key type", initial="RSA"
    )
    next_rotation_policy = forms.BooleanField(
        required=False, label="Next, set a rotation policy for this key"
    )

    def __init__(self, *args: Any, refresh_url: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        source = self.data if self.is_bound else self.initial
        kty = str(source.get("kty")) if source.get("kty") in KEY_TYPES else "RSA"
        # The sizes, curves and operations offered follow the type: changing it asks the
        # server for the form again (htmx), or a plain GET of the same page without script.
        self.fields["kty"].widget.attrs.update(
            {
                "hx-post": refresh_url,
                "hx-vals": '{"refresh": "1"}',
                "hx-trigger": "change",
                "hx-target": "#key-form",
                "hx-swap": "outerHTML",
                "hx-include": "closest form",
            }
        )
        if kty == "EC":
            self.fields["curve"] = forms.ChoiceField(
                choices=[(curve, curve) for curve in EC_CURVES], initial=EC_CURVES[0]
            )
        else:
            self.fields["size"] = forms.TypedChoiceField(
                choices=[(size, f"{size} bits") for size in SIZES[kty]],
                coerce=int,
                initial=SIZES[kty][0] if kty == "RSA" else SIZES[kty][-1],
                label="Key size",
            )
        self.fields["ops"] = operations_field(kty)
        self.order_fields(self.field_order)

    def service_arguments(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "name": data["name"],
            "kty": data["kty"],
            "size": data.get("size"),
            "curve": data.get("curve"),
            **self.attributes(),
        }


class KeyImportForm(_AttributesForm):
    field_order = ["name", "pasted", "file", "pem_password", "ops", "enabled"]

    name = key_name_field()
    pasted = forms.CharField(
        required=False,
        strip=False,
        label="Key (JWK or PEM)",
        widget=NeverEchoedTextarea(attrs={"rows": 8, "autocomplete": "off", "spellcheck": "false"}),
        help_text="A JSON Web Key with its private members, or a PEM private key (PKCS#1, "
        "SEC1 or PKCS#8). It is never shown again, not even after a mistake.",
    )
    file = forms.FileField(
        required=False, label="Or a file", help_text="A PEM file or a JWK JSON file."
    )
    pem_password = forms.CharField(
        required=False,
        strip=False,
        label="PEM password",
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
        help_text="Only for an encrypted PKCS#8 PEM.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["ops"] = operations_field(None)
        self.fields[
            "ops"
        ].help_text = "None ticked: the JWK's key_ops, or the defaults of the key's type."
        self.order_fields(self.field_order)

    @property
    def material_cleared(self) -> bool:
        """Whether key material was sent and is therefore not shown again."""
        return self.is_bound and bool(self.data.get("pasted", "").strip() or self.files)

    @method_decorator(sensitive_variables())
    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean() or {}
        pasted, upload = cleaned.get("pasted", ""), cleaned.get("file")
        if bool(pasted.strip()) == bool(upload):
            self.add_error(None, "Paste the key or choose a file, one of the two.")
            return cleaned
        if upload is not None and upload.size > settings.KVCONSOLE_MAX_REQUEST_BYTES:
            self.add_error("file", "The file is too large to be a key.")
            return cleaned
        content = upload.read() if upload is not None else pasted.encode()
        cleaned["jwk"], cleaned["pem"] = None, None
        if content.lstrip().startswith(b"{"):
            # As the CLI reads a key file: JSON is a JWK, anything else PEM.
            try:
                cleaned["jwk"] = json.loads(content)
            except (ValueError, RecursionError):
                self.add_error(None, "The key is neither PEM nor JWK JSON.")
        else:
            cleaned["pem"] = content
        return cleaned

    @method_decorator(sensitive_variables())
    def service_arguments(self) -> dict[str, Any]:
        data = self.cleaned_data
        password = data["pem_password"]
        return {
            "name": data["name"],
            "jwk": data["jwk"],
            "pem": data["pem"],
            "pem_password": password.encode() if password else None,
            **self.attributes(),
        }


class VersionAttributesForm(_AttributesForm):
    def __init__(self, *args: Any, version: KeyVersion, **kwargs: Any) -> None:
        kwargs.setdefault(
            "initial",
            {
                "enabled": version.enabled,
                "not_before": version.not_before,
                "expires": version.expires,
                "ops": version.key_ops,
                "tags": version.tags,
            },
        )
        super().__init__(*args, **kwargs)
        self.fields["ops"] = operations_field(version.kty)
        self.order_fields(["enabled", "not_before", "expires", "ops", "tags"])

    def attributes(self) -> dict[str, Any]:
        # Here an empty list would mean "no operations", which the field already refuses.
        return {**super().attributes(), "key_ops": list(self.cleaned_data["ops"])}


DURATION_HELP = "An ISO-8601 duration: P90D, P3M, P1Y, PT48H."


class RotationPolicyForm(ServiceForm):
    expiry_time = forms.CharField(
        required=False,
        max_length=rotation.MAX_DURATION_LENGTH,
        label="Expiry of versions made by rotation",
        help_text=f"{DURATION_HELP} At least P28D. Empty: they do not expire.",
    )
    rotate_trigger = forms.ChoiceField(
        required=False,
        label="Rotate automatically",
        choices=[
            ("", "Never"),
            (rotation.AFTER_CREATE, "A time after each version's creation"),
            (rotation.BEFORE_EXPIRY, "A time before each version's expiry"),
        ],
    )
    rotate_time = forms.CharField(
        required=False,
        max_length=rotation.MAX_DURATION_LENGTH,
        label="Rotation time",
        help_text=f"{DURATION_HELP} At least P7D from creation and from expiry.",
    )
    notify_before = forms.CharField(
        required=False,
        max_length=rotation.MAX_DURATION_LENGTH,
        label="Notify before expiry",
        help_text=f"{DURATION_HELP} Empty: P30D, as Azure does.",
    )

    def __init__(self, *args: Any, policy: rotation.Policy | None = None, **kwargs: Any) -> None:
        if policy is not None:
            rotate, notify = policy.action(rotation.ROTATE), policy.action(rotation.NOTIFY)
            kwargs.setdefault(
                "initial",
                {
                    "expiry_time": policy.expiry_time,
                    "rotate_trigger": rotate.trigger if rotate else "",
                    "rotate_time": rotate.duration if rotate else "",
                    "notify_before": notify.duration if notify else "",
                },
            )
        super().__init__(*args, **kwargs)

    def lifetime_actions(self) -> list[dict[str, Any]]:
        """The policy's actions in Azure's schema."""
        data = self.cleaned_data
        actions = []
        if data.get("rotate_trigger"):
            actions.append(
                rotation.LifetimeAction(
                    rotation.ROTATE, data["rotate_trigger"], data.get("rotate_time", "")
                ).as_dict()
            )
        if data.get("notify_before"):
            actions.append(
                rotation.LifetimeAction(
                    rotation.NOTIFY, rotation.BEFORE_EXPIRY, data["notify_before"]
                ).as_dict()
            )
        return actions

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean() or {}
        if cleaned.get("rotate_trigger") and not cleaned.get("rotate_time"):
            self.add_error("rotate_time", "Say when to rotate.")
        if self.errors:
            return cleaned
        # Azure's rules, one part at a time so that each refusal sits beside its field.
        now, expiry = clock.now(), cleaned.get("expiry_time", "")
        if not self._keeps_rules([], expiry, now, "expiry_time"):
            return cleaned
        fields = {rotation.ROTATE: "rotate_time", rotation.NOTIFY: "notify_before"}
        for action in self.lifetime_actions():
            self._keeps_rules([action], expiry, now, fields[action["action"]["type"]])
        return cleaned

    def _keeps_rules(self, actions: list[Any], expiry: str, now: datetime, field: str) -> bool:
        try:
            rotation.clean_policy(actions, expiry, now=now)
        except BadParameter as error:
            self.add_error(field, error.message)
            return False
        return True


class RestoreForm(ServiceForm):
    file = forms.FileField(label="Backup file", help_text="A .keybackup file from this deployment.")
    vault = forms.ChoiceField(label="Restore into", help_text="Vaults you may restore keys into.")

    def __init__(self, *args: Any, vaults: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["vault"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [(name, name) for name in vaults]

    def clean_file(self) -> bytes:
        upload = self.cleaned_data["file"]
        if upload.size > settings.KVCONSOLE_MAX_REQUEST_BYTES:
            raise forms.ValidationError("The file is too large to be a key backup.")
        blob: bytes = upload.read()
        return blob
