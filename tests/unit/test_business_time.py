"""Business time (crm_runtime.business_time): calendars, due and elapsed with pauses, clocks, durations.

The properties run over random calendars (breaks, closed days, 24-hour days, holidays) in
zones with offset changes, with starts drawn near those changes, and random pauses. They
are checked against the module itself (due then elapsed gives the duration back, due grows
with the duration) and against an oracle written here from the definition alone: an
instant is open when the zone's wall clock shows a date that is no holiday and a time
inside that weekday's hours; open time is counted minute by minute.
"""

from __future__ import annotations

import functools
import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_runtime.business_time import (
    DAYS,
    MAX_DURATION,
    MAX_HOLIDAYS,
    TWENTY_FOUR_SEVEN,
    Calendar,
    Clock,
    ManualClock,
    SystemClock,
    due,
    elapsed,
    format_duration,
    parse_duration,
)
from crm_runtime.errors import InvalidField

MINUTE = timedelta(minutes=1)
US = timedelta(microseconds=1)
# Zones with offset changes of one hour, of half an hour (Lord_Howe), at midnight (Santiago),
# none since 1991 (Shanghai), and one whose autumn change once took the clock back across
# midnight (Goose_Bay until 2010): each with the years to draw starts from.
ZONES = {
    "Europe/Berlin": (2026,), "America/New_York": (2026,), "Australia/Lord_Howe": (2026,),
    "America/Santiago": (2026,), "Asia/Shanghai": (2026,), "UTC": (2026,), "America/Goose_Bay": (1988,),
}


def at(zone: str, *fields: int) -> datetime:
    return datetime(*fields, tzinfo=ZoneInfo(zone))


def weekdays(*intervals: list[str]) -> dict[str, list[list[str]]]:
    return {day: [list(interval) for interval in intervals] for day in DAYS[:5]}


BERLIN = Calendar.parse({"time_zone": "Europe/Berlin", "hours": weekdays(["09:00", "12:00"], ["13:00", "17:00"]),
                         "holidays": ["2026-04-06", "2026-12-25"]})


# --- the oracle ------------------------------------------------------------------------------

@functools.cache
def definition(calendar: Calendar):
    """The calendar's JSON form read afresh: zone, holidays, and each weekday's (start, end) minutes."""
    form = calendar.to_dict()
    minutes = [[(int(a[:2]) * 60 + int(a[3:]), int(b[:2]) * 60 + int(b[3:])) for a, b in form["hours"][day]]
               for day in DAYS]
    return ZoneInfo(form["time_zone"]), set(form["holidays"]), minutes


def open_by_definition(calendar: Calendar, instant: datetime) -> bool:
    """From the calendar's JSON form and the zone alone, not from the module's walk."""
    zone, holidays, minutes = definition(calendar)
    local = instant.astimezone(zone)
    if local.date().isoformat() in holidays:
        return False
    of_day = local.hour * 60 + local.minute + (local.second + local.microsecond / 1e6) / 60
    return any(start <= of_day < end for start, end in minutes[local.weekday()])


def paused_at(pauses, instant: datetime) -> bool:
    return any(begins <= instant and (ends is None or instant < ends) for begins, ends in pauses)


def count_minutes(calendar: Calendar, start: datetime, end: datetime, pauses=()) -> timedelta:
    """Open minutes in [start, end), both on whole minutes (so is every boundary of the open set)."""
    total, instant = timedelta(0), start
    while instant < end:
        if open_by_definition(calendar, instant) and not paused_at(pauses, instant):
            total += MINUTE
        instant += MINUTE
    return total


@functools.cache
def offset_changes(zone: str, year: int) -> list[datetime]:
    """The instants the zone's offset changed in a year, by an hourly scan and bisection."""
    tz, found = ZoneInfo(zone), []
    instant = datetime(year, 1, 1, tzinfo=UTC)
    while instant.year == year:
        later = instant + timedelta(hours=1)
        if instant.astimezone(tz).utcoffset() != later.astimezone(tz).utcoffset():
            minute = instant
            while minute.astimezone(tz).utcoffset() == instant.astimezone(tz).utcoffset():
                minute += MINUTE
            found.append(minute)
        instant = later
    return found


# --- strategies ------------------------------------------------------------------------------

