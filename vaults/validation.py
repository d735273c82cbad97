"""Azure's rules for names, locations and tags, shared by every service that takes them."""

import re
from typing import Any

from django.conf import settings

from kvconsole.errors import BadParameter

from .models import LOCATION_NAME, MAX_TAG_LENGTH, MAX_TAGS, RESOURCE_GROUP_NAME, VAULT_NAME


def clean_resource_group_name(name: str) -> str:
    if not RESOURCE_GROUP_NAME.fullmatch(name or ""):
        raise BadParameter(
            f"Resource group name '{name}' is invalid. It must be 1-90 characters of letters, "
            "digits, underscores, hyphens, periods and parentheses, and must not end with a period."
        )
    return name


def clean_vault_name(name: str) -> str:
    """Vault names are DNS labels: compared and stored in lower case."""
    lowered = (name or "").lower()
    if not VAULT_NAME.fullmatch(lowered):
        raise BadParameter(
            f"Vault name '{name}' is invalid. It must be 3-24 characters of letters, digits and "
            "hyphens, start with a letter, end with a letter or digit, and contain no '--'."
        )
    return lowered


def clean_location(location: str) -> str:
    """Locations are compared as Azure does: 'West Europe' and 'westeurope' are the same."""
    normalized = (location or "").replace(" ", "").lower()
    if not LOCATION_NAME.fullmatch(normalized):
        raise BadParameter(f"Location '{location}' is invalid: use a name such as 'westeurope'.")
    return normalized


def clean_tags(tags: Any) -> dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, dict):
        raise BadParameter("Tags must be an object of name/value strings.")
    if len(tags) > MAX_TAGS:
        raise BadParameter(f"At most {MAX_TAGS} tags are allowed; {len(tags)} were given.")
    for name, value in tags.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise BadParameter("Tag names and values must be strings.")
        # PostgreSQL's JSON holds no NUL.
        if "\x00" in name or "\x00" in value:
            raise BadParameter("Tag names and values must not contain NUL characters.")
        if not 1 <= len(name) <= MAX_TAG_LENGTH or len(value) > MAX_TAG_LENGTH:
            raise BadParameter(
                f"Tag names must be 1-{MAX_TAG_LENGTH} characters and values at most "
                f"{MAX_TAG_LENGTH} characters."
            )
    return dict(tags)


# A host name (letters, digits, hyphens, dots) or an IP address in brackets (v6) or not,
# with a port unless it is 443, as a Host header names it.
_HOST_ALIAS = re.compile(
    r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*"
    r"|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?\Z"
)
MAX_HOST_ALIASES = 10


def console_host() -> str:
    """The console's host as a Host header names it (lower case, no `:443`)."""
    return settings.KVCONSOLE_CONSOLE_HOST.lower().removesuffix(":443")


def clean_host_aliases(aliases: Any) -> list[str]:
    """Host aliases in the form a Host header takes: lower case, `:443` left out. They may
    name neither the console nor a `{vault}.{suffix}` host."""
    if not isinstance(aliases, list) or not all(isinstance(alias, str) for alias in aliases):
        raise BadParameter("Host aliases must be a list of host names, each with its port.")
    if len(aliases) > MAX_HOST_ALIASES:
        raise BadParameter(f"A vault may have at most {MAX_HOST_ALIASES} host aliases.")
    cleaned = []
    for alias in aliases:
        host = alias.strip().lower().removesuffix(":443")
        if not _HOST_ALIAS.fullmatch(host) or len(host) > 255:
            raise BadParameter(
                f"Host alias '{alias}' is invalid: give a host name or IP address and its port, "
                "such as 127.0.0.1:8443."
            )
        domain = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if host == console_host() or domain.endswith(
            "." + settings.KVCONSOLE_VAULT_HOST_SUFFIX.lower()
        ):
            raise BadParameter(
                f"Host alias '{alias}' is the console's host or a vault host name already."
            )
        cleaned.append(host)
    return list(dict.fromkeys(cleaned))
