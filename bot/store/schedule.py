"""Digest schedules: daily at HH:MM (UTC or an IANA time zone), or every N minutes.
Plain data, no I/O.

Stored as text in the ``subscriptions.schedule`` column: ``daily@08:30`` (UTC),
``daily@08:30@America/New_York`` (wall-clock time in that zone) or ``every:90``.
Rows written before time zones existed (``daily@08:30``) read back as UTC, as before.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo, available_timezones

DAY_MINUTES = 24 * 60
MIN_INTERVAL = 5
MAX_INTERVAL = 7 * DAY_MINUTES

_HHMM = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*((?:utc|z))?\s*$", re.IGNORECASE)

# Shown for an empty ``tz:`` autocomplete: the zones most servers want, spread round the world.
COMMON_ZONES = (
    "UTC", "America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles", "America/Toronto",
    "America/Mexico_City", "America/Sao_Paulo", "America/Argentina/Buenos_Aires", "Europe/London", "Europe/Paris",
    "Europe/Berlin", "Europe/Madrid", "Europe/Moscow", "Europe/Istanbul", "Africa/Lagos", "Africa/Johannesburg",
    "Asia/Dubai", "Asia/Kolkata", "Asia/Shanghai", "Asia/Singapore", "Asia/Tokyo", "Asia/Seoul", "Australia/Sydney",
    "Pacific/Auckland",
)
_NOT_ZONES = {"localtime", "posixrules", "Factory"}


class ScheduleError(ValueError):
    """A schedule a user typed that we cannot use (the message says why)."""


# ------------------------------------------------------------------ time zones


@lru_cache(maxsize=1)
def zone_names() -> tuple[str, ...]:
    """Every IANA zone name we accept, sorted (from ``tzdata`` or the OS zone files)."""
    return tuple(sorted(n for n in available_timezones()
                        if n not in _NOT_ZONES and not n.startswith(("posix/", "right/"))))


@lru_cache(maxsize=1)
def _by_folded_name() -> dict[str, str]:
    return {n.casefold(): n for n in zone_names()}


def resolve_zone(name: str) -> str:
    """The canonical IANA name for what a user typed (case and spaces forgiven: ``america/new york``
    gives ``America/New_York``); ScheduleError, with suggestions, for a zone we do not know."""
    typed = (name or "").strip()
    key = typed.replace(" ", "_").casefold()
    found = _by_folded_name().get(key)
    if found is not None:
        return found
    close = difflib.get_close_matches(key, list(_by_folded_name()), n=3, cutoff=0.6)
    names = [f"`{_by_folded_name()[c]}`" for c in close]
    hint = f" Did you mean {', '.join(names[:-1])} or {names[-1]}?" if len(names) > 1 else (
        f" Did you mean {names[0]}?" if names else "")
    raise ScheduleError(
        f"Sorry, I don't know the time zone `{typed[:64]}`.{hint} Use an IANA name such as `America/New_York`, "
        "`Europe/Berlin` or `Asia/Tokyo` (start typing in `tz:` for suggestions).")


def suggest_zones(typed: str, limit: int = 25) -> list[str]:
    """Zone names for an autocomplete: names starting with what was typed (or with it after the
    region, so ``tokyo`` finds ``Asia/Tokyo``) first, then names containing it; at most ``limit``."""
    key = (typed or "").strip().replace(" ", "_").casefold()
    if not key:
        return list(COMMON_ZONES[:limit])
    starts, parts, contains = [], [], []
    for n in zone_names():
        f = n.casefold()
        if f.startswith(key):
            starts.append(n)
        elif any(p.startswith(key) for p in f.split("/")[1:]):
            parts.append(n)
        elif key in f:
            contains.append(n)
    return (starts + parts + contains)[:limit]


# ------------------------------------------------------------------ schedules


@dataclass(frozen=True)
class Schedule:
    kind: Literal["daily", "interval"]
    minutes: int  # daily: minute of the day (wall clock in ``tz``); interval: period in minutes
    tz: str | None = None  # daily only: IANA zone name; None is UTC

    # ------------------------------------------------------------ building
    @classmethod
    def daily(cls, hhmm: str, tz: str | None = None) -> Schedule:
        """Daily at ``hhmm`` (HH:MM) in zone ``tz`` (an IANA name; None or UTC: UTC)."""
        m = _HHMM.match(hhmm or "")
        if not m:
            raise ScheduleError(f"{hhmm!r} is not a time: use HH:MM, e.g. 08:30.")
        h, mi = int(m.group(1)), int(m.group(2))
        if h > 23 or mi > 59:
            raise ScheduleError(f"{hhmm!r} is not a time of day: hours 00-23, minutes 00-59.")
        zone = resolve_zone(tz) if tz is not None and tz.strip() else None
        if zone == "UTC":
            zone = None
        if zone is not None and m.group(3):
            raise ScheduleError(f"{hhmm!r} is a UTC time, but the time zone is {zone}: give the time without UTC.")
        return cls("daily", h * 60 + mi, zone)

    @classmethod
    def every(cls, minutes: int) -> Schedule:
        minutes = int(minutes)
        if not MIN_INTERVAL <= minutes <= MAX_INTERVAL:
            raise ScheduleError(f"The interval must be from {MIN_INTERVAL} to {MAX_INTERVAL} minutes (got {minutes}).")
        return cls("interval", minutes)

    @classmethod
    def parse(cls, text: str) -> Schedule:
        """The stored form back into a Schedule (``daily@HH:MM`` without a zone is UTC)."""
        if text.startswith("daily@"):
            hhmm, _, tz = text[len("daily@") :].partition("@")
            return cls.daily(hhmm, tz or None)
        if text.startswith("every:"):
            return cls.every(int(text[len("every:") :]))
        raise ScheduleError(f"unknown stored schedule {text!r}")

    # ------------------------------------------------------------ using
    @property
    def hhmm(self) -> str:
        return f"{self.minutes // 60:02d}:{self.minutes % 60:02d}"

    def zone(self) -> tzinfo:
        return ZoneInfo(self.tz) if self.tz else timezone.utc

    def to_text(self) -> str:
        if self.kind == "daily":
            return f"daily@{self.hhmm}@{self.tz}" if self.tz else f"daily@{self.hhmm}"
        return f"every:{self.minutes}"

    def describe(self) -> str:
        if self.kind == "daily":
            return f"daily at {self.hhmm} {self.tz or 'UTC'}"
        if self.minutes % 60 == 0:
            hours = self.minutes // 60
            return "every hour" if hours == 1 else f"every {hours} hours"
        return f"every {self.minutes} minutes"

    def next_after(self, now: float, anchor: float | None = None) -> float:
        """The first due time strictly after ``now`` (epoch seconds, UTC).

        Intervals count from ``anchor`` (when the subscription was made), so a
        late tick does not make every later digest drift.

        Daily times are wall-clock times in the schedule's zone, so 08:00
        America/New_York is 13:00 UTC in winter and 12:00 UTC in summer
        (``zoneinfo`` knows the daylight-saving rules). On the days the clocks
        change, a local time is read with ``fold=0``: a time that does not
        exist (02:30 when clocks spring forward from 02:00 to 03:00) posts at
        the moment it would have been without the jump, i.e. 03:30 new time;
        a time that happens twice (01:30 when clocks fall back) posts once,
        at its first occurrence. Either way one digest a day."""
        if self.kind == "interval":
            period = self.minutes * 60.0
            start = now if anchor is None else anchor
            if start > now:
                return start
            k = math.floor((now - start) / period) + 1
            return start + k * period
        zone = self.zone()
        today = datetime.fromtimestamp(now, tz=zone).date()
        for days in range(3):
            d = today + timedelta(days=days)
            # Built field by field (fold=0), not by adding a timedelta to an aware
            # datetime: that would be wall-clock arithmetic that ignores the change.
            due = datetime(d.year, d.month, d.day, self.minutes // 60, self.minutes % 60, tzinfo=zone).timestamp()
            if due > now:
                return due
        raise AssertionError("unreachable: tomorrow's time is after now")  # pragma: no cover