@st.composite
def day_hours(draw) -> list[list[str]]:
    if draw(st.integers(0, 9)) < 2:
        return []
    if draw(st.integers(0, 9)) == 0:
        return [["00:00", "24:00"]]
    # half-hour points (the night's 02:00 to 03:00 is often among them), now and then any minute
    points = draw(st.lists(st.one_of(st.integers(0, 48).map(lambda h: h * 30), st.integers(0, 1440)),
                           min_size=2, max_size=8, unique=True))
    points.sort()
    points = points[: len(points) // 2 * 2]
    hhmm = [f"{point // 60:02d}:{point % 60:02d}" for point in points]
    return [list(pair) for pair in zip(hhmm[::2], hhmm[1::2], strict=True)]


@st.composite
def calendars(draw) -> Calendar:
    zone = draw(st.sampled_from(sorted(ZONES)))
    hours = {day: draw(day_hours()) for day in DAYS}
    if not any(hours.values()):
        hours["mon"] = [["09:00", "17:00"]]
    year = ZONES[zone][0]
    holidays = draw(st.lists(st.dates(date(year, 1, 1), date(year, 12, 31)), max_size=40, unique=True))
    return Calendar.parse({"time_zone": zone, "hours": hours, "holidays": [d.isoformat() for d in holidays]})


@st.composite
def starts(draw, calendar: Calendar) -> datetime:
    """A whole minute, most often within four days of an offset change of the zone."""
    year = ZONES[calendar.time_zone][0]
    changes = offset_changes(calendar.time_zone, year)
    if changes and draw(st.booleans()):
        base = draw(st.sampled_from(changes)) - timedelta(days=3)
        return base + draw(st.integers(0, 4 * 1440)) * MINUTE
    return datetime(year, 1, 1, tzinfo=UTC) + draw(st.integers(0, 360 * 1440)) * MINUTE


@st.composite
def pause_lists(draw, start: datetime):
    pauses = []
    for _ in range(draw(st.integers(0, 3))):
        begins = start + draw(st.integers(-600, 4 * 1440)) * MINUTE
        if draw(st.integers(0, 9)) == 0:
            pauses.append((begins, None))
        else:
            pauses.append((begins, begins + draw(st.integers(0, 2 * 1440)) * MINUTE))
    return pauses


@st.composite
def cases(draw):
    calendar = draw(calendars())
    start = draw(starts(calendar))
    return calendar, start, draw(pause_lists(start))


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- properties ------------------------------------------------------------------------------

@PROPERTY
@given(cases(), st.integers(0, 3 * 1440), st.integers(0, 59_999_999))
def test_due_then_elapsed_gives_the_duration_back_and_due_is_never_in_a_break(case, minutes, jitter):
    calendar, start, pauses = case
    start += jitter * US  # not only whole minutes
    duration = minutes * MINUTE + jitter % 1000 * US
    found = due(calendar, start, duration, pauses)
    if found is None:  # an open pause stopped the clock before the duration was reached
        begins = min(b for b, e in pauses if e is None)
        assert elapsed(calendar, start, max(start, begins), pauses) < duration
        return
    assert found.utcoffset() == timedelta(0) and found >= start
    assert elapsed(calendar, start, found, pauses) == duration
    if duration:
        # the open time runs up to the due time: it is inside open hours or exactly at a closing time
        just_before = found - US
        assert open_by_definition(calendar, just_before) and not paused_at(pauses, just_before)
        assert elapsed(calendar, start, just_before, pauses) < duration
    else:
        assert found == start


@PROPERTY
@given(cases(), st.integers(0, 3 * 1440), st.integers(0, 3 * 1440))
def test_due_grows_with_the_duration(case, one, other):
    calendar, start, pauses = case
    shorter, longer = sorted((one * MINUTE, other * MINUTE))
    early, late = due(calendar, start, shorter, pauses), due(calendar, start, longer, pauses)
    if early is None:
        assert late is None
    elif late is not None:
        assert early <= late
        assert (early < late) == (shorter < longer)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), st.integers(0, 3 * 1440))
