"""A customer's tag history: intervals folded from stored steps, paged newest first."""

from __future__ import annotations

from state.codec import decode_step, encode_step, history_key, history_prefix
from state.history import Edge, Interval, Step, fold, page
from state.times import DAY

T0 = 1_795_000_000_000_000


def step(seq: int, from_tag: str | None, to_tag: str | None, at: int = T0, trigger: str = "event",
         expired: bool = False) -> Step:
    return Step("value", from_tag, to_tag, Edge(seq, at, "value.x", trigger, "v1", {"seq": seq}), expired)


def flapping(times: int) -> list[Step]:
    """``times`` stays in "vip", one a day."""
    return [s for n in range(times)
            for s in (step(2 * n + 1, None, "vip", T0 + n * DAY), step(2 * n + 2, "vip", None, T0 + n * DAY + 1))]


def test_an_interval_opens_on_entry_and_closes_on_exit_newest_first() -> None:
    history = fold([step(1, None, "standard"), step(2, "standard", "high_value"),
                    step(3, "high_value", "standard", T0 + DAY, "timer", expired=True)])
    assert [(i.tag, i.entered.seq, i.left.seq if i.left else None, i.expired) for i in history] == [
        ("standard", 3, None, False), ("high_value", 2, 3, True), ("standard", 1, 2, False),
    ]


def test_steps_fold_in_seq_order_whatever_order_they_are_read_in() -> None:
    steps = flapping(3)
    assert fold(reversed(steps)) == fold(steps)


def test_leaving_a_tag_whose_entry_is_no_longer_kept_closes_nothing() -> None:
    back = step(2002, None, "vip")
    assert fold([step(2001, "vip", None), back]) == [Interval("vip", "value", back.edge)]


def test_pages_run_newest_first_and_resume_after_the_cursor() -> None:
    history = fold(flapping(5))
    first, cursor = page(history, None, None, None, 2)
    assert [i.entered.seq for i in first] == [9, 7] and cursor == 7
    second, cursor = page(history, None, None, cursor, 2)
    third, cursor = page(history, None, None, cursor, 2)
    assert [i.entered.seq for i in second + third] == [5, 3, 1] and cursor is None
    assert page(history, "other", None, None, 10) == ([], None)


def test_a_step_survives_encoding_and_a_customers_keys_sort_by_seq_apart_from_others() -> None:
    original = step(7, "standard", "high_value", expired=True)
    assert decode_step(encode_step(original)) == original
    keys = sorted([history_key("c1", 300), history_key("c1", 2), history_key("c10", 1), history_key("c1", 1000)])
    assert keys[:3] == [history_key("c1", 2), history_key("c1", 300), history_key("c1", 1000)]
    assert all(k.startswith(history_prefix("c1")) for k in keys[:3]) and not keys[3].startswith(history_prefix("c1"))
