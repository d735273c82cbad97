"""The overview's chart geometry: pure functions from hourly counts to bars and ticks."""

import itertools
from datetime import UTC, datetime, timedelta, timezone

import pytest

from vaults import charts

NOW = datetime(2025, 3, 4, 13, 42, 7, tzinfo=UTC)


def test_last_hours_end_with_the_current_hour_oldest_first() -> None:
    hours = charts.last_hours(NOW, 24)
    assert len(hours) == 24
    assert hours[-1] == datetime(2025, 3, 4, 13, tzinfo=UTC)
    assert hours[0] == datetime(2025, 3, 3, 14, tzinfo=UTC)
    steps = {later - earlier for earlier, later in itertools.pairwise(hours)}
    assert steps == {timedelta(hours=1)}


def test_last_hours_are_in_utc_whatever_the_zone_of_now() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert charts.last_hours(NOW.astimezone(plus_two), 3) == charts.last_hours(NOW, 3)
    assert charts.last_hours(NOW.astimezone(plus_two), 1)[0].tzinfo == UTC


def test_hourly_series_fills_quiet_hours_with_zero() -> None:
    hours = charts.last_hours(NOW, 4)
    series = charts.hourly_series({hours[1]: (5, 2)}, hours)
    assert [(hour.start, hour.succeeded, hour.failed) for hour in series] == [
        (hours[0], 0, 0),
        (hours[1], 5, 2),
        (hours[2], 0, 0),
        (hours[3], 0, 0),
    ]
    assert series[1].total == 7


def test_hourly_series_matches_hours_given_in_another_zone() -> None:
    hours = charts.last_hours(NOW, 2)
    elsewhere = hours[0].astimezone(timezone(timedelta(hours=-5)))
    assert charts.hourly_series({elsewhere: (1, 0)}, hours)[0].succeeded == 1


@pytest.mark.parametrize(
    ("maximum", "scale"),
    [
        (0, (1, 1)),
        (1, (1, 1)),
        (3, (3, 1)),
        (4, (4, 1)),
        (5, (6, 2)),
        (7, (8, 2)),
        (9, (10, 5)),
        (21, (30, 10)),
        (100, (100, 50)),
        (101, (150, 50)),
        (999, (1000, 500)),
    ],
)
def test_nice_scale_reaches_the_maximum_in_at_most_four_round_steps(
    maximum: int, scale: tuple[int, int]
) -> None:
    top, step = charts.nice_scale(maximum)
    assert (top, step) == scale
    assert top >= maximum and top // step <= 4


def test_hour_title_gives_the_exact_counts() -> None:
    hour = charts.HourCount(datetime(2025, 3, 4, 9, tzinfo=UTC), succeeded=12, failed=3)
    assert hour.title == "09:00 to 10:00 UTC: 12 succeeded, 3 failed"


def test_bars_stack_failures_on_successes_in_proportion() -> None:
    hours = charts.last_hours(NOW, 4)
    series = charts.hourly_series({hours[0]: (4, 0), hours[1]: (2, 2), hours[3]: (0, 1)}, hours)
    chart = charts.stacked_bars(series, subject="vault v")
    assert len(chart.bars) == 4
    # Four operations at most: the axis tops at 4, so one operation is a quarter of the plot.
    unit = chart.plot_height / 4
    full, mixed, empty, failed = chart.bars
    assert [(segment.height, segment.colour) for segment in full.segments] == [
        (pytest.approx(4 * unit), charts.SUCCESS_COLOUR)
    ]
    success, failure = mixed.segments
    assert (success.colour, failure.colour) == (charts.SUCCESS_COLOUR, charts.FAILURE_COLOUR)
    assert success.y + success.height == pytest.approx(chart.bottom)
    assert failure.y + failure.height == pytest.approx(success.y)
    assert success.height == pytest.approx(2 * unit) == failure.height
    assert empty.segments == ()
    assert [segment.colour for segment in failed.segments] == [charts.FAILURE_COLOUR]
    assert [bar.title for bar in chart.bars] == [hour.title for hour in series]


def test_bars_share_the_width_in_percent_without_overlapping() -> None:
    chart = charts.stacked_bars(charts.hourly_series({}, charts.last_hours(NOW)), subject="x")
    assert chart.bars[0].slot_x == 0
    assert chart.bars[-1].slot_x + chart.bars[-1].slot_width == pytest.approx(100)
    for bar, following in itertools.pairwise(chart.bars):
        assert bar.slot_x < bar.x and bar.x + bar.width < following.x


def test_ticks_label_the_count_axis_and_every_third_hour() -> None:
    hours = charts.last_hours(NOW)
    chart = charts.stacked_bars(charts.hourly_series({hours[5]: (7, 0)}, hours), subject="x")
    assert [tick.label for tick in chart.y_ticks] == ["0", "2", "4", "6", "8"]
    assert chart.y_ticks[0].position == chart.bottom
    assert chart.y_ticks[-1].position == pytest.approx(chart.top)
    assert [tick.label for tick in chart.x_ticks] == [
        "15:00",
        "18:00",
        "21:00",
        "00:00",
        "03:00",
        "06:00",
        "09:00",
        "12:00",
    ]
    # On a phone only every sixth hour keeps its label.
    assert [tick.label for tick in chart.x_ticks if not tick.minor] == [
        "18:00",
        "00:00",
        "06:00",
        "12:00",
    ]
    # Each hour label sits under the middle of its bar.
    bar = chart.bars[hours.index(datetime(2025, 3, 3, 15, tzinfo=UTC))]
    assert chart.x_ticks[0].position == pytest.approx(bar.x + bar.width / 2, abs=0.01)


def test_summary_names_the_subject_totals_and_busiest_hour() -> None:
    hours = charts.last_hours(NOW)
    series = charts.hourly_series({hours[2]: (3, 1), hours[20]: (9, 4)}, hours)
    chart = charts.stacked_bars(series, subject="vault payments")
    assert (chart.succeeded, chart.failed) == (12, 5)
    assert chart.summary == (
        "Operations per hour over the last 24 hours, vault payments: 12 succeeded, 5 failed; "
        "the busiest hour began at 10:00 UTC with 13."
    )


def test_an_empty_day_draws_no_bars_and_says_so() -> None:
    chart = charts.stacked_bars(charts.hourly_series({}, charts.last_hours(NOW)), subject="x")
    assert all(bar.segments == () for bar in chart.bars)
    assert [tick.label for tick in chart.y_ticks] == ["0", "1"]
    assert chart.summary == "Operations per hour over the last 24 hours, x: none."


def test_colours_reach_three_to_one_against_white() -> None:
    def luminance(colour: str) -> float:
        channels = [int(colour[index : index + 2], 16) / 255 for index in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    for colour in (charts.SUCCESS_COLOUR, charts.FAILURE_COLOUR):
        assert 1.05 / (luminance(colour) + 0.05) >= 3
    # Axis text is text: 4.5:1.
    assert 1.05 / (luminance(charts.AXIS_COLOUR) + 0.05) >= 4.5
