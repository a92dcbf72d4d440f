"""Timestamps as text <-> integer microseconds (state/times.py)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from state.times import SECOND, format_moment, format_timestamp, parse_timestamp

FIRST = -62_135_596_800 * SECOND  # 0001-01-01T00:00:00Z
LAST = 253_402_300_799_999_999  # 9999-12-31T23:59:59.999999Z


def reference(micros: int) -> str:
    """The documented spelling, by way of datetime: seconds, then milli- or microseconds if any."""
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S").rjust(19, "0")
    fraction = micros % SECOND
    if fraction == 0:
        return text + "Z"
    return f"{text}.{fraction // 1000:03d}Z" if fraction % 1000 == 0 else f"{text}.{fraction:06d}Z"


def test_moments_are_formatted_as_rfc_3339_and_read_back_exactly() -> None:
    rng = random.Random(3)
    moments = [0, -1, 1, 999, 1000, SECOND, FIRST, LAST, 1_795_000_000_000_000]
    for _ in range(5000):
        moment = rng.randrange(FIRST, LAST + 1)
        moments += [moment, moment // SECOND * SECOND, moment // 1000 * 1000]
    for moment in moments:
        text = format_timestamp(moment)
        assert text == format_moment(moment) == reference(moment)
        assert parse_timestamp(text) == moment


def test_the_formatted_range_is_that_of_the_calendar() -> None:
    with pytest.raises(ValueError):
        format_timestamp(LAST + 1)
    with pytest.raises(ValueError):
        format_timestamp(FIRST - 1)


@pytest.mark.parametrize(
    ("text", "micros"),
    [
        ("2026-11-22T10:00:00Z", 1_795_341_600 * SECOND),
        ("2026-11-22T10:00:00+00:00", 1_795_341_600 * SECOND),
        ("2026-11-22T18:00:00.5+08:00", 1_795_341_600 * SECOND + SECOND // 2),
        ("2026-11-22T05:00:00-05:00", 1_795_341_600 * SECOND),
    ],
)
def test_offsets_are_applied(text: str, micros: int) -> None:
    assert parse_timestamp(text) == micros


@pytest.mark.parametrize("text", ["2026-11-22T10:00:00", "2026-11-22", "yesterday", "2026-11-22T10:00:00Z" + " " * 60])
def test_times_without_an_offset_or_not_iso_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(text)
