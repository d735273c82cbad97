"""Console forms for applications (service principals), their credentials and workloads.

They parse what a browser sends; the directory services check everything again, and their
refusals appear as the form's own errors.
"""

from datetime import timedelta
from typing import Any

from django import forms
from django.utils import timezone

from accounts.certificates import MAX_CERTIFICATE_BYTES

from .forms import ServiceForm
from .services.directory import (
    DEFAULT_SECRET_YEARS,
    DESCRIPTION_MAX_LENGTH,
    DISPLAY_NAME_MAX_LENGTH,
    MAX_SECRET_YEARS,
)


def _display_name_field() -> forms.CharField:
    return forms.CharField(
        max_length=DISPLAY_NAME_MAX_LENGTH,
        label="Display name",
        help_text=f"1-{DISPLAY_NAME_MAX_LENGTH} characters; people see it, clients use the "
        "application (client) id.",
    )


def _description_field(help_text: str) -> forms.CharField:
    return forms.CharField(
        max_length=DESCRIPTION_MAX_LENGTH, required=False, label="Description", help_text=help_text
    )


class ApplicationForm(ServiceForm):
    """Register or rename an application."""

    display_name = _display_name_field()


CUSTOM = "custom"
# The lifetimes Entra ID's portal offers, in days, or a custom end date.
SECRET_LIFETIMES = [
    ("90", "90 days (3 months)"),
    ("180", "180 days (6 months)"),
    ("365", "365 days (12 months)"),
    ("545", "545 days (18 months)"),
    ("730", "730 days (24 months)"),
    (CUSTOM, "Custom end date"),
]


class SecretAddForm(ServiceForm):
    description = _description_field("Which client or deployment will use this secret.")
    lifetime = forms.ChoiceField(
        choices=SECRET_LIFETIMES,
        initial=str(365 * DEFAULT_SECRET_YEARS),
        label="Expires",
        help_text=f"At most {MAX_SECRET_YEARS} years. Add a new secret before this one ends.",
    )
    expires_at = forms.DateTimeField(
        required=False,
        label="Custom end (UTC)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text="Only with a custom end date.",
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        lifetime = cleaned.get("lifetime")
        if lifetime == CUSTOM:
            # The service checks that the end is in the future and within the limit.
            if cleaned.get("expires_at") is None:
                self.add_error("expires_at", "Choose the end date and time.")
        elif lifetime:
            cleaned["expires_at"] = timezone.now() + timedelta(days=int(lifetime))
        return cleaned


class UnechoedTextarea(forms.Textarea):
    """A textarea that never shows back what was sent: pasted by mistake, it may be a private
    key, and a refused form must not put it into the page."""

    def format_value(self, value: Any) -> str | None:
        return None


class CertificateAddForm(ServiceForm):
    certificate_file = forms.FileField(
        required=False,
        label="Certificate file",
        help_text="A .cer, .crt or .pem file (PEM or DER): the public certificate only.",
    )
    certificate_pem = forms.CharField(
        required=False,
        strip=False,
        label="Or paste the certificate (PEM)",
        widget=UnechoedTextarea(
            attrs={"rows": 6, "placeholder": "-----BEGIN CERTIFICATE-----", "spellcheck": "false"}
        ),
        help_text="Never a private key: the application keeps it to sign its client assertions.",
    )
    description = _description_field("Which client or host holds the certificate's key.")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        upload = cleaned.get("certificate_file")
        pasted = cleaned.get("certificate_pem", "")
        if upload and pasted.strip():
            raise forms.ValidationError("Upload a file or paste a certificate, not both.")
        if not upload and not pasted.strip():
            raise forms.ValidationError("Upload a certificate file or paste a PEM certificate.")
        return cleaned

    def certificate(self) -> bytes:
        """The certificate's bytes; one byte over the limit is enough for the service to
        refuse an oversized upload without reading all of it."""
        upload = self.cleaned_data.get("certificate_file")
        if upload:
            data: bytes = upload.read(MAX_CERTIFICATE_BYTES + 1)
            return data
        pasted: str = self.cleaned_data["certificate_pem"]
        return pasted.encode("utf-8")


class WorkloadIdentityForm(ServiceForm):
    description = _description_field("Which workload this is, such as billing-worker.")
