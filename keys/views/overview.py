"""The console's landing page: what the operator can see, what needs attention soon, and
how the last day went.

Everything comes from selectors (only what the operator may see); the chart's counts are one
grouped query over the time index, drawn by `vaults.charts` as server-rendered SVG.
"""

from datetime import UTC, datetime, timedelta

from django.db.models import Count, Q
from django.db.models.functions import TruncHour
from django.http import HttpResponse
from django.views.decorators.http import require_GET

from kvconsole import clock
from kvconsole.console import page
from kvconsole.http import AuthedRequest, is_partial
from vaults import charts
from vaults import selectors as vault_selectors
from vaults.models import Result, Vault
from vaults.views import activity
from vaults.views.resources import visible_vault

from .. import selectors

EXPIRY_WINDOW = timedelta(days=30)
EXPIRING_SHOWN = 20
FAILURES_SHOWN = 10
CHART_HOURS = 24


def hourly_counts(
    request: AuthedRequest, vault: Vault | None, since: datetime
) -> dict[datetime, tuple[int, int]]:
    """(succeeded, failed) per UTC hour since `since` of the entries the operator may read,
    in one query grouped by hour along the time index."""
    entries = vault_selectors.activity_list(
        actor=request.user, vault=vault.name if vault else None, since=since
    )
    rows = (
        entries.order_by()
        .annotate(hour=TruncHour("time", tzinfo=UTC))
        .values("hour")
        .annotate(
            succeeded=Count("seq", filter=Q(result=Result.SUCCESS)),
            failed=Count("seq", filter=~Q(result=Result.SUCCESS)),
        )
    )
    return {row["hour"]: (row["succeeded"], row["failed"]) for row in rows}


def activity_chart(
    request: AuthedRequest, vault: Vault | None, now: datetime
) -> charts.StackedBarChart:
    hours = charts.last_hours(now, CHART_HOURS)
    counts = hourly_counts(request, vault, hours[0])
    subject = f"vault {vault.name}" if vault else "all activity you may read"
    return charts.stacked_bars(charts.hourly_series(counts, hours), subject=subject)


@require_GET
def overview(request: AuthedRequest) -> HttpResponse:
    now = clock.now()
    chosen = request.GET.get("vault", "").strip()
    vault = visible_vault(request, chosen) if chosen else None
    context: dict[str, object] = {"chart": activity_chart(request, vault, now), "vault": vault}
    if not is_partial(request):
        # The vault selector swaps only the chart; the rest is read for whole pages only.
        vaults = vault_selectors.vault_list(actor=request.user, key_users=True)
        expiring = selectors.key_expiring_list(
            actor=request.user, after=now, until=now + EXPIRY_WINDOW
        )
        failures = activity.ActivityFilterForm({"result": activity.FAILURES})
        failures.full_clean()
        context |= {
            "group_count": vault_selectors.resource_group_list(actor=request.user).count(),
            "vault_count": vaults.count(),
            "key_count": selectors.key_visible_list(actor=request.user).count(),
            "vault_names": vaults.order_by("name").values_list("name", flat=True),
            "expiring": list(expiring[: EXPIRING_SHOWN + 1]),
            "expiring_shown": EXPIRING_SHOWN,
            "expiry_days": EXPIRY_WINDOW.days,
            "failures": activity.newest(
                request, failures, activity.Scope(vault=None), count=FAILURES_SHOWN
            )[0],
        }
    return page(request, "keys/overview.html", context, partial="activity-chart")
