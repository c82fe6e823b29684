"""A question about "this week" is answered from this week's articles, or not at all.

News questions often carry their time: "Which coach was fired this week?",
"What did the Fed decide on Wednesday?". The corpus also holds older articles
on the same subjects (last season's firing, last year's rate decision) that
match such a question word for word and answer it wrongly. So when a question
names a time relative to now, only articles published in that span may answer
it (:func:`window`); articles whose date is unknown stay in (nothing shows
they are old). The spans are the words' plain meaning with a little slack for
date-only stamps and time zones, chosen before measuring, not fitted:

    today, tonight, this morning, yesterday ........ 3 days
    this week(end), past week, a weekday ("on Monday"),
    in recent days .................................. 9 days
    last week(end) .................................. 16 days
    this month, recently, recent, latest, newly ..... 35 days
    last month ...................................... 65 days

("Recently" and "latest" say the question is about the news of now, not
when: a month, the vaguest of the named spans.)

The longest span a question names wins. An article dated up to 2 days after
"now" counts as in the span (clocks and time zones differ).
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from functools import lru_cache

DAY = 86400.0
FUTURE_SLACK = 2 * DAY

_WEEKDAY = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
# "Black Friday", "Super Tuesday", "Good Friday", "Cyber Monday", "Ash Wednesday" name days, not this week's
_NAMED_DAY = r"(?<!black )(?<!super )(?<!good )(?<!cyber )(?<!ash )(?<!holy )"
_SPANS: tuple[tuple[re.Pattern, float], ...] = (
    (re.compile(r"\b(?:today|tonight|this (?:morning|afternoon|evening)|yesterday)\b", re.I), 3 * DAY),
    (re.compile(r"\b(?:this|past) week(?:end)?\b", re.I), 9 * DAY),
    (re.compile(rf"\b{_NAMED_DAY}{_WEEKDAY}\b", re.I), 9 * DAY),
    (re.compile(r"\blast week(?:end)?\b", re.I), 16 * DAY),
    (re.compile(r"\b(?:in|over|during) (?:the )?(?:past |last )?(?:few )?recent days\b", re.I), 9 * DAY),
    (re.compile(r"\bthis month\b", re.I), 35 * DAY),
    (re.compile(r"\b(?:recent(?:ly)?(?! days)|latest|newly)\b", re.I), 35 * DAY),
    (re.compile(r"\blast month\b", re.I), 65 * DAY),
)


# a year 1900-2099 standing alone: not a sum ("$2024"), a share ("2024%"), part of a longer number or a
# decimal, a thousands-grouped count ("2,024") nor a clock time ("2000 GMT"); "2024-25" / "2024/25" names both
_YEAR = re.compile(r"(?<![\w$£€#.,])((?:19|20)\d\d)(?:[-/–](\d\d)(?!\d))?"
                   r"(?![\w%]|[.,]\d| ?(?:GMT|UTC|hours?|hrs?|h)\b)", re.I)


# "this year" names the year it is asked in ("this year's Academy Awards", "later this year"). "Last year" and
# "next year" name none: this year's articles report last year's figures and announce next year's events.
_THIS_YEAR = re.compile(r"\bthis year\b", re.I)


def years(question: str, now: float | None = None) -> frozenset[int]:
    """The years a question names ("the 2024 Golden Globes", "since 1989", both of "the 2024-25 season"), as
    ints; empty when none. With ``now`` (epoch s, when it is asked), "this year" names that year (UTC)."""
    out = set()
    if now is not None and math.isfinite(now) and _THIS_YEAR.search(question):
        try:
            out.add(datetime.fromtimestamp(now, timezone.utc).year)
        except (OverflowError, OSError, ValueError):
            pass  # a replay's asked_at past the year 9999: no year to name
    for first, second in _YEAR.findall(question):
        out.add(int(first))
        if second and int(second) == (int(first) + 1) % 100:
            out.add(int(first) // 100 * 100 + int(second) + (100 if second == "00" else 0))
    return frozenset(out)


def names_time(question: str) -> bool:
    """Whether the question names when it is about relative to when it is asked: a span (:func:`window`,
    "this week") or "this year". Such a question means something else asked a year later."""
    return window(question) is not None or bool(_THIS_YEAR.search(question))


def window(question: str) -> float | None:
    """The span (seconds before now) the question's own time words name, or None when it names none."""
    spans = [span for pattern, span in _SPANS if pattern.search(question)]
    return max(spans) if spans else None


def describe(span: float) -> str:
    """The span as a member reads it: "the last 9 days"."""
    return f"the last {round(span / DAY)} days"


@lru_cache(maxsize=65536)
def published(date: str | None) -> float:
    """An article's date string (ISO, "2022/06/10", "09 January 2019", RFC 822 from a feed...) as epoch
    seconds (a date without a time zone is UTC); NaN when there is none, it does not parse or it names no
    year (it was read as 2000 before, which a question naming 2000 would then read)."""
    if not date or not date.strip():
        return math.nan
    from dateutil import parser

    try:
        when = parser.parse(date.strip(), default=datetime(2000, 1, 1))
        if parser.parse(date.strip(), default=datetime(2001, 1, 1)).year != when.year:
            return math.nan  # no year in it ("March 5", "10:30", "Tuesday"): not a date to place in time
    except (ValueError, OverflowError, TypeError):
        return math.nan
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    try:
        return when.timestamp()
    except (OverflowError, OSError, ValueError):
        return math.nan