def test_elapsed_is_the_open_time_counted_minute_by_minute(case, minutes):
    calendar, start, pauses = case
    end = start + minutes * MINUTE
    assert elapsed(calendar, start, end, pauses) == count_minutes(calendar, start, end, pauses)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), st.integers(0, 8 * 1440), st.integers(10, 200))
def test_months_skipped_a_week_at_a_time_agree_with_a_walk_of_two_day_steps(case, extra, weeks):
    calendar, start, pauses = case
    end = start + weeks * timedelta(weeks=1) + extra * MINUTE
    step, total, at_ = timedelta(days=2), timedelta(0), start
    while at_ < end:
        total += elapsed(calendar, at_, min(at_ + step, end), pauses)
        at_ += step
    assert elapsed(calendar, start, end, pauses) == total
    if total:
        found = due(calendar, start, total, pauses)
        assert found is not None and found <= end
        assert elapsed(calendar, found, end, pauses) == timedelta(0)


@settings(max_examples=60, deadline=None)
@given(calendars())
def test_a_calendar_round_trips_through_its_json_form(calendar):
    again = Calendar.parse(calendar.to_dict())
    assert again == calendar and hash(again) == hash(calendar)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, MAX_DURATION // US))
def test_durations_round_trip_through_iso_8601(microseconds):
    duration = timedelta(microseconds=microseconds)
    assert parse_duration(format_duration(duration)) == duration


# --- hand-computed cases ---------------------------------------------------------------------

NEW_YORK = Calendar.parse({"time_zone": "America/New_York", "hours": weekdays(["08:00", "18:00"])})
SHANGHAI = Calendar.parse({"time_zone": "Asia/Shanghai", "hours": weekdays(["09:00", "12:00"], ["13:30", "18:00"]),
                           "holidays": [f"2026-10-0{d}" for d in range(1, 8)]})  # National Day week
BERLIN_24X7 = Calendar.always("Europe/Berlin")
# Open on Sundays 02:30 to 04:00: on 2026-03-29 02:30 does not exist (02:00 CET -> 03:00 CEST).
BERLIN_SUNDAY_NIGHT = Calendar.parse({"time_zone": "Europe/Berlin", "hours": {"sun": [["02:30", "04:00"]]}})
# Open on Sundays 02:00 to 02:30: on 2026-10-25 that half hour happens twice (03:00 CEST -> 02:00 CET).
BERLIN_REPEATED = Calendar.parse({"time_zone": "Europe/Berlin", "hours": {"sun": [["02:00", "02:30"]]}})
# Goose Bay, 1987-10-25: at 00:01 ADT the clock went back to 23:01 AST on Saturday.
GOOSE_BAY = Calendar.parse({"time_zone": "America/Goose_Bay",
                            "hours": {"sat": [["23:00", "23:30"]], "sun": [["00:00", "01:00"]]}})
Z = UTC

