"""Business time: the platform's one place for arithmetic on opening hours.

A `Calendar` is an IANA time zone, weekly opening hours (several intervals a day, so lunch
breaks are gaps; an interval stays within its day and `24:00` ends it) and dated holidays.
`due(calendar, start, duration, pauses)` is the instant at which `duration` of open time
has passed since `start`; `elapsed(calendar, start, end, pauses)` is the open time between
two instants. Pauses (waiting on the customer) are `(from, to)` spans that do not count;
`to` is None while the clock is still paused. The module is pure: no I/O, no clock reads.
Whoever needs "now" takes a `Clock` (`SystemClock` in services, `ManualClock` in tests).

What is open. An instant is open when the calendar zone's wall clock at that instant shows
a date that is not a holiday and a time inside that weekday's hours. Everything follows
from that one rule, and the UTC offsets come from the time zone database (never "add an
hour"):

- A wall time that does not exist (02:30 on a spring-forward night in Europe/Berlin) is
  skipped by the clock: hours opening at it start at the transition (03:00 CEST), hours
  closing at it end at the transition, hours entirely inside the gap are not open that day.
- A wall time that happens twice (02:30 on an autumn night) is open both times: hours that
  span the repeated hour count it twice, as the clock shows it twice; so a 24x7 calendar's
  day of a change is 23 or 25 hours long (23.5 or 24.5 on Australia/Lord_Howe).

Due times. `due` is the earliest instant at which the open time since `start`, minus
pauses, reaches `duration`: a start outside business hours counts from the next opening,
a duration that ends exactly at a closing time is due at that closing time (not at the
next opening), and `due(start, 0)` is `start`. Hence `elapsed(start, due(start, d)) == d`,
to the microsecond. A due time is None when an open pause (`to` None) stops the clock first.
Results are UTC.

Cost. The walk goes a day at a time only near its ends, holidays, pauses and changes of
UTC offset; any seven other days hold exactly one week of opening hours, so whole weeks
are skipped in one step. A due time months away takes microseconds. Guards: a calendar
without any opening hours is refused, holidays are limited to MAX_HOLIDAYS, and neither
function looks more than HORIZON_YEARS past its start.

Durations on the wire are ISO 8601 (`parse_duration`, `format_duration`): weeks, days,
hours, minutes and seconds, where a day is 24 hours of open time; years and months have
no fixed length and are refused.

Offsets come from the standard library's `zoneinfo`, which reads the system's time zone
database and falls back to the pinned `tzdata` package (PYTHONTZPATH="" makes every
machine use the pinned one). The offset changes of a zone are found by probing it once a
UTC day (cached per zone and year); the tz database has no two changes within a day.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Protocol, runtime_checkable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crm_runtime.errors import InvalidField

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_HOLIDAYS = 1000
MAX_DURATION = timedelta(days=366)
HORIZON_YEARS = 100
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)

Interval = tuple[int, int]  # minutes after local midnight, start < end <= 1440
Pause = tuple[datetime, datetime | None]

# Instants are integer microseconds since 1970-01-01T00:00Z; a local date is its day number
# since 1970-01-01, and its midnight the same number of microseconds read as wall time.
_US = timedelta(microseconds=1)
_SECOND = 1_000_000
_MINUTE = 60 * _SECOND
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR
_MINUTES_PER_DAY = 1440
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Every instant whose wall date is day d lies in (midnight(d) - 26 h, midnight(d) + 50 h)
# read as UTC, as no UTC offset reaches 24 hours: the day's window.
_BEFORE = 26 * _HOUR
_AFTER = 50 * _HOUR
_HORIZON = timedelta(days=36525) // _US
_LATEST_US = (LATEST - _EPOCH) // _US


def _us(instant: datetime) -> int:
    return (instant - _EPOCH) // _US


def _instant(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _offset(zone: ZoneInfo, us: int) -> int:
    """The zone's UTC offset at an instant, in microseconds."""
    offset = _instant(us).astimezone(zone).utcoffset()
    return (offset or timedelta(0)) // _US


