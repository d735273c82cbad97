"""Authenticators for tests: enrol one as the console would, and read the code it shows."""

import time

from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import User


def enrol(user: User) -> TOTPDevice:
    """The person's confirmed authenticator (made on first use)."""
    device, _ = TOTPDevice.objects.get_or_create(
        user=user, confirmed=True, defaults={"name": "Test authenticator"}
    )
    return device


def code(device: TOTPDevice, *, steps_ahead: int = 0) -> str:
    """The code the authenticator shows now, or the next one not yet used: a code is taken
    once, and a second sign-in within its 30 seconds needs the next."""
    device.refresh_from_db()
    step = max(int((time.time() - device.t0) // device.step), device.last_t + 1) + steps_ahead
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits)
    totp.time = device.t0 + step * device.step
    return f"{totp.token():0{device.digits}d}"


def wrong_code(device: TOTPDevice) -> str:
    right = {code(device, steps_ahead=ahead) for ahead in (-2, -1, 0, 1, 2)}
    return next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in right)
