"""Event-time arithmetic: timestamps and durations as integer microseconds.

Every moment inside the engine is an ``int`` of microseconds since the Unix epoch (UTC), and
every duration an ``int`` of microseconds. Integers keep the catalog's boundaries exact
("within 30 days" is ``age < 30 * DAY``): floats would make "at the deadline" and "just
before it" compare unpredictably.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

SECOND = 1_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
YEAR = 365 * DAY
"""A year of the catalog language: 365 days exactly, the retention of per-event records. Not a
calendar year (a leap year has 366 days): durations are fixed lengths, so a deadline is exact."""

_UNITS = {"s": SECOND, "m": MINUTE, "h": HOUR, "d": DAY, "y": YEAR}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdy])$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

DEFAULT_TIMEZONE = "Asia/Shanghai"
"""Where calendar facts (a birthday, a weekday, an hour) are read when a catalog names no zone."""
DEFAULT_ZONE: tzinfo = ZoneInfo(DEFAULT_TIMEZONE)


def wall_clock() -> int:
    """The wall clock in microseconds: "now" for live workers (replay's "now" is event time)."""
    return time.time_ns() // 1000


def parse_duration(text: str) -> int:
    """``"30d"`` -> microseconds. Units: s, m, h, d, y (365 days). Raises ValueError on anything else."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"not a duration: {text!r} (expected a number and a unit s, m, h, d or y)")
    number, unit = match.groups()
    if "." in number:
        whole, frac = number.split(".")
        scale: int = 10 ** len(frac)
        return (int(whole) * scale + int(frac)) * _UNITS[unit] // scale
    return int(number) * _UNITS[unit]


def format_duration(micros: int, *, years: bool = True) -> str:
    """The shortest exact unit spelling: 2592000000000 -> ``"30d"``, 365 days -> ``"1y"``.

    ``years=False`` never uses ``y``: for names that must not change spelling (reason keys such as
    ``spend_365d`` were published before the unit existed).
    """
    for unit in ("y", "d", "h", "m", "s") if years else ("d", "h", "m", "s"):
        if micros % _UNITS[unit] == 0:
            return f"{micros // _UNITS[unit]}{unit}"
    return f"{micros / SECOND}s"


def format_span(micros: int) -> str:
    """A duration for people, its two largest units, truncated: ``37d 4h``, ``5h 3m``, ``12s``.

    Unlike ``format_duration`` it is not exact: it is for showing ages, not for writing catalogs.
    """
    if micros < 0:
        return "-" + format_span(-micros)
    parts: list[str] = []
    rest = micros
    for unit in ("d", "h", "m", "s"):
        count, rest = divmod(rest, _UNITS[unit])
        if count or parts:
            parts.append(f"{count}{unit}")
    shown = [part for part in parts[:2] if not part.startswith("0")]
    return " ".join(shown) or "0s"


def parse_timestamp(text: str) -> int:
    """ISO-8601 with an offset (``2026-11-22T10:00:00Z``) -> microseconds since the epoch.

    A timestamp without an offset is refused: event time must not depend on the server's zone.
    """
    if not isinstance(text, str) or len(text) > 64:
        raise ValueError("timestamp must be an ISO-8601 string")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"not an ISO-8601 timestamp: {text!r}") from exc
    # "Z" and "+00:00" parse to the UTC singleton: the usual case skips the offset check.
    if moment.tzinfo is not UTC and (moment.tzinfo is None or moment.utcoffset() is None):
        raise ValueError(f"timestamp has no UTC offset: {text!r}")
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * SECOND + delta.microseconds


def format_moment(micros: int) -> str:
    """Microseconds -> ``2026-11-22T10:00:00Z`` (fraction only when there is one).

    ``format_timestamp`` without its cache, for moments formatted once (a change's effective
    time: an event's time, a different one each), where the cache's upkeep is a third of the cost.
    """
    # Assembled from a cached date and precomputed clock strings: a third of the cost of
    # datetime.fromtimestamp(...).isoformat().
    seconds, fraction = divmod(micros, SECOND)
    day, second = divmod(seconds, 86_400)
    minute, second = divmod(second, 60)
    text = _date_text(day) + _CLOCK[minute] + _TWO_DIGITS[second]
    if fraction == 0:
        return text + "Z"
    if fraction % 1000 == 0:
        return f"{text}.{fraction // 1000:03d}Z"
    return f"{text}.{fraction:06d}Z"


format_timestamp = lru_cache(maxsize=1 << 14)(format_moment)
"""Microseconds -> ``2026-11-22T10:00:00Z``, cached: one batch formats its own "now" and its
deadlines many times over."""

_EPOCH_ORDINAL = _EPOCH.toordinal()
_CLOCK = [f"{minute // 60:02d}:{minute % 60:02d}:" for minute in range(24 * 60)]  # minute of the day
_TWO_DIGITS = [f"{number:02d}" for number in range(60)]


@lru_cache(maxsize=1 << 12)
def _date_text(day: int) -> str:
    """``2026-11-22T`` for a day number since the epoch (ValueError outside years 1-9999)."""
    return date.fromordinal(_EPOCH_ORDINAL + day).isoformat() + "T"


def days(micros: int) -> float:
    """A duration in (fractional) days, for human-readable reasons."""
    return micros / DAY


# -- the calendar in a time zone ---------------------------------------------------------------
# Moments stay UTC microseconds; only facts about the calendar (which day, which weekday, which
# hour) are read in a zone, the catalog's (``timezone:``).


def local_time(micros: int, zone: tzinfo) -> datetime:
    """The wall-clock date and time of a moment in ``zone``."""
    return (_EPOCH + timedelta(microseconds=micros)).astimezone(zone)  # UTC arithmetic, then the zone


def local_midnight(day: date, zone: tzinfo) -> int:
    """The moment ``day`` starts in ``zone``, in microseconds. Where a clock change skips
    midnight, the first moment of the day that exists."""
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    delta = start.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * SECOND + delta.microseconds
