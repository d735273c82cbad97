"""The services' clock: real time moved by KVCONSOLE_CLOCK_OFFSET, so that schedules of days
can be shown at once."""

from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from accounts.models import User
from keys import services as key_services
from kvconsole import clock
from kvconsole.errors import KeyNotActive
from vaults.models import Vault


@pytest.mark.parametrize(
    ("offset", "expected"),
    [("", timedelta(0)), ("P40D", timedelta(days=40)), ("-PT6H", timedelta(hours=-6))],
)
def test_the_offset_is_an_iso_duration(settings: Any, offset: str, expected: timedelta) -> None:
    settings.KVCONSOLE_CLOCK_OFFSET = offset
    assert clock.offset() == expected
    assert abs(clock.now() - (timezone.now() + expected)) < timedelta(seconds=5)


@pytest.mark.parametrize("offset", ["forty days", "P1M", "P1Y"])
def test_an_offset_without_a_fixed_length_is_refused(settings: Any, offset: str) -> None:
    settings.KVCONSOLE_CLOCK_OFFSET = offset
    with pytest.raises(ImproperlyConfigured):
        clock.now()


@pytest.mark.django_db
def test_the_services_go_by_the_moved_clock(
    settings: Any, system: User, vault: Vault, make_key: Any
) -> None:
    expires = timezone.now() + timedelta(days=30)
    make_key("month", kty="oct", size=256, expires=expires)
    arguments: dict[str, Any] = {"vault_name": vault.name, "name": "month", "algorithm": "A256GCM"}
    key_services.key_encrypt(actor=system, plaintext=b"now", **arguments)
    settings.KVCONSOLE_CLOCK_OFFSET = "P31D"
    with pytest.raises(KeyNotActive):
        key_services.key_encrypt(actor=system, plaintext=b"later", **arguments)