DUE = [
    # Friday evening into Monday: 09-12 and 13-14
    ("friday evening into monday", BERLIN, at("Europe/Berlin", 2026, 3, 13, 18), "PT4H",
     at("Europe/Berlin", 2026, 3, 16, 14)),
    ("over the lunch break", BERLIN, at("Europe/Berlin", 2026, 3, 16, 11), "PT2H",
     at("Europe/Berlin", 2026, 3, 16, 14)),
    ("ending at closing time is due then", BERLIN, at("Europe/Berlin", 2026, 3, 16, 16), "PT1H",
     at("Europe/Berlin", 2026, 3, 16, 17)),
    ("ending at the lunch break is due then", BERLIN, at("Europe/Berlin", 2026, 3, 16, 11), "PT1H",
     at("Europe/Berlin", 2026, 3, 16, 12)),
    ("a start before opening counts from the opening", BERLIN, at("Europe/Berlin", 2026, 3, 17, 7, 30), "PT30M",
     at("Europe/Berlin", 2026, 3, 17, 9, 30)),
    ("a start in the lunch break counts from 13:00", BERLIN, at("Europe/Berlin", 2026, 3, 17, 12, 30), "PT1H",
     at("Europe/Berlin", 2026, 3, 17, 14)),
    ("a start on a Sunday counts from Monday", BERLIN, at("Europe/Berlin", 2026, 3, 15, 11), "PT7H",
     at("Europe/Berlin", 2026, 3, 16, 17)),
    ("a holiday on a Monday (Easter Monday)", BERLIN, at("Europe/Berlin", 2026, 4, 3, 16), "PT2H",
     at("Europe/Berlin", 2026, 4, 7, 10)),
    ("a week of business time over Christmas", BERLIN, at("Europe/Berlin", 2026, 12, 21, 9), "PT35H",
     at("Europe/Berlin", 2026, 12, 28, 17)),
    ("across the spring change (Friday 17:00 CET to Monday 10:00 CEST)", BERLIN,
     at("Europe/Berlin", 2026, 3, 27, 16), "PT2H", at("Europe/Berlin", 2026, 3, 30, 10)),
    ("24x7 over the spring night: six real hours", BERLIN_24X7, at("Europe/Berlin", 2026, 3, 28, 22), "PT6H",
     datetime(2026, 3, 29, 3, tzinfo=Z)),  # 05:00 CEST, not 04:00
    ("24x7 over the autumn night: four real hours", BERLIN_24X7, at("Europe/Berlin", 2026, 10, 25, 0), "PT4H",
     datetime(2026, 10, 25, 2, tzinfo=Z)),  # 03:00 CET
    ("an opening at a nonexistent 02:30 starts at the change", BERLIN_SUNDAY_NIGHT,
     at("Europe/Berlin", 2026, 3, 28, 12), "PT30M", datetime(2026, 3, 29, 1, 30, tzinfo=Z)),  # 03:30 CEST
    ("a repeated half hour is open twice", BERLIN_REPEATED, at("Europe/Berlin", 2026, 10, 24, 12), "PT45M",
     datetime(2026, 10, 25, 1, 15, tzinfo=Z)),  # 02:15 CET, the second time
    ("New York: Friday 17:00 EST plus three hours is Monday 10:00 EDT", NEW_YORK,
     at("America/New_York", 2026, 3, 6, 17), "PT3H", datetime(2026, 3, 9, 14, tzinfo=Z)),
    ("New York: the autumn change", NEW_YORK, at("America/New_York", 2026, 10, 30, 17), "PT3H",
     datetime(2026, 11, 2, 15, tzinfo=Z)),  # Monday 10:00 EST
    ("Shanghai: National Day week", SHANGHAI, at("Asia/Shanghai", 2026, 9, 30, 17), "PT2H",
     datetime(2026, 10, 8, 2, tzinfo=Z)),  # Thursday 10:00 CST
    ("Shanghai: lunch until 13:30", SHANGHAI, at("Asia/Shanghai", 2026, 10, 9, 11), "PT2H",
     at("Asia/Shanghai", 2026, 10, 9, 14, 30)),
    ("24x7 UTC is plain addition", TWENTY_FOUR_SEVEN, datetime(2026, 5, 1, 10, 15, tzinfo=Z), "P2DT3H",
     datetime(2026, 5, 3, 13, 15, tzinfo=Z)),
    ("no time is no time, even outside hours", BERLIN, at("Europe/Berlin", 2026, 3, 15, 11), "PT0S",
     at("Europe/Berlin", 2026, 3, 15, 11)),
    # Goose Bay in UTC order: Sat 23:00-23:30 ADT (02:00Z), Sun 00:00-00:01 ADT (03:00Z), Sat 23:01-23:30 AST
    # (03:01Z), Sun 00:00-01:00 AST (04:00Z): Saturday's second half hour comes after Sunday's first minute
    ("a clock taken back across midnight", GOOSE_BAY, at("America/Goose_Bay", 1987, 10, 24, 20), "PT31M",
     datetime(1987, 10, 25, 3, 1, tzinfo=Z)),
    ("a clock taken back across midnight, later", GOOSE_BAY, at("America/Goose_Bay", 1987, 10, 24, 20), "PT60M",
     datetime(1987, 10, 25, 3, 30, tzinfo=Z)),
]


@pytest.mark.parametrize("name,calendar,start,duration,expected", DUE, ids=[case[0] for case in DUE])
def test_hand_computed_due_times(name, calendar, start, duration, expected):
    found = due(calendar, start, parse_duration(duration))
    assert found == expected, f"{found.astimezone(calendar.zone)} != {expected.astimezone(calendar.zone)}"
    assert elapsed(calendar, start, found) == parse_duration(duration)


