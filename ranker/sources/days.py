"""arXiv's announcement calendar: which days have announcements, and which submissions a day's announcement
holds, so a past day can be rebuilt through the arXiv API (which knows submission times, not announcement
days).

arXiv announces Sunday to Thursday at 20:00 US Eastern time; the listing (and the RSS feed) is dated the next
day, Monday to Friday. The announcement dated D holds what was submitted between the 14:00 Eastern deadline
of the weekday before the previous weekday and the deadline of the previous weekday: Tuesday's holds Friday
14:00 to Monday 14:00, Monday's Thursday 14:00 to Friday 14:00. A public holiday shifts the schedule, which
this calendar does not know: a rebuilt day next to one may hold a day more or less than arXiv's listing did.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

DEADLINE = time(14, 0)               # submissions received before this (US Eastern) make the next announcement
ANNOUNCED = time(20, 0)              # when that announcement is made (US Eastern), the API's papers with it
FIRST = date(1991, 8, 14)            # arXiv's first announcement: no day before it has one to rebuild
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _deadline(d: date, at: time = DEADLINE) -> datetime:
    """14:00 (or `at`) US Eastern on day `d`, in UTC."""
    try:
        from zoneinfo import ZoneInfo
        tz = ZoneInfo("America/New_York")
    except Exception:
        # no tz database: the US rule (since 2007), EDT from the second Sunday of March to the first of November
        summer = _sunday(d.year, 3, 2) <= d < _sunday(d.year, 11, 1)
        tz = timezone(timedelta(hours=-4 if summer else -5))
    return datetime.combine(d, at, tzinfo=tz).astimezone(timezone.utc)


def today(now: datetime | None = None) -> str:
    """Today (YYYY-MM-DD) for a window of submission days, which the arXiv API counts in UTC: the later of this
    machine's day and UTC's, so neither a machine west of UTC in its evening (UTC already tomorrow) nor one
    east of it in its morning (UTC still yesterday) has its own or UTC's today taken for a day to come."""
    now = now or datetime.now(timezone.utc)
    return max(now.astimezone().date(), now.astimezone(timezone.utc).date()).isoformat()


AHEAD = 3          # days past today a day given may be without a word: arXiv dates a listing tomorrow at most
                   # (a Friday's run may label Monday's papers)


def ahead_note(day: str, now: datetime | None = None) -> str | None:
    """Why a day given for papers (YYYY-MM-DD) is likely a mistake, when it is more than AHEAD days after today
    (no listing is dated so far ahead: `--date 2999-01-01` labelled a day's papers without a word); else None."""
    t = date.fromisoformat(today(now))
    ahead = (date.fromisoformat(day) - t).days
    if ahead <= AHEAD:
        return None
    return (f"{day} is {ahead:,} days after today ({t.isoformat()}): arXiv dates its listings up to tomorrow at "
            "most; the papers are labelled with it all the same")


def _sunday(year: int, month: int, n: int) -> date:
    """The n-th Sunday of a month."""
    first = date(year, month, 1)
    return first + timedelta(days=(6 - first.weekday()) % 7 + 7 * (n - 1))


def is_announcement_day(day: str) -> bool:
    """arXiv's listings are dated Monday to Friday."""
    return date.fromisoformat(day).weekday() < 5


def weekday_name(day: str) -> str:
    return WEEKDAYS[date.fromisoformat(day).weekday()]


def no_announcement_note(day: str) -> str | None:
    """Why the day `day` (YYYY-MM-DD) has no announcement, in words, when it is a Saturday or Sunday; else None."""
    if is_announcement_day(day):
        return None
    return f"{day} is a {weekday_name(day)}: arXiv announces nothing then (Monday to Friday only)"


def _previous_weekday(d: date) -> date:
    d -= timedelta(days=1)
    while d.weekday() >= 5:
        d -= timedelta(days=1)
    return d


def submission_window(day: str) -> tuple[datetime, datetime]:
    """The submission times (UTC, start inclusive, end exclusive) the announcement dated `day` holds."""
    d = date.fromisoformat(day)
    if d.weekday() >= 5:
        raise ValueError(f"{day} is a {weekday_name(day)}: arXiv announces nothing dated then")
    end_day = _previous_weekday(d)
    return _deadline(_previous_weekday(end_day)), _deadline(end_day)


def announced_at(day: str) -> datetime:
    """When the announcement dated `day` is made (UTC): 20:00 US Eastern on the day before, when its
    submission window reaches the arXiv API. That is a Sunday for a Monday: the window closed at 14:00 on
    Friday, and its papers are not public (the API holds none of them) until Sunday evening."""
    d = date.fromisoformat(day)
    if d.weekday() >= 5:
        raise ValueError(f"{day} is a {weekday_name(day)}: arXiv announces nothing dated then")
    return _deadline(d - timedelta(days=1), ANNOUNCED)


def current_day(now: datetime | None = None) -> str:
    """The day of the newest listing announced by `now` (default: the clock): Monday to Friday, the same
    wherever the machine is (Friday's from Thursday 20:00 US Eastern until Sunday 20:00, Monday's from then)."""
    now = now or datetime.now(timezone.utc)
    d = now.astimezone(timezone.utc).date() + timedelta(days=1)
    while d.weekday() >= 5 or _deadline(d - timedelta(days=1), ANNOUNCED) > now:
        d -= timedelta(days=1)
    return d.isoformat()