@functools.lru_cache(maxsize=8192)
def _year_changes(key: str, year: int) -> tuple[tuple[int, int], ...]:
    """(instant, offset from then on) of each change of the zone's UTC offset in
    (1 January `year`, 1 January `year + 1`] UTC: probed once a day, bisected to the second."""
    zone = ZoneInfo(key)
    lo = _us(datetime(year, 1, 1, tzinfo=UTC)) // _SECOND
    last = _us(datetime(year + 1, 1, 1, tzinfo=UTC)) // _SECOND
    lo_offset = _offset(zone, lo * _SECOND)
    changes: list[tuple[int, int]] = []
    while lo < last:
        hi = min(lo + 86_400, last)
        hi_offset = _offset(zone, hi * _SECOND)
        if hi_offset != lo_offset:
            before, after = lo, hi
            while after - before > 1:
                middle = (before + after) // 2
                if _offset(zone, middle * _SECOND) == lo_offset:
                    before = middle
                else:
                    after = middle
            changes.append((after * _SECOND, _offset(zone, after * _SECOND)))
        lo, lo_offset = hi, hi_offset
    return tuple(changes)


def _changes(key: str, lo: int, hi: int) -> list[tuple[int, int]]:
    """The zone's offset changes at instants strictly between lo and hi."""
    return [change for year in range(_instant(lo).year, _instant(hi).year + 1)
            for change in _year_changes(key, year) if lo < change[0] < hi]


def _next_change(key: str, lo: int, cap: int) -> int:
    """The first offset change after lo, or cap if none comes before it."""
    for year in range(_instant(lo).year, _instant(cap).year + 1):
        for instant, _ in _year_changes(key, year):
            if instant > lo:
                return min(instant, cap)
    return cap


@functools.lru_cache(maxsize=16384)
def _steady_offset(key: str, day: int) -> int | None:
    """The zone's UTC offset throughout the window of a local date, None if it changes there."""
    base = day * _DAY
    if _changes(key, base - _BEFORE, base + _AFTER):
        return None
    return _offset(ZoneInfo(key), base)


def _zone(key: object) -> ZoneInfo:
    if not isinstance(key, str) or not key:
        raise InvalidField("time_zone", "is required: an IANA time zone such as Europe/Berlin")
    try:
        if len(key) > 64:
            raise ValueError(key)
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidField("time_zone", f"{key[:64]!r} is not an IANA time zone such as Europe/Berlin") from None


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


_TIME = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")


def _parse_time(field: str, which: str, text: object) -> int:
    if text == "24:00" and which == "end":
        return _MINUTES_PER_DAY
    if text == "24:00":
        raise InvalidField(field, "starts at 24:00, which only ends a day")
    match = _TIME.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        shown = repr(text[:20]) if isinstance(text, str) else type(text).__name__
        raise InvalidField(field, f"{which} {shown} is not a time HH:MM between 00:00 and 24:00")
    return int(match[1]) * 60 + int(match[2])


def _parse_interval(field: str, raw: object) -> Interval:
    if not isinstance(raw, list | tuple) or len(raw) != 2:
        raise InvalidField(field, 'must be a pair of times [start, end], such as ["09:00", "12:00"]')
    return _parse_time(field, "start", raw[0]), _parse_time(field, "end", raw[1])


_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _parse_date(field: str, raw: object) -> date:
    if isinstance(raw, str) and _DATE.fullmatch(raw):
        try:
            return date.fromisoformat(raw)
        except ValueError:
            pass
    shown = repr(raw[:20]) if isinstance(raw, str) else type(raw).__name__
    raise InvalidField(field, f"{shown} is not a date YYYY-MM-DD")


def _check_day(day: str, intervals: Iterable[object]) -> tuple[Interval, ...]:
    checked: list[tuple[Interval, int]] = []
    for index, interval in enumerate(intervals):
        name = f"hours.{day}[{index}]"
        if (not isinstance(interval, tuple) or len(interval) != 2
                or not all(isinstance(m, int) and not isinstance(m, bool) for m in interval)):
            raise InvalidField(name, "must be a pair of minutes after midnight (start, end)")
        start, end = interval
        if not 0 <= start < _MINUTES_PER_DAY or not 0 < end <= _MINUTES_PER_DAY:
            raise InvalidField(name, "must lie within the day, 00:00 to 24:00")
        if end <= start:
            raise InvalidField(name, f"ends at {_hhmm(end)}, at or before it starts ({_hhmm(start)})")
        checked.append(((start, end), index))
    checked.sort()
    for (earlier, first), (later, second) in zip(checked, checked[1:], strict=False):
        if later[0] < earlier[1]:
            named, other = max(first, second), min(first, second)
            relation = "duplicates" if earlier == later else "overlaps"
            shown = earlier if named == second else later
            raise InvalidField(f"hours.{day}[{named}]",
                               f"{relation} hours.{day}[{other}] ({_hhmm(shown[0])}-{_hhmm(shown[1])})")
    return tuple(interval for interval, _ in checked)