ELAPSED = [
    ("Friday afternoon to Monday morning", BERLIN, at("Europe/Berlin", 2026, 3, 13, 16),
     at("Europe/Berlin", 2026, 3, 16, 10), timedelta(hours=2)),
    ("a whole week", BERLIN, at("Europe/Berlin", 2026, 3, 9), at("Europe/Berlin", 2026, 3, 16), timedelta(hours=35)),
    ("the week of Easter Monday", BERLIN, at("Europe/Berlin", 2026, 4, 6), at("Europe/Berlin", 2026, 4, 13),
     timedelta(hours=28)),
    ("a 24x7 spring day has 23 hours", BERLIN_24X7, at("Europe/Berlin", 2026, 3, 29),
     at("Europe/Berlin", 2026, 3, 30), timedelta(hours=23)),
    ("a 24x7 autumn day has 25 hours", BERLIN_24X7, at("Europe/Berlin", 2026, 10, 25),
     at("Europe/Berlin", 2026, 10, 26), timedelta(hours=25)),
    ("Lord Howe's spring day has 23.5 hours", Calendar.always("Australia/Lord_Howe"),
     at("Australia/Lord_Howe", 2026, 10, 4), at("Australia/Lord_Howe", 2026, 10, 5), timedelta(hours=23.5)),
    ("Lord Howe's autumn day has 24.5 hours", Calendar.always("Australia/Lord_Howe"),
     at("Australia/Lord_Howe", 2026, 4, 5), at("Australia/Lord_Howe", 2026, 4, 6), timedelta(hours=24.5)),
    ("the nonexistent 02:30 opening gives one hour", BERLIN_SUNDAY_NIGHT, at("Europe/Berlin", 2026, 3, 29),
     at("Europe/Berlin", 2026, 3, 30), timedelta(hours=1)),
    ("the repeated half hour counts twice", BERLIN_REPEATED, at("Europe/Berlin", 2026, 10, 25),
     at("Europe/Berlin", 2026, 10, 26), timedelta(hours=1)),
    ("Goose Bay's night across the change", GOOSE_BAY, at("America/Goose_Bay", 1987, 10, 24),
     at("America/Goose_Bay", 1987, 10, 26), timedelta(hours=2)),
    ("Santiago: midnight changes", Calendar.always("America/Santiago"), at("America/Santiago", 2026, 4, 4),
     at("America/Santiago", 2026, 4, 6), timedelta(hours=49)),
    ("start equals end", BERLIN, at("Europe/Berlin", 2026, 3, 16, 10), at("Europe/Berlin", 2026, 3, 16, 10),
     timedelta(0)),
]


@pytest.mark.parametrize("name,calendar,start,end,expected", ELAPSED, ids=[case[0] for case in ELAPSED])
def test_hand_computed_elapsed_times(name, calendar, start, end, expected):
    assert elapsed(calendar, start, end) == expected


def test_pauses_stop_the_clock_and_an_open_pause_leaves_no_due_time():
    monday = functools.partial(at, "Europe/Berlin", 2026, 3, 16)
    waiting = [(monday(10), monday(11, 30))]
    # 09-10, 11:30-12, 13-15:30
    assert due(BERLIN, monday(9), timedelta(hours=4), waiting) == monday(15, 30)
    assert elapsed(BERLIN, monday(9), monday(17), waiting) == timedelta(hours=5, minutes=30)
    # overlapping and touching pauses are one pause
    assert due(BERLIN, monday(9), timedelta(hours=4),
               [(monday(10), monday(11)), (monday(10, 30), monday(11, 30)), (monday(11, 30), monday(11, 30))]) \
        == monday(15, 30)
    # still paused since 10:00: no due time yet, and nothing counts after 10:00
    assert due(BERLIN, monday(9), timedelta(hours=4), [(monday(10), None)]) is None
    assert due(BERLIN, monday(9), timedelta(minutes=30), [(monday(10), None)]) == monday(9, 30)
    assert elapsed(BERLIN, monday(9), monday(17), [(monday(10), None)]) == timedelta(hours=1)
    # a pause over a whole weekend and beyond
    assert due(BERLIN, monday(9), timedelta(hours=8), [(monday(12), monday(12) + timedelta(days=8))]) \
        == at("Europe/Berlin", 2026, 3, 25, 10)


