"""SLA policies and the business-hours arithmetic behind due times."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Boolean, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, IdMixin, TenantMixin, TimestampMixin
from core.db.types import JsonType

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class SlaPolicy(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "sla_policies"
    __table_args__ = (Index(None, "tenant_id", "is_default"),)

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    is_default: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # {"urgent": {"first_response_minutes": 15, "resolution_minutes": 240}, ...}
    targets: Mapped[dict[str, Any]] = mapped_column(JsonType, nullable=False, default=dict)
    # None: the clock runs around the clock. Otherwise
    # {"timezone": "Europe/Madrid", "hours": {"mon": [["09:00", "17:00"]], ...},
    #  "holidays": ["2026-12-25"]}
    business_hours: Mapped[dict[str, Any] | None] = mapped_column(JsonType)


class BusinessCalendar:
    """Adds working minutes to an instant, honouring opening hours, a time zone and holidays."""

    def __init__(
        self,
        timezone: str,
        hours: dict[str, list[tuple[time, time]]],
        holidays: set[date],
    ) -> None:
        self.tz = ZoneInfo(timezone)
        self.hours = hours
        self.holidays = holidays

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> BusinessCalendar:
        hours = {
            day: [(_clock(a), _clock(b)) for a, b in spans]
            for day, spans in config.get("hours", {}).items()
        }
        holidays = {date.fromisoformat(d) for d in config.get("holidays", [])}
        return cls(config.get("timezone", "UTC"), hours, holidays)

    def _spans(self, day: date) -> list[tuple[datetime, datetime]]:
        # As UTC instants: arithmetic on aware datetimes that share a zone ignores the UTC
        # offset, which would count wall-clock time on the 23- and 25-hour days of a DST
        # change instead of the minutes a customer actually waits.
        if day in self.holidays:
            return []
        spans = self.hours.get(WEEKDAYS[day.weekday()], [])
        return [(self._instant(day, a), self._instant(day, b)) for a, b in sorted(spans)]

    def _instant(self, day: date, clock: time) -> datetime:
        if clock == time.max:  # "24:00": the next midnight, not a microsecond before it
            return datetime.combine(day + timedelta(days=1), time(0), self.tz).astimezone(UTC)
        return datetime.combine(day, clock, self.tz).astimezone(UTC)

    def add_minutes(self, start: datetime, minutes: int) -> datetime:
        remaining = timedelta(minutes=minutes)
        instant = start.astimezone(UTC)
        day = start.astimezone(self.tz).date()
        # A calendar with no opening hours at all would loop forever; two years is the bound.
        for _ in range(366 * 2):
            for open_at, close_at in self._spans(day):
                begin = max(open_at, instant)
                if begin >= close_at:
                    continue
                available = close_at - begin
                if remaining <= available:
                    return begin + remaining
                remaining -= available
            day += timedelta(days=1)
        raise ValueError("business-hours calendar has no working time in the next two years")


def _clock(value: str) -> time:
    # "24:00" closes a span at midnight, which `time` cannot represent.
    return time.max if value == "24:00" else time.fromisoformat(value)


def due_at(start: datetime, minutes: int, business_hours: dict[str, Any] | None) -> datetime:
    if not business_hours:
        return start + timedelta(minutes=minutes)
    return BusinessCalendar.from_config(business_hours).add_minutes(start, minutes)
