"""Audiences over time: holders at each bucket end follow from the holders now and later moves."""

from __future__ import annotations

from state.audience import RETENTION, Audience, Point, add_series
from state.codec import audience_day_of, audience_key, decode_audience_day, encode_audience_day
from state.times import DAY, HOUR

T0 = 20_000 * DAY  # a day boundary


def test_holders_at_each_bucket_end_count_the_changes_before_it() -> None:
    audience = Audience()
    audience.move(None, "vip", T0 + 1 * HOUR)
    audience.move(None, "vip", T0 + 1 * HOUR + 5)
    audience.move("vip", None, T0 + 3 * HOUR)
    audience.move(None, "vip", T0 + 3 * HOUR + 1)  # entered and left in the same hour: both count
    audience.move("vip", None, T0 + 3 * HOUR + 2)
    assert audience.holders["vip"] == 1
    assert audience.series("vip", T0, T0 + 4 * HOUR, HOUR) == [
        Point(T0 + HOUR, 0, 0, 0), Point(T0 + 2 * HOUR, 2, 2, 0),
        Point(T0 + 3 * HOUR, 2, 0, 0), Point(T0 + 4 * HOUR, 1, 1, 2),
    ]


def test_a_late_change_counts_in_the_hour_it_took_effect() -> None:
    audience = Audience()
    audience.move(None, "vip", T0 + 30 * HOUR)
    audience.move(None, "vip", T0 + 2 * HOUR)  # arrived later, happened earlier
    assert [p.holders for p in audience.series("vip", T0, T0 + 2 * DAY, DAY)] == [1, 2]


def test_buckets_before_the_window_asked_for_need_no_starting_count() -> None:
    audience = Audience()
    for n in range(10):
        audience.move(None, "vip", T0 + n * DAY)
    assert [p.holders for p in audience.series("vip", T0 + 8 * DAY, T0 + 10 * DAY, DAY)] == [9, 10]


def test_days_older_than_the_retention_are_dropped_and_the_rest_stays_exact() -> None:
    audience = Audience()
    audience.move(None, "vip", T0)
    audience.move(None, "vip", T0 + RETENTION)
    assert audience.prune(T0 + RETENTION + DAY) == [T0 // DAY]
    assert [p.holders for p in audience.series("vip", T0 + RETENTION, T0 + RETENTION + DAY, DAY)] == [2]


def test_only_changed_days_are_handed_out_for_storage_and_they_round_trip() -> None:
    audience = Audience()
    audience.move(None, "vip", T0 + 5 * HOUR)
    dirty = audience.take_dirty()
    assert list(dirty) == [T0 // DAY] and audience.take_dirty() == {}
    restored = Audience()
    restored.load_day(T0 // DAY, decode_audience_day(encode_audience_day(dirty[T0 // DAY])))
    restored.holders["vip"] = 1
    assert restored.series("vip", T0, T0 + DAY, DAY) == audience.series("vip", T0, T0 + DAY, DAY)
    assert audience_day_of(audience_key(3, T0 // DAY)) == (3, T0 // DAY) and audience_day_of(b"c1") is None


def test_series_of_two_partitions_add_up() -> None:
    a, b = Audience(), Audience()
    a.move(None, "vip", T0)
    b.move(None, "vip", T0 + DAY)
    total = add_series(a.series("vip", T0, T0 + 2 * DAY, DAY), b.series("vip", T0, T0 + 2 * DAY, DAY))
    assert [(p.holders, p.entered) for p in total] == [(1, 1), (2, 1)]