def _check_holidays(holidays: Iterable[object]) -> tuple[date, ...]:
    seen: dict[date, int] = {}
    for index, holiday in enumerate(holidays):
        if index >= MAX_HOLIDAYS:
            raise InvalidField("holidays", f"lists more than {MAX_HOLIDAYS} dates")
        if not isinstance(holiday, date) or isinstance(holiday, datetime):
            raise InvalidField(f"holidays[{index}]", "must be a date")
        if holiday in seen:
            raise InvalidField(f"holidays[{index}]", f"duplicates holidays[{seen[holiday]}] ({holiday.isoformat()})")
        seen[holiday] = index
    return tuple(sorted(seen))


@dataclass(frozen=True)
class Calendar:
    """Opening hours in a time zone. `hours` has seven days, Monday first, each a tuple of
    (start, end) minutes after local midnight; `24:00` is 1440. Build one from JSON with
    `Calendar.parse`; the constructor checks the same rules and keeps intervals and
    holidays sorted, so equal calendars compare and hash equal."""

    time_zone: str
    hours: tuple[tuple[Interval, ...], ...]
    holidays: tuple[date, ...] = ()
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _day_us: tuple[tuple[Interval, ...], ...] = field(init=False, repr=False, compare=False)
    _week_us: int = field(init=False, repr=False, compare=False)
    _holiday_days: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _holiday_set: frozenset[int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        zone = _zone(self.time_zone)
        if not isinstance(self.hours, Sequence) or isinstance(self.hours, str) or len(self.hours) != 7:
            raise InvalidField("hours", "must have seven days, Monday first")
        hours = tuple(_check_day(day, intervals) for day, intervals in zip(DAYS, self.hours, strict=True))
        if not any(hours):
            raise InvalidField("hours", "has no opening hours")
        holidays = _check_holidays(self.holidays)
        day_us = tuple(tuple((start * _MINUTE, end * _MINUTE) for start, end in day) for day in hours)
        epoch = date(1970, 1, 1)
        holiday_days = tuple((holiday - epoch).days for holiday in holidays)
        for name, value in (("hours", hours), ("holidays", holidays), ("_zone", zone), ("_day_us", day_us),
                            ("_week_us", sum(end - start for day in day_us for start, end in day)),
                            ("_holiday_days", holiday_days), ("_holiday_set", frozenset(holiday_days))):
            object.__setattr__(self, name, value)

    @classmethod
    def parse(cls, data: object) -> Calendar:
        """`{"time_zone": "Europe/Berlin", "hours": {"mon": [["09:00", "12:00"], ["13:00", "17:00"]], ...},
        "holidays": ["2026-12-25"]}`; days left out are closed. InvalidField names the bad field."""
        if not isinstance(data, Mapping):
            raise InvalidField("calendar", "must be an object with time_zone, hours and holidays")
        for key in data:
            if key not in ("time_zone", "hours", "holidays"):
                raise InvalidField(str(key)[:40], "is not a calendar field (time_zone, hours, holidays)")
        time_zone = data.get("time_zone")
        _zone(time_zone)
        assert isinstance(time_zone, str)
        raw_hours = data.get("hours")
        if not isinstance(raw_hours, Mapping):
            raise InvalidField("hours", 'is required: day names (mon to sun) to [["09:00", "17:00"], ...]')
        week: list[tuple[Interval, ...]] = [() for _ in DAYS]
        for day, raw in raw_hours.items():
            if day not in DAYS:
                raise InvalidField(f"hours.{str(day)[:20]}", "is not a day: mon, tue, wed, thu, fri, sat or sun")
            if not isinstance(raw, list | tuple):
                raise InvalidField(f"hours.{day}", 'must be a list of [start, end] pairs, such as [["09:00", "17:00"]]')
            week[DAYS.index(day)] = tuple(_parse_interval(f"hours.{day}[{i}]", item) for i, item in enumerate(raw))
        raw_holidays = data.get("holidays")
        if raw_holidays is None:
            raw_holidays = []
        if not isinstance(raw_holidays, list | tuple):
            raise InvalidField("holidays", "must be a list of dates YYYY-MM-DD")
        if len(raw_holidays) > MAX_HOLIDAYS:
            raise InvalidField("holidays", f"lists {len(raw_holidays)} dates; at most {MAX_HOLIDAYS} are allowed")
        holidays = tuple(_parse_date(f"holidays[{i}]", raw) for i, raw in enumerate(raw_holidays))
        return cls(time_zone, tuple(week), holidays)

    @classmethod
    def always(cls, time_zone: str = "UTC") -> Calendar:
        """Open 24 hours a day, seven days a week: business time is real time."""
        return cls(time_zone, tuple(((0, _MINUTES_PER_DAY),) for _ in DAYS))

    def to_dict(self) -> dict[str, object]:
        """The JSON form `parse` reads, every day listed (closed ones as [])."""
        return {
            "time_zone": self.time_zone,
            "hours": {day: [[_hhmm(start), _hhmm(end)] for start, end in intervals]
                      for day, intervals in zip(DAYS, self.hours, strict=True)},
            "holidays": [holiday.isoformat() for holiday in self.holidays],
        }

    @property
    def zone(self) -> ZoneInfo:
        return self._zone

    @property
    def weekly_hours(self) -> timedelta:
        """The open time of a week without holidays or offset changes."""
        return timedelta(microseconds=self._week_us)

    def is_open(self, instant: datetime) -> bool:
        """Whether the calendar is open at `instant` (an aware datetime)."""
        local = _instant(_instant_of("instant", instant)).astimezone(self._zone)
        if local.date().toordinal() - 719_163 in self._holiday_set:  # 719_163: 1970-01-01
            return False
        of_day = (local.hour * 3600 + local.minute * 60 + local.second) * _SECOND + local.microsecond
        return any(start <= of_day < end for start, end in self._day_us[local.weekday()])


TWENTY_FOUR_SEVEN = Calendar.always()


# --- the walk over open time -------------------------------------------------------------

def _day_pieces(calendar: Calendar, day: int) -> tuple[list[Interval], bool]:
    """The open spans (UTC microseconds, sorted) of one local date, and whether the zone's
    offset changes within the day's window."""
    base = day * _DAY
    steady = _steady_offset(calendar.time_zone, day)
    intervals = calendar._day_us[(day + 3) % 7]  # 1970-01-01 was a Thursday
    if not intervals or day in calendar._holiday_set:
        return [], steady is None
    if steady is not None:
        return [(base + start - steady, base + end - steady) for start, end in intervals], False
    # Spans of constant offset; an interval is open in each where the wall clock shows it.
    lo, hi = base - _BEFORE, base + _AFTER
    changes = _changes(calendar.time_zone, lo, hi)
    segments: list[tuple[int, int, int]] = []
    since, offset = lo, _offset(calendar._zone, lo)
    for instant, after in changes:
        segments.append((since, instant, offset))
        since, offset = instant, after
    segments.append((since, hi, offset))
    pieces = [(max(base + start - offset, first), min(base + end - offset, last))
              for start, end in intervals for first, last, offset in segments]
    return sorted((a, b) for a, b in pieces if a < b), True


def _block(calendar: Calendar, day: int) -> tuple[list[Interval], int]:
    """The open spans of `day`, or, near an offset change (where a date's spans may come
    after the next date's), of the run of days around it, in order; and the next day."""
    pieces, changed = _day_pieces(calendar, day)
    day += 1
    while changed:
        more, changed = _day_pieces(calendar, day)
        pieces.extend(more)
        day += 1
    pieces.sort()
    return pieces, day


def _whole_weeks(calendar: Calendar, day: int, left: int | None, bounds: Iterable[int]) -> int:
    """How many whole weeks from `day` hold exactly `weekly_hours` (no holiday, no offset
    change, no bound) while leaving some of `left` to go."""
    week = calendar._week_us
    weeks = (left - 1) // week if left is not None else 1 << 62

    def before(instant: int) -> int:  # weeks whose days' windows all end by the instant
        return ((instant - _AFTER) // _DAY - day + 1) // 7

    for bound in bounds:
        weeks = min(weeks, before(bound))
    at = bisect.bisect_left(calendar._holiday_days, day)
    if at < len(calendar._holiday_days):
        weeks = min(weeks, (calendar._holiday_days[at] - day) // 7)
    if weeks <= 0:
        return 0
    cap = (day + 7 * weeks) * _DAY + _AFTER
    return max(0, min(weeks, before(_next_change(calendar.time_zone, day * _DAY - _BEFORE, cap))))


def _walk(calendar: Calendar, start: int, need: int | None, end: int,
          pauses: Sequence[Interval]) -> tuple[int | None, int]:
    """Go through the open time after `start`, outside `pauses` (sorted, disjoint), until
    `need` has passed (the instant, need) or `end` is reached (None, open time counted)."""
    if need == 0:
        return start, 0
    counted = 0
    # From the day before the wall date of the start: no change takes the clock back a day.
    day = (start + _offset(calendar._zone, start)) // _DAY - 1
    upcoming = 0
    while True:
        lo = day * _DAY - _BEFORE
        if lo >= end:
            return None, counted
        while upcoming < len(pauses) and pauses[upcoming][1] <= lo:
            upcoming += 1
        if upcoming < len(pauses) and pauses[upcoming][0] <= lo:
            resumes = (pauses[upcoming][1] - _AFTER) // _DAY  # days before it are paused throughout
            if resumes > day:
                day = resumes
                continue
        if lo >= start:
            bounds = [end] + ([pauses[upcoming][0]] if upcoming < len(pauses) else [])
            weeks = _whole_weeks(calendar, day, None if need is None else need - counted, bounds)
            if weeks:
                counted += weeks * calendar._week_us
                day += 7 * weeks
                continue
        pieces, day = _block(calendar, day)
        for first, last in pieces:
            at, until = max(first, start), min(last, end)
            while at < until:
                while upcoming < len(pauses) and pauses[upcoming][1] <= at:
                    upcoming += 1
                if upcoming < len(pauses) and pauses[upcoming][0] <= at:
                    at = pauses[upcoming][1]
                    continue
                stop = min(until, pauses[upcoming][0]) if upcoming < len(pauses) else until
                if need is not None and counted + stop - at >= need:
                    return at + need - counted, need
                counted += stop - at
                at = stop


def _instant_of(field: str, value: object) -> int:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InvalidField(field, "must be a time with a UTC offset")
    if not EARLIEST <= value <= LATEST:
        raise InvalidField(field, f"must be between {EARLIEST.year} and {LATEST.year}")
    return _us(value)


def _pauses(pauses: Iterable[Pause]) -> tuple[list[Interval], int | None]:
    """Sorted, merged (from, to) spans, and the instant an open pause began (None if none)."""
    spans: list[Interval] = []
    paused_from: int | None = None
    for index, pause in enumerate(pauses):
        if not isinstance(pause, tuple | list) or len(pause) != 2:
            raise InvalidField(f"pauses[{index}]", "must be a pair (from, to)")
        begins = _instant_of(f"pauses[{index}].from", pause[0])
        if pause[1] is None:
            paused_from = begins if paused_from is None else min(paused_from, begins)
            continue
        ends = _instant_of(f"pauses[{index}].to", pause[1])
        if ends < begins:
            raise InvalidField(f"pauses[{index}]", "ends before it starts")
        if ends > begins:
            spans.append((begins, ends))
    spans.sort()
    merged: list[Interval] = []
    for begins, ends in spans:
        if merged and begins <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], ends))
        else:
            merged.append((begins, ends))
    return merged, paused_from


