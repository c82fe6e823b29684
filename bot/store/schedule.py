"""Digest schedules: daily at HH:MM UTC, or every N minutes. Plain data, no I/O.

Stored as text in the ``subscriptions.schedule`` column: ``daily@08:30`` or
``every:90``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal

DAY_MINUTES = 24 * 60
MIN_INTERVAL = 5
MAX_INTERVAL = 7 * DAY_MINUTES

_HHMM = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*(?:utc|z)?\s*$", re.IGNORECASE)


class ScheduleError(ValueError):
    """A schedule a user typed that we cannot use (the message says why)."""


@dataclass(frozen=True)
class Schedule:
    kind: Literal["daily", "interval"]
    minutes: int  # daily: minute of the day (UTC); interval: period in minutes

    # ------------------------------------------------------------ building
    @classmethod
    def daily(cls, hhmm: str) -> Schedule:
        m = _HHMM.match(hhmm or "")
        if not m:
            raise ScheduleError(f"{hhmm!r} is not a time: use HH:MM in UTC, e.g. 08:30.")
        h, mi = int(m.group(1)), int(m.group(2))
        if h > 23 or mi > 59:
            raise ScheduleError(f"{hhmm!r} is not a time of day: hours 00-23, minutes 00-59.")
        return cls("daily", h * 60 + mi)

    @classmethod
    def every(cls, minutes: int) -> Schedule:
        minutes = int(minutes)
        if not MIN_INTERVAL <= minutes <= MAX_INTERVAL:
            raise ScheduleError(f"The interval must be from {MIN_INTERVAL} to {MAX_INTERVAL} minutes (got {minutes}).")
        return cls("interval", minutes)

    @classmethod
    def parse(cls, text: str) -> Schedule:
        """The stored form back into a Schedule."""
        if text.startswith("daily@"):
            return cls.daily(text[len("daily@") :])
        if text.startswith("every:"):
            return cls.every(int(text[len("every:") :]))
        raise ScheduleError(f"unknown stored schedule {text!r}")

    # ------------------------------------------------------------ using
    def to_text(self) -> str:
        if self.kind == "daily":
            return f"daily@{self.minutes // 60:02d}:{self.minutes % 60:02d}"
        return f"every:{self.minutes}"

    def describe(self) -> str:
        if self.kind == "daily":
            return f"daily at {self.minutes // 60:02d}:{self.minutes % 60:02d} UTC"
        if self.minutes % 60 == 0:
            hours = self.minutes // 60
            return "every hour" if hours == 1 else f"every {hours} hours"
        return f"every {self.minutes} minutes"

    def next_after(self, now: float, anchor: float | None = None) -> float:
        """The first due time strictly after ``now`` (epoch seconds, UTC).

        Intervals count from ``anchor`` (when the subscription was made), so a
        late tick does not make every later digest drift."""
        if self.kind == "interval":
            period = self.minutes * 60.0
            start = now if anchor is None else anchor
            if start > now:
                return start
            k = math.floor((now - start) / period) + 1
            return start + k * period
        day = datetime.fromtimestamp(now, tz=timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        due = day + timedelta(minutes=self.minutes)
        if due.timestamp() <= now:
            due += timedelta(days=1)
        return due.timestamp()
