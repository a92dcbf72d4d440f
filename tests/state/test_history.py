"""A customer's tag history: intervals opened and closed by changes, kept bounded, paged newest first."""

from __future__ import annotations

from state.codec import decode_history, encode_history
from state.history import KEEP_FOR, KEEP_INTERVALS, MAX_INTERVALS, Edge, Interval, enter, leave, page, prune
from state.times import DAY

T0 = 1_795_000_000_000_000


def edge(seq: int, at: int = T0, trigger: str = "event", reason: dict[str, object] | None = None) -> Edge:
    return Edge(seq, at, "value.high_value", trigger, "v1", reason or {})


def flapping(times: int, every: int = DAY) -> list[Interval]:
    """A history of ``times`` closed stays in "vip", one per ``every``, oldest first."""
    history: list[Interval] = []
    for n in range(times):
        enter(history, "vip", "value", edge(2 * n + 1, T0 + n * every))
        leave(history, "vip", edge(2 * n + 2, T0 + n * every + every // 2), expired=False)
    return history


def test_an_interval_opens_on_entry_and_closes_on_exit_newest_first() -> None:
    history: list[Interval] = []
    enter(history, "high_value", "value", edge(1))
    enter(history, "active", "activity", edge(2))
    leave(history, "high_value", edge(3, T0 + DAY, "timer", {"expired": True}), expired=True)
    assert [(i.tag, i.left.seq if i.left else None, i.expired) for i in history] == [
        ("active", None, False), ("high_value", 3, True),
    ]


def test_leaving_a_tag_whose_entry_is_not_in_the_history_changes_nothing() -> None:
    history: list[Interval] = []
    leave(history, "vip", edge(5), expired=False)
    assert history == []


def test_the_newest_intervals_are_kept_beyond_the_year() -> None:
    history = flapping(KEEP_INTERVALS + 50, every=10 * DAY)  # 1,500 days
    prune(history, T0 + 2000 * DAY)
    assert len(history) == KEEP_INTERVALS and history[0].entered.seq == 2 * (KEEP_INTERVALS + 50) - 1


def test_a_year_of_intervals_is_kept_beyond_the_newest_hundred_up_to_the_cap() -> None:
    history = flapping(300)  # one a day: all within the year
    prune(history, T0 + 300 * DAY)
    assert len(history) == 300
    history = flapping(MAX_INTERVALS + 10, every=KEEP_FOR // (2 * MAX_INTERVALS))
    prune(history, history[0].entered.at)
    assert len(history) == MAX_INTERVALS


def test_pages_run_newest_first_and_resume_after_the_cursor() -> None:
    history = flapping(5)
    first, cursor = page(history, None, None, None, 2)
    assert [i.entered.seq for i in first] == [9, 7] and cursor == 7
    second, cursor = page(history, None, None, cursor, 2)
    third, cursor = page(history, None, None, cursor, 2)
    assert [i.entered.seq for i in second + third] == [5, 3, 1] and cursor is None
    assert page(history, "other", None, None, 10) == ([], None)


def test_a_history_survives_encoding() -> None:
    history = flapping(2)
    enter(history, "active", "activity", edge(9, reason={"days_since_last_activity": 1.5}))
    assert decode_history(encode_history(history)) == history
    assert decode_history(None) == []