def due(calendar: Calendar, start: datetime, duration: timedelta,
        pauses: Iterable[Pause] = ()) -> datetime | None:
    """The earliest instant (UTC) at which `duration` of open time, outside the pauses, has
    passed since `start`; None if an open pause stops the clock before. InvalidField for a
    naive time, a negative duration, or a due time beyond HORIZON_YEARS."""
    begins = _instant_of("start", start)
    if not isinstance(duration, timedelta):
        raise InvalidField("duration", "must be a duration")
    if duration < timedelta(0):
        raise InvalidField("duration", "must not be negative")
    spans, paused_from = _pauses(pauses)
    horizon = min(begins + _HORIZON, _LATEST_US)
    end = horizon if paused_from is None else min(paused_from, horizon)
    found, _ = _walk(calendar, begins, duration // _US, end, spans)
    if found is not None:
        return _instant(found)
    if paused_from is not None and paused_from <= horizon:
        return None
    raise InvalidField("duration", f"is not reached within {HORIZON_YEARS} years of the start on this calendar")


def elapsed(calendar: Calendar, start: datetime, end: datetime, pauses: Iterable[Pause] = ()) -> timedelta:
    """The open time between `start` and `end`, outside the pauses (an open pause counts
    nothing after it began). InvalidField if `end` is before `start` or too far after it."""
    begins, ends = _instant_of("start", start), _instant_of("end", end)
    if ends < begins:
        raise InvalidField("end", "is before start")
    if ends - begins > _HORIZON:
        raise InvalidField("end", f"is more than {HORIZON_YEARS} years after start")
    spans, paused_from = _pauses(pauses)
    _, counted = _walk(calendar, begins, None, ends if paused_from is None else min(ends, paused_from), spans)
    return timedelta(microseconds=counted)


# --- clocks --------------------------------------------------------------------------------

@runtime_checkable
class Clock(Protocol):
    """Where "now" comes from. Services take one; tests pass a ManualClock."""

    def now(self) -> datetime: ...


class SystemClock:
    """The machine's clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self, now: datetime) -> None:
        self._now = self._checked(now)

    @staticmethod
    def _checked(instant: datetime) -> datetime:
        if instant.utcoffset() is None:
            raise ValueError("a ManualClock's time needs a UTC offset")
        return instant.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def set(self, instant: datetime) -> None:
        self._now = self._checked(instant)

    def advance(self, delta: timedelta) -> datetime:
        self._now += delta
        return self._now


# --- ISO 8601 durations ------------------------------------------------------------------

_DURATION = re.compile(
    r"P(?:(?P<weeks>[0-9]{1,6})W|(?:(?P<days>[0-9]{1,6})D)?"
    r"(?:T(?=[0-9])(?:(?P<hours>[0-9]{1,8})H)?(?:(?P<minutes>[0-9]{1,10})M)?"
    r"(?:(?P<seconds>[0-9]{1,12})(?:[.,](?P<fraction>[0-9]{1,6}))?S)?)?)")


def parse_duration(text: object, field: str = "duration") -> timedelta:
    """`PT4H`, `P1DT2H30M`, `P2W`, `PT0S`, `PT1.5S` as a timedelta (a day is 24 hours). Refused,
    naming `field`: years and months (no fixed length), negative durations, fractions other
    than of seconds, anything longer than MAX_DURATION."""
    if not isinstance(text, str):
        raise InvalidField(field, "must be an ISO 8601 duration such as PT4H")
    if text.startswith("-"):
        raise InvalidField(field, "must not be negative")
    if re.search(r"[0-9][YM]", text.split("T", 1)[0]):
        raise InvalidField(field, "years and months have no fixed length: use weeks, days (24 hours) or hours")
    if re.search(r"[.,][0-9]*[WDHM]", text):
        raise InvalidField(field, "only seconds may have a fraction: write PT1H30M, not PT1.5H")
    match = _DURATION.fullmatch(text)
    if match is None or text in ("P", "PT") or text.endswith("T"):
        raise InvalidField(field, f"{text[:40]!r} is not an ISO 8601 duration such as PT4H, P1DT2H30M or PT0S")
    parts = {name: int(value) for name, value in match.groupdict().items() if value and name != "fraction"}
    fraction = match["fraction"] or ""
    duration = timedelta(weeks=parts.get("weeks", 0), days=parts.get("days", 0), hours=parts.get("hours", 0),
                         minutes=parts.get("minutes", 0), seconds=parts.get("seconds", 0),
                         microseconds=int(fraction.ljust(6, "0")) if fraction else 0)
    if duration > MAX_DURATION:
        raise InvalidField(field, f"is longer than the maximum, {format_duration(MAX_DURATION)}")
    return duration


def format_duration(duration: timedelta) -> str:
    """ISO 8601 in hours, minutes and seconds (`PT26H30M`, `PT0S`): a day of business time
    would read as a working day, so days are never written."""
    if duration < timedelta(0):
        raise ValueError("a negative duration has no ISO 8601 form")
    total = duration // _US
    seconds, micro = divmod(total, _SECOND)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    text = "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    if seconds or micro:
        text += f"{seconds}" + (f".{micro:06d}".rstrip("0") if micro else "") + "S"
    return text if text != "PT" else "PT0S"