def test_a_due_time_months_away_takes_well_under_a_millisecond():
    start = at("Europe/Berlin", 2026, 1, 5, 10)
    cases = [(BERLIN, timedelta(days=d)) for d in (10, 30, 90)] + [(SHANGHAI, timedelta(days=60)),
                                                                   (NEW_YORK, timedelta(days=90))]
    for calendar, duration in cases:
        due(calendar, start, duration)  # the zone's offset changes of those years are cached after a first look
    began = time.perf_counter()
    rounds = 50
    for _ in range(rounds):
        for calendar, duration in cases:
            due(calendar, start, duration)
    each = (time.perf_counter() - began) / (rounds * len(cases))
    assert each < 0.001, f"{each * 1e6:.0f} µs per due time"


def test_a_due_time_that_never_comes_is_refused_quickly():
    one_minute_a_week = Calendar.parse({"time_zone": "Europe/Berlin", "hours": {"wed": [["10:00", "10:01"]]}})
    began = time.perf_counter()
    with pytest.raises(InvalidField) as caught:
        due(one_minute_a_week, at("Europe/Berlin", 2026, 1, 1), MAX_DURATION)
    assert caught.value.field == "duration" and "100 years" in caught.value.message
    assert time.perf_counter() - began < 2
    # a long list of holidays is walked past, not looped over
    every_day = [(date(2026, 1, 1) + timedelta(days=n)).isoformat() for n in range(MAX_HOLIDAYS)]
    closed = Calendar.parse({"time_zone": "Europe/Berlin", "hours": weekdays(["09:00", "17:00"]),
                             "holidays": every_day})
    found = due(closed, at("Europe/Berlin", 2026, 1, 1), timedelta(hours=1))
    assert found == at("Europe/Berlin", 2028, 9, 27, 10)  # the first weekday after 1,000 holidays, 10:00
    with pytest.raises(InvalidField) as caught:
        Calendar.parse({"time_zone": "UTC", "hours": weekdays(["09:00", "17:00"]),
                        "holidays": every_day + ["2030-01-01"]})
    assert caught.value.field == "holidays"


# --- calendars -------------------------------------------------------------------------------

GOOD = {"time_zone": "Europe/Berlin", "hours": {"mon": [["09:00", "12:00"], ["13:00", "17:00"]]}}


@pytest.mark.parametrize("change,field,words", [
    ({"time_zone": "Mars/Olympus_Mons"}, "time_zone", "not an IANA time zone"),
    ({"time_zone": "../../etc/passwd"}, "time_zone", "not an IANA time zone"),
    ({"time_zone": ""}, "time_zone", "required"),
    ({"time_zone": 1}, "time_zone", "required"),
    ({"hours": {"mon": [["09:00", "12:00"], ["11:00", "13:00"]]}}, "hours.mon[1]",
     "overlaps hours.mon[0] (09:00-12:00)"),
    ({"hours": {"mon": [["13:00", "17:00"], ["09:00", "13:30"]]}}, "hours.mon[1]",
     "overlaps hours.mon[0] (13:00-17:00)"),
    ({"hours": {"tue": [["09:00", "12:00"], ["09:00", "12:00"]]}}, "hours.tue[1]", "duplicates hours.tue[0]"),
    ({"hours": {"mon": [["17:00", "09:00"]]}}, "hours.mon[0]", "at or before it starts"),
    ({"hours": {"mon": [["09:00", "09:00"]]}}, "hours.mon[0]", "at or before it starts"),
    ({"hours": {"mon": [["24:00", "24:00"]]}}, "hours.mon[0]", "24:00"),
    ({"hours": {"mon": [["9:00", "12:00"]]}}, "hours.mon[0]", "not a time HH:MM"),
    ({"hours": {"mon": [["09:00", "24:01"]]}}, "hours.mon[0]", "not a time HH:MM"),
    ({"hours": {"mon": [["09:00", "25:00"]]}}, "hours.mon[0]", "not a time HH:MM"),
    ({"hours": {"mon": [["09:60", "12:00"]]}}, "hours.mon[0]", "not a time HH:MM"),
    ({"hours": {"mon": [["09:00:00", "12:00"]]}}, "hours.mon[0]", "not a time HH:MM"),
    ({"hours": {"mon": [[900, 1200]]}}, "hours.mon[0]", "not a time HH:MM"),
    ({"hours": {"mon": [["09:00"]]}}, "hours.mon[0]", "pair"),
    ({"hours": {"mon": "09:00-17:00"}}, "hours.mon", "list"),
    ({"hours": {"monday": [["09:00", "17:00"]]}}, "hours.monday", "not a day"),
    ({"hours": {"Mon": [["09:00", "17:00"]]}}, "hours.Mon", "not a day"),
    ({"hours": {}}, "hours", "has no opening hours"),
    ({"hours": {day: [] for day in DAYS}}, "hours", "has no opening hours"),
    ({"hours": None}, "hours", "required"),
    ({"holidays": ["2026-02-30"]}, "holidays[0]", "not a date"),
    ({"holidays": ["2026-12-25", "25.12.2026"]}, "holidays[1]", "not a date"),
    ({"holidays": ["20261225"]}, "holidays[0]", "not a date"),
    ({"holidays": ["2026-W52-5"]}, "holidays[0]", "not a date"),
    ({"holidays": ["2026-12-25", "2026-12-26", "2026-12-25"]}, "holidays[2]", "duplicates holidays[0]"),
    ({"holidays": "2026-12-25"}, "holidays", "list"),
    ({"holidays": False}, "holidays", "list"),
    ({"timezone": "UTC"}, "timezone", "not a calendar field"),
])
def test_bad_calendars_are_refused_naming_the_field(change, field, words):
    with pytest.raises(InvalidField) as caught:
        Calendar.parse({**GOOD, **change})
    assert caught.value.field == field and words in caught.value.message, caught.value


