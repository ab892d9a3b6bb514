"""BusinessCalendar: working minutes added across closed hours, weekends, holidays and DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.domain.sla import BusinessCalendar, due_at

MADRID = ZoneInfo("Europe/Madrid")
NEW_YORK = ZoneInfo("America/New_York")
WEEKDAYS_9_TO_5 = {d: [["09:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}
ALWAYS_OPEN = {d: [["00:00", "24:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def calendar(
    tz: str = "Europe/Madrid",
    hours: dict[str, list[list[str]]] | None = None,
    holidays: tuple[str, ...] | list[str] = (),
) -> BusinessCalendar:
    return BusinessCalendar.from_config(
        {"timezone": tz, "hours": hours or WEEKDAYS_9_TO_5, "holidays": list(holidays)}
    )


def local(
    tz: ZoneInfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=tz)


def test_within_one_working_day() -> None:
    start = local(MADRID, 2026, 6, 3, 10, 0)  # a Wednesday
    assert calendar().add_minutes(start, 90) == local(MADRID, 2026, 6, 3, 11, 30)


def test_before_opening_and_after_closing() -> None:
    cal = calendar()
    assert cal.add_minutes(local(MADRID, 2026, 6, 3, 7, 0), 30) == local(MADRID, 2026, 6, 3, 9, 30)
    assert cal.add_minutes(local(MADRID, 2026, 6, 3, 18, 0), 30) == local(MADRID, 2026, 6, 4, 9, 30)


def test_across_a_weekend() -> None:
    friday = local(MADRID, 2026, 6, 5, 16, 0)
    assert friday.strftime("%a") == "Fri"
    # One hour on Friday, the second on Monday morning.
    assert calendar().add_minutes(friday, 120) == local(MADRID, 2026, 6, 8, 10, 0)


def test_saturday_start_waits_for_monday() -> None:
    saturday = local(MADRID, 2026, 6, 6, 11, 0)
    assert calendar().add_minutes(saturday, 15) == local(MADRID, 2026, 6, 8, 9, 15)


def test_across_a_holiday() -> None:
    friday = local(MADRID, 2026, 6, 5, 16, 0)
    cal = calendar(holidays=["2026-06-08"])
    assert cal.holidays == {date(2026, 6, 8)}
    assert cal.add_minutes(friday, 120) == local(MADRID, 2026, 6, 9, 10, 0)


def test_christmas_and_weekend_together() -> None:
    thursday = local(MADRID, 2026, 12, 24, 16, 30)
    cal = calendar(holidays=["2026-12-25"])
    # 30 minutes on the 24th; the 25th is a holiday, then a weekend; Monday the 28th.
    assert cal.add_minutes(thursday, 60) == local(MADRID, 2026, 12, 28, 9, 30)


def test_split_shift_skips_the_lunch_break() -> None:
    hours = {"wed": [["14:00", "18:00"], ["09:00", "13:00"]]}
    start = local(MADRID, 2026, 6, 3, 12, 30)
    assert calendar(hours=hours).add_minutes(start, 60) == local(MADRID, 2026, 6, 3, 14, 30)


@pytest.mark.parametrize(
    ("start", "expected_utc"),
    [
        # Spring forward (29 March 2026): CET (+1) on Friday, CEST (+2) on Monday.
        (local(MADRID, 2026, 3, 27, 16, 0), datetime(2026, 3, 30, 8, 0, tzinfo=UTC)),
        # Fall back (25 October 2026): CEST (+2) on Friday, CET (+1) on Monday.
        (local(MADRID, 2026, 10, 23, 16, 0), datetime(2026, 10, 26, 9, 0, tzinfo=UTC)),
        # New York springs forward on 8 March 2026: EST (-5) to EDT (-4).
        (local(NEW_YORK, 2026, 3, 6, 16, 0), datetime(2026, 3, 9, 14, 0, tzinfo=UTC)),
    ],
    ids=["madrid-spring", "madrid-autumn", "new-york-spring"],
)
def test_across_a_dst_change_uses_the_new_offset(start: datetime, expected_utc: datetime) -> None:
    due = calendar(tz=str(start.tzinfo)).add_minutes(start, 120)
    assert due == expected_utc
    assert due.tzinfo is UTC
    assert due.astimezone(start.tzinfo).hour == 10


@pytest.mark.parametrize(
    "start_utc",
    [
        datetime(2026, 10, 24, 10, 0, tzinfo=UTC),  # Saturday noon in Madrid, before fall back
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),  # 02:30 CEST, the hour that repeats
        datetime(2026, 3, 28, 12, 0, tzinfo=UTC),  # the day before spring forward
        datetime(2026, 3, 29, 0, 30, tzinfo=UTC),  # 01:30 CET, just before the skipped hour
    ],
)
@pytest.mark.parametrize("minutes", [60, 24 * 60, 3 * 24 * 60 + 7])
def test_always_open_calendar_counts_elapsed_time(start_utc: datetime, minutes: int) -> None:
    # Open around the clock is the same as no calendar: a customer waits in real minutes,
    # including on the 23- and 25-hour days of a DST change.
    due = calendar(hours=ALWAYS_OPEN).add_minutes(start_utc, minutes)
    assert due == start_utc + timedelta(minutes=minutes)
    assert due == due_at(start_utc, minutes, None)


def test_midnight_close_is_exact() -> None:
    cal = calendar(tz="UTC", hours=ALWAYS_OPEN)
    start = datetime(2026, 6, 6, 12, 0, tzinfo=UTC)
    assert cal.add_minutes(start, 24 * 60) == datetime(2026, 6, 7, 12, 0, tzinfo=UTC)


def test_result_is_utc_whatever_the_input_zone() -> None:
    start = datetime(2026, 6, 3, 8, 0, tzinfo=UTC)  # 10:00 in Madrid
    due = calendar().add_minutes(start, 30)
    assert due.tzinfo is UTC
    assert due == datetime(2026, 6, 3, 8, 30, tzinfo=UTC)


def test_calendar_without_working_time_fails_instead_of_looping() -> None:
    cal = calendar(hours={"mon": [["09:00", "17:00"]]})
    cal.hours = {}
    with pytest.raises(ValueError, match="no working time"):
        cal.add_minutes(datetime(2026, 6, 3, tzinfo=UTC), 1)


def test_due_at_without_business_hours_is_plain_arithmetic() -> None:
    start = datetime(2026, 10, 24, 23, 0, tzinfo=UTC)
    assert due_at(start, 600, None) == start + timedelta(hours=10)
    assert due_at(start, 600, {}) == start + timedelta(hours=10)
    config = {"timezone": "Europe/Madrid", "hours": WEEKDAYS_9_TO_5}
    assert due_at(start, 60, config) == local(MADRID, 2026, 10, 26, 10, 0)
