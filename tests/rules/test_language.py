"""What the condition language gained for analysts (issue 11, item 5): duration arithmetic and a
year unit, days to the next birthday, weekday and hour of a moment in the catalog's time zone,
logins over a window. Each is typed, and each that depends on time has its deadlines: a replay
(timers in event time) and a customer driven event by event agree."""

from __future__ import annotations

from textwrap import dedent

import pytest
from builders import Customer, day, login, replay

from rules.catalog import Catalog, CatalogError, parse_catalog
from rules.expr import Context, ExprError, _Parser, compile_condition
from state.customer import CustomerState
from state.times import DAY, HOUR, YEAR, format_duration, parse_duration

US = 1


def catalog(when: str, *, extra: str = "") -> Catalog:
    """A one-tag catalog whose tag ``hit`` holds when ``when`` does."""
    text = dedent(f"""\
        catalog: language
        {extra}
        dimensions:
          probe:
            exclusive: true
            name: {{en: Probe}}
            tags:
              hit:
                name: {{en: Hit}}
                definition: {{en: The condition under test holds.}}
                when: '{when}'
        """)
    return parse_catalog(text.encode(), "probe.yaml")


def problem(when: str, *, extra: str = "") -> str:
    with pytest.raises(CatalogError) as caught:
        catalog(when, extra=extra)
    return str(caught.value)


def value(source: str, state: CustomerState | None = None, now: int = 0) -> object:
    """The value of an expression of any type (a condition must be true or false: parsed below it)."""
    node = _Parser(source, {}).parse_or()
    return node.fn(Context(state or CustomerState("c1"), now, {}))


# --------------------------------------------------------------------------------------------
# 1. duration arithmetic and the year unit


def test_a_year_is_365_days_in_the_language_and_in_catalog_durations() -> None:
    assert parse_duration("1y") == 365 * DAY == YEAR
    assert parse_duration("1.5y") == 547 * DAY + 12 * HOUR
    assert format_duration(2 * YEAR) == "2y"
    assert format_duration(400 * DAY) == "400d"
    assert compile_condition("spend(1y) > 0", {}).windows == {("spend", YEAR)}


def test_reason_keys_keep_their_days_spelling_for_a_one_year_window() -> None:
    condition = compile_condition("spend(1y) > 0", {})
    assert [key for key, _, _ in condition.leaves] == ["spend_365d"]


@pytest.mark.parametrize(
    ("source", "micros"),
    [
        ("2 * 7d", 14 * DAY),
        ("7d * 2", 14 * DAY),
        ("7d + 12h", 7 * DAY + 12 * HOUR),
        ("1y - 30d", 335 * DAY),
        ("30d / 2", 15 * DAY),
        ("1d / 7", DAY // 7),  # rounded down to the microsecond
        ("-(2 * 7d)", -14 * DAY),
        ("1.5 * 1d", 36 * HOUR),
    ],
)
def test_duration_arithmetic_of_literals_is_a_constant_duration(source: str, micros: int) -> None:
    assert value(source) == micros


def test_a_duration_divided_by_a_duration_is_a_number() -> None:
    assert value("30d / 7d > 4") is True
    assert value("30d / 7d < 5") is True


def test_age_compared_with_duration_arithmetic_keeps_its_deadline() -> None:
    condition = compile_condition("age(last_activity) >= 2 * 7d and age(last_activity) < 1y - 12h", {})
    assert condition.ages == {("last_activity", 14 * DAY), ("last_activity", YEAR - 12 * HOUR)}


def test_two_weeks_of_silence_flips_at_14_days_live_and_in_replay() -> None:
    probe = catalog("age(last_activity) >= 2 * 7d")
    live = Customer(login(day(0)), catalog=probe)
    assert live.state.next_deadline == day(14)
    _, changes = replay(login(day(0)), until=day(20), catalog=probe)
    live.send(login(day(20)))
    assert [(c.to_tag, c.effective_at) for c in changes] == [("hit", day(14))]
    assert [(c.to_tag, c.effective_at) for c in live.changes] == [("hit", day(14)), (None, day(20))]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("age(last_activity) >= age(first_paid_order)", "constant duration such as 30d or 2 * 7d"),
        ("age(last_activity) >= paid_orders_total * 1d", "constant duration such as 30d or 2 * 7d"),
        ("age(last_activity) >= 7d / 0", "division by zero"),
        ("7d * 7d > 1d", "cannot compute duration * duration"),
        ("2 / 7d > 1", "cannot compute number / duration"),
        ("7d + 1 > 1d", "cannot compute duration + number"),
    ],
)
def test_durations_that_make_no_sense_are_refused(source: str, message: str) -> None:
    with pytest.raises(ExprError) as caught:
        compile_condition(source, {})
    assert message in caught.value.message


def test_a_non_constant_duration_next_to_age_is_reported_with_file_and_line() -> None:
    assert "probe.yaml:11: in condition: age(...) can only be compared with a constant duration" in problem(
        "age(last_activity) > age(registered_at)"
    )
