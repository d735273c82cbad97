"""The time the services go by: the real time, moved by `KVCONSOLE_CLOCK_OFFSET`.

Rotation, expiry and purge schedules span days or months. A deployment started with an
offset (an ISO-8601 duration such as `P40D`, or `-PT6H`) lives that far ahead of (or behind)
the real time, so a demonstration or a test can show them without waiting: for example
`KVCONSOLE_CLOCK_OFFSET=P40D python manage.py kv rotate-due`. Token lifetimes and the
activity log's own timestamps keep to the real time.
"""

import functools
from datetime import datetime, timedelta

import isodate
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone


def now() -> datetime:
    """The current time as the services see it (aware, UTC)."""
    return timezone.now() + offset()


def offset() -> timedelta:
    return _parsed(settings.KVCONSOLE_CLOCK_OFFSET)


@functools.cache
def _parsed(text: str) -> timedelta:
    if not text:
        return timedelta(0)
    negative = text.startswith("-")
    try:
        duration = isodate.parse_duration(text.removeprefix("-"))
    except (isodate.ISO8601Error, ValueError):
        raise ImproperlyConfigured(
            f"KVCONSOLE_CLOCK_OFFSET={text!r} is not an ISO-8601 duration such as P40D or -PT6H."
        ) from None
    if not isinstance(duration, timedelta):
        # Months and years have no fixed length; an offset must be one.
        raise ImproperlyConfigured(
            f"KVCONSOLE_CLOCK_OFFSET={text!r}: give days, hours, minutes or seconds (P40D)."
        )
    return -duration if negative else duration
