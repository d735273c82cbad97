"""Server-rendered charts: pure geometry from counts, which a template draws as SVG.

No JavaScript and no library: the console's pages must work offline and under a self-only
Content-Security-Policy, and a bar chart is a few rectangles. There is no view box to scale:
horizontal positions are percentages, so the chart fills a phone or a wide screen and its
labels stay legible on both. Colours are given as SVG
presentation attributes (never `style=`), each at least 3:1 against white as WCAG asks of
graphics, and told apart by hue for every kind of colour vision (blue and vermilion, with a
white gap between stacked segments).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

SUCCESS_COLOUR = "#0072b2"  # 5.2:1 on white
FAILURE_COLOUR = "#d55e00"  # 3.9:1 on white
AXIS_COLOUR = "#555e69"  # the stylesheet's muted text, 6.5:1 on white
GRID_COLOUR = "#d8dde3"


@dataclass(frozen=True)
class HourCount:
    """What happened in the hour starting at `start` (UTC)."""

    start: datetime
    succeeded: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.succeeded + self.failed

    @property
    def title(self) -> str:
        end = self.start + timedelta(hours=1)
        counts = f"{self.succeeded} succeeded, {self.failed} failed"
        return f"{self.start:%H:%M} to {end:%H:%M} UTC: {counts}"


@dataclass(frozen=True)
class Segment:
    y: float
    height: float
    colour: str


@dataclass(frozen=True)
class Bar:
    """One hour: its stacked segments (success at the bottom) and the column around it,
    which carries the exact counts as a title even when the hour had none."""

    slot_x: float
    slot_width: float
    x: float
    width: float
    segments: tuple[Segment, ...]
    title: str


@dataclass(frozen=True)
class Tick:
    position: float
    label: str
    # Minor labels are left out where the chart is narrow (a phone).
    minor: bool = False


@dataclass(frozen=True)
class StackedBarChart:
    """Horizontal positions are percentages of the chart's width, so it fills any screen
    while its text keeps its size; vertical positions are pixels of a fixed height."""

    height: int
    top: float
    bottom: float
    bars: tuple[Bar, ...]
    y_ticks: tuple[Tick, ...]
    x_ticks: tuple[Tick, ...]
    succeeded: int
    failed: int
    summary: str
    success_colour: str = SUCCESS_COLOUR
    failure_colour: str = FAILURE_COLOUR
    axis_colour: str = AXIS_COLOUR
    grid_colour: str = GRID_COLOUR

    @property
    def plot_height(self) -> float:
        return self.bottom - self.top

    @property
    def legend_y(self) -> float:
        return 14

    @property
    def y_title_y(self) -> float:
        return self.top - 16

    @property
    def x_label_y(self) -> float:
        return self.bottom + 16

    @property
    def x_title_y(self) -> float:
        return self.height - 6


def last_hours(now: datetime, hours: int = 24) -> list[datetime]:
    """The start of each of the last `hours` hours in UTC, oldest first, the current
    (unfinished) hour last."""
    current = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return [current - timedelta(hours=back) for back in range(hours - 1, -1, -1)]


def hourly_series(
    counts: Mapping[datetime, tuple[int, int]], hours: Sequence[datetime]
) -> list[HourCount]:
    """One HourCount per hour of `hours`, from (succeeded, failed) counts keyed by the start
    of their hour; hours without activity count zero."""
    by_hour = {start.astimezone(UTC): value for start, value in counts.items()}
    return [HourCount(hour, *by_hour.get(hour, (0, 0))) for hour in hours]


def nice_scale(maximum: int, *, intervals: int = 4) -> tuple[int, int]:
    """The top of a count axis and its tick step: the smallest step of 1, 2 or 5 times a
    power of ten that reaches `maximum` in at most `intervals` steps."""
    if maximum <= 0:
        return 1, 1
    magnitude = 1
    while True:
        for factor in (1, 2, 5):
            step = factor * magnitude
            steps = -(-maximum // step)
            if steps <= intervals:
                return steps * step, step
        magnitude *= 10


def stacked_bars(
    series: Sequence[HourCount],
    *,
    subject: str,
    height: int = 250,
    label_every: int = 3,
    major_every: int = 6,
) -> StackedBarChart:
    """Geometry of a stacked bar chart of `series`, one bar per hour: bars, axis ticks and a
    one-sentence summary for screen readers."""
    top, bottom = 48.0, height - 40.0
    plot_height = bottom - top
    axis_top, step = nice_scale(max((hour.total for hour in series), default=0))
    slot = 100 / max(len(series), 1)
    bar_width = slot * 0.7

    def scaled(count: int) -> float:
        return count / axis_top * plot_height

    bars = []
    for index, hour in enumerate(series):
        slot_x = index * slot
        segments = []
        base = bottom
        for count, colour in ((hour.succeeded, SUCCESS_COLOUR), (hour.failed, FAILURE_COLOUR)):
            if count:
                segment_height = scaled(count)
                base -= segment_height
                segments.append(Segment(round(base, 2), round(segment_height, 2), colour))
        bars.append(
            Bar(
                slot_x=round(slot_x, 3),
                slot_width=round(slot, 3),
                x=round(slot_x + (slot - bar_width) / 2, 3),
                width=round(bar_width, 3),
                segments=tuple(segments),
                title=hour.title,
            )
        )
    y_ticks = tuple(
        Tick(round(bottom - scaled(value), 2), str(value)) for value in range(0, axis_top + 1, step)
    )
    x_ticks = tuple(
        Tick(
            round((index + 0.5) * slot, 3),
            f"{hour.start:%H:00}",
            minor=hour.start.hour % major_every != 0,
        )
        for index, hour in enumerate(series)
        if hour.start.hour % label_every == 0
    )
    succeeded = sum(hour.succeeded for hour in series)
    failed = sum(hour.failed for hour in series)
    return StackedBarChart(
        height=height,
        top=top,
        bottom=bottom,
        bars=tuple(bars),
        y_ticks=y_ticks,
        x_ticks=x_ticks,
        succeeded=succeeded,
        failed=failed,
        summary=_summary(series, subject, succeeded, failed),
    )


def _summary(series: Sequence[HourCount], subject: str, succeeded: int, failed: int) -> str:
    span = f"Operations per hour over the last {len(series)} hours, {subject}"
    if not succeeded + failed:
        return f"{span}: none."
    busiest = max(series, key=lambda hour: (hour.total, hour.start))
    return (
        f"{span}: {succeeded} succeeded, {failed} failed; the busiest hour began at "
        f"{busiest.start:%H:%M} UTC with {busiest.total}."
    )
