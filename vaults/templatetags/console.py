"""Template helpers of the console's layout."""

from django import template
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from ..models import Vault
from ..permissions import Action, may

register = template.Library()


@register.simple_tag(takes_context=True)
def nav_link(
    context: template.Context, url_name: str, label: str, exact: bool = False
) -> SafeString:
    """A link of the main navigation, marked as the current page for its whole section."""
    url = reverse(url_name)
    path = context["request"].path
    current = path == url if exact else path.startswith(url)
    return format_html(
        '<a href="{}"{}>{}</a>', url, SafeString(' aria-current="page"') if current else "", label
    )


@register.simple_tag(takes_context=True)
def vault_readable(context: template.Context, vault: Vault) -> bool:
    """Whether the operator may read the vault as a resource (its Properties tab), not only
    use its keys."""
    return may(context["request"].user, Action.VAULT_READ, vault)