def test_a_calendar_keeps_its_intervals_and_holidays_in_order():
    calendar = Calendar.parse({"time_zone": "Asia/Shanghai", "hours": {"wed": [["13:00", "18:00"], ["09:00", "12:00"]]},
                               "holidays": ["2026-10-02", "2026-10-01"]})
    assert calendar.to_dict() == {
        "time_zone": "Asia/Shanghai",
        "hours": {"mon": [], "tue": [], "wed": [["09:00", "12:00"], ["13:00", "18:00"]], "thu": [], "fri": [],
                  "sat": [], "sun": []},
        "holidays": ["2026-10-01", "2026-10-02"]}
    assert calendar.weekly_hours == timedelta(hours=8)
    assert calendar.is_open(at("Asia/Shanghai", 2026, 10, 7, 9))
    assert not calendar.is_open(at("Asia/Shanghai", 2026, 10, 7, 12))
    assert not calendar.is_open(at("Asia/Shanghai", 2026, 9, 30, 8, 59))


def test_24x7_is_real_time_in_every_zone():
    every_hour = {day: [["00:00", "24:00"]] for day in DAYS}
    assert TWENTY_FOUR_SEVEN == Calendar.parse({"time_zone": "UTC", "hours": every_hour})
    assert TWENTY_FOUR_SEVEN.weekly_hours == timedelta(weeks=1)
    start = at("America/New_York", 2026, 3, 7, 12).astimezone(UTC)  # Python adds to a zoned time by wall clock
    for calendar in (TWENTY_FOUR_SEVEN, Calendar.always("America/New_York"), Calendar.always("Australia/Lord_Howe")):
        assert due(calendar, start, timedelta(days=40)) == start + timedelta(days=40)
        assert elapsed(calendar, start, start + timedelta(days=400)) == timedelta(days=400)


@pytest.mark.parametrize("call,field", [
    (lambda: due(BERLIN, datetime(2026, 3, 16, 9), timedelta(hours=1)), "start"),
    (lambda: due(BERLIN, at("Europe/Berlin", 2026, 3, 16), timedelta(hours=-1)), "duration"),
    (lambda: elapsed(BERLIN, at("Europe/Berlin", 2026, 3, 16), datetime(2026, 3, 17)), "end"),
    (lambda: elapsed(BERLIN, at("Europe/Berlin", 2026, 3, 16), at("Europe/Berlin", 2026, 3, 15)), "end"),
    (lambda: elapsed(BERLIN, at("Europe/Berlin", 1800, 3, 16), at("Europe/Berlin", 2026, 3, 15)), "start"),
    (lambda: elapsed(BERLIN, at("Europe/Berlin", 2000, 1, 1), at("Europe/Berlin", 2200, 1, 1)), "end"),
    (lambda: due(BERLIN, at("Europe/Berlin", 2026, 3, 16), timedelta(hours=1),
                 [(at("Europe/Berlin", 2026, 3, 16, 12), at("Europe/Berlin", 2026, 3, 16, 11))]), "pauses[0]"),
    (lambda: due(BERLIN, at("Europe/Berlin", 2026, 3, 16), timedelta(hours=1),
                 [(at("Europe/Berlin", 2026, 3, 16, 12), None), (datetime(2026, 3, 16), None)]), "pauses[1].from"),
])
def test_bad_times_are_refused_naming_the_field(call, field):
    with pytest.raises(InvalidField) as caught:
        call()
    assert caught.value.field == field


# --- durations -------------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("PT4H", timedelta(hours=4)), ("P1DT2H30M", timedelta(days=1, hours=2, minutes=30)), ("PT0S", timedelta(0)),
    ("PT90M", timedelta(minutes=90)), ("P2W", timedelta(weeks=2)), ("P3D", timedelta(days=3)),
    ("PT1.5S", timedelta(seconds=1.5)), ("PT0,25S", timedelta(seconds=0.25)),
    ("PT1H0M5S", timedelta(hours=1, seconds=5)),
    ("P366D", MAX_DURATION),
])
def test_iso_8601_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text,words", [
    ("P1Y", "years and months"), ("P1M", "years and months"), ("P1Y2DT3H", "years and months"),
    ("-PT1H", "negative"), ("PT1.5H", "only seconds"), ("P0.5D", "only seconds"),
    ("P367D", "longer than the maximum"), ("PT9000H", "longer than the maximum"),
    ("P", "not an ISO 8601"), ("PT", "not an ISO 8601"), ("P1DT", "not an ISO 8601"), ("PT1H1H", "not an ISO 8601"),
    ("4h", "not an ISO 8601"), ("pt4h", "not an ISO 8601"), ("P1W2D", "not an ISO 8601"), (" PT4H", "not an ISO 8601"),
    ("PT4H\n", "not an ISO 8601"), ("PT1.1234567S", "not an ISO 8601"), ("PT99999999999999H", "not an ISO 8601"),
    (14400, "ISO 8601 duration"), (None, "ISO 8601 duration"),
])
def test_bad_durations_are_refused_naming_the_field(text, words):
    with pytest.raises(InvalidField) as caught:
        parse_duration(text, "targets.urgent.resolution")
    assert caught.value.field == "targets.urgent.resolution" and words in caught.value.message, caught.value


@pytest.mark.parametrize("duration,text", [
    (timedelta(0), "PT0S"), (timedelta(hours=4), "PT4H"), (timedelta(days=1, hours=2, minutes=30), "PT26H30M"),
    (timedelta(seconds=61.5), "PT1M1.5S"), (timedelta(microseconds=1), "PT0.000001S"),
])
def test_durations_are_written_in_hours_minutes_and_seconds(duration, text):
    assert format_duration(duration) == text


# --- clocks ----------------------------------------------------------------------------------

def test_clocks():
    system = SystemClock()
    assert isinstance(system, Clock) and system.now().utcoffset() == timedelta(0)
    assert abs(system.now() - datetime.now(UTC)) < timedelta(seconds=5)
    manual = ManualClock(at("Europe/Berlin", 2026, 3, 13, 18))
    assert isinstance(manual, Clock)
    assert manual.now() == datetime(2026, 3, 13, 17, tzinfo=UTC) and manual.now().tzinfo is UTC
    assert manual.advance(timedelta(hours=2)) == manual.now() == datetime(2026, 3, 13, 19, tzinfo=UTC)
    manual.set(datetime(2026, 3, 16, 8, tzinfo=UTC))
    assert due(BERLIN, manual.now(), timedelta(hours=4)) == at("Europe/Berlin", 2026, 3, 16, 14)
    with pytest.raises(ValueError):
        ManualClock(datetime(2026, 3, 13))
