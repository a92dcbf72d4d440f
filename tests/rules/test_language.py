"""What the condition language gained for analysts (issue 11, item 5): duration arithmetic and a
year unit, days to the next birthday, weekday and hour of a moment in the catalog's time zone,
logins over a window. Each is typed, and each that depends on time has its deadlines: a replay
(timers in event time) and a customer driven event by event agree."""

from __future__ import annotations

from datetime import date
from textwrap import dedent
from zoneinfo import ZoneInfo

import pytest

from rules.catalog import Catalog, CatalogError, parse_catalog
from rules.engine import EVENT, TIMER, next_deadline
from rules.explain import explain
from rules.expr import Context, ExprError, _Parser, compile_condition
from rules.facts import FACTS, FUNCTIONS, WINDOWS, next_birthday
from rules.vocabulary import to_text, vocabulary
from state.customer import MAX_LOGINS, CustomerState, apply_event
from state.events import LoginEvent, ProfileEvent
from state.times import DAY, HOUR, YEAR, format_duration, parse_duration, parse_timestamp
from tests.builders import Customer, day, login, profile, replay

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


# --------------------------------------------------------------------------------------------
# 2. days_to_birthday, in the catalog's time zone
# T0 is 2026-01-05 08:00 UTC: 16:00 in Shanghai, the same calendar day.

SHANGHAI_MIDNIGHT_JAN_7 = parse_timestamp("2026-01-06T16:00:00Z")


def birthday_state(birthday: str | None) -> CustomerState:
    return CustomerState("c1", birthday=birthday)


def test_a_birthday_in_three_days_reads_3_and_flips_at_local_midnight() -> None:
    state = birthday_state("01-08")
    assert value("days_to_birthday", state, day(0)) == 3
    assert value("days_to_birthday", state, SHANGHAI_MIDNIGHT_JAN_7 - US) == 2
    assert value("days_to_birthday", state, SHANGHAI_MIDNIGHT_JAN_7) == 1


def test_days_to_birthday_is_0_on_the_day_and_null_without_a_birthday() -> None:
    assert value("days_to_birthday", birthday_state("01-05"), day(0)) == 0
    assert value("days_to_birthday", birthday_state("01-04"), day(0)) == 364
    assert value("days_to_birthday", birthday_state(None), day(0)) is None
    assert value("days_to_birthday <= 7 or days_to_birthday > 7", birthday_state(None), day(0)) is False


def test_a_29_february_birthday_falls_on_1_march_in_a_year_without_one() -> None:
    assert next_birthday("02-29", date(2026, 1, 5)) == date(2026, 3, 1)
    assert next_birthday("02-29", date(2027, 3, 2)) == date(2028, 2, 29)
    assert value("days_to_birthday", birthday_state("02-29"), parse_timestamp("2026-03-01T00:00:00+08:00")) == 0


def test_the_day_is_the_day_of_the_catalogs_time_zone() -> None:
    late_evening_in_new_york = parse_timestamp("2026-01-08T02:00:00Z")  # 21:00 on the 7th there
    state = birthday_state("01-08")
    assert value("days_to_birthday", state, late_evening_in_new_york) == 0  # Shanghai: the 8th
    condition = compile_condition("days_to_birthday == 1", {}, ZoneInfo("America/New_York"))
    assert condition(Context(state, late_evening_in_new_york, {}))


def test_a_comparison_with_a_constant_needs_only_the_midnights_where_it_flips() -> None:
    probe = catalog("days_to_birthday <= 2")
    assert probe.calendar == {"days_to_birthday": frozenset({1, 2})}
    state = birthday_state("01-08")
    # Becomes 2 at Shanghai midnight of the 6th; then 1 (a deadline that changes nothing); then the
    # day after the birthday, when it jumps back to 364.
    assert next_deadline(probe, state, day(0)) == parse_timestamp("2026-01-05T16:00:00Z")
    assert next_deadline(probe, state, parse_timestamp("2026-01-06T16:00:00Z")) == parse_timestamp(
        "2026-01-08T16:00:00Z"
    )
    assert next_deadline(probe, birthday_state(None), day(0)) is None


def test_a_computed_use_of_days_to_birthday_needs_every_midnight() -> None:
    probe = catalog("days_to_birthday * 2 < 5")
    assert probe.calendar == {"days_to_birthday": None}
    state = birthday_state("06-01")
    assert next_deadline(probe, state, day(0)) == parse_timestamp("2026-01-05T16:00:00Z")


def test_birthday_week_is_entered_and_left_at_local_midnights_live_and_in_replay() -> None:
    probe = catalog("days_to_birthday <= 6")
    events = [profile(day(0), birthday="01-20"), login(day(30))]
    _, replayed = replay(*events, catalog=probe)
    live = Customer(*events, catalog=probe)
    expected = [
        ("hit", parse_timestamp("2026-01-14T00:00:00+08:00")),
        (None, parse_timestamp("2026-01-21T00:00:00+08:00")),
    ]
    assert [(c.to_tag, c.effective_at) for c in replayed] == expected
    assert [(c.to_tag, c.effective_at) for c in live.changes] == expected
    assert all(c.trigger == TIMER for c in live.changes)


def test_a_profile_event_moves_days_to_birthday() -> None:
    assert FACTS["days_to_birthday"].changed_by == (ProfileEvent,)
    probe = catalog("days_to_birthday == 0")
    live = Customer(profile(day(0), birthday="01-05"), catalog=probe)
    assert [(c.to_tag, c.trigger) for c in live.changes] == [("hit", EVENT)]


def test_the_catalog_time_zone_is_checked_with_file_and_line() -> None:
    assert catalog("days_to_birthday == 0").timezone == "Asia/Shanghai"
    assert catalog("days_to_birthday == 0", extra="timezone: Europe/Paris").timezone == "Europe/Paris"
    assert "probe.yaml:2: timezone: unknown time zone 'Mars/Olympus'" in problem(
        "days_to_birthday == 0", extra="timezone: Mars/Olympus"
    )


def test_a_catalog_in_utc_flips_at_utc_midnight() -> None:
    probe = catalog("days_to_birthday <= 2", extra="timezone: UTC")
    assert next_deadline(probe, birthday_state("01-08"), day(0)) == parse_timestamp("2026-01-06T00:00:00Z")


def test_an_explanation_shows_days_to_birthday() -> None:
    probe = catalog("days_to_birthday <= 6 and days_to_birthday in [0, 1, 2, 3]")
    explained = explain(probe, birthday_state("01-08"), day(0)).dimensions[0].tags[0]
    assert explained.holds
    assert {v.expression: v.value for v in explained.values}["days_to_birthday"] == "3"


# --------------------------------------------------------------------------------------------
# 3. weekday() and hour() of a moment, in the catalog's time zone
# 2026-01-10 is a Saturday.

SATURDAY_NIGHT_IN_SHANGHAI = parse_timestamp("2026-01-10T23:30:00+08:00")  # 15:30 UTC, still Saturday


def active_at(moment: int) -> CustomerState:
    return CustomerState("c1", last_activity_at=moment)


def test_weekday_is_1_for_monday_to_7_for_sunday_on_the_catalogs_wall_clock() -> None:
    assert value("weekday(last_activity)", active_at(SATURDAY_NIGHT_IN_SHANGHAI)) == 6
    assert value("weekday(last_activity)", active_at(SATURDAY_NIGHT_IN_SHANGHAI + HOUR)) == 7
    assert value("weekday(last_activity)", active_at(parse_timestamp("2026-01-12T00:00:00+08:00"))) == 1


def test_hour_is_0_to_23_on_the_catalogs_wall_clock() -> None:
    assert value("hour(last_activity)", active_at(SATURDAY_NIGHT_IN_SHANGHAI)) == 23
    assert value("hour(last_activity)", active_at(SATURDAY_NIGHT_IN_SHANGHAI + HOUR)) == 0
    utc = compile_condition("hour(last_activity) == 15", {}, ZoneInfo("UTC"))
    assert utc(Context(active_at(SATURDAY_NIGHT_IN_SHANGHAI), day(0), {}))


def test_a_weekend_shopper_is_one_whose_last_activity_fell_on_a_weekend() -> None:
    for source in ("weekday(last_activity) in [6, 7]", "weekday(last_activity) >= 6"):
        assert value(source, active_at(SATURDAY_NIGHT_IN_SHANGHAI)) is True
        assert value(source, active_at(SATURDAY_NIGHT_IN_SHANGHAI - DAY)) is False
        assert value(source, CustomerState("c1")) is False  # no activity: null


def test_weekday_and_hour_need_no_deadline() -> None:
    probe = catalog("weekday(last_activity) in [6, 7] and hour(last_activity) >= 20")
    assert not probe.ages and not probe.windows and not probe.calendar
    live = Customer(login(SATURDAY_NIGHT_IN_SHANGHAI), catalog=probe)
    assert live.state.next_deadline is None
    assert [(c.to_tag, c.trigger) for c in live.changes] == [("hit", EVENT)]
    live.send(login(SATURDAY_NIGHT_IN_SHANGHAI + 2 * DAY))  # Monday
    _, replayed = replay(login(SATURDAY_NIGHT_IN_SHANGHAI), login(SATURDAY_NIGHT_IN_SHANGHAI + 2 * DAY),
                         catalog=probe)
    assert [(c.to_tag, c.effective_at) for c in live.changes] == [(c.to_tag, c.effective_at) for c in replayed]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("weekday(owner_rep) == 6", "weekday() takes a time, such as weekday(last_activity)"),
        ("hour(spend(30d)) > 3", "hour() takes a time, such as hour(last_activity)"),
        ('weekday(last_activity) in ["sat"]', "a number and a list of numbers"),
        ('weekday(last_activity) in [6, "7"]', "a list holds strings or numbers, not both"),
        ("weekend(last_activity)", "unknown function 'weekend' (did you mean 'weekday'?)"),
    ],
)
def test_weekday_and_hour_are_typed(source: str, message: str) -> None:
    with pytest.raises(ExprError) as caught:
        compile_condition(source, {})
    assert message in caught.value.message


def test_a_bad_weekday_use_is_reported_with_file_and_line() -> None:
    assert "probe.yaml:11: in condition: weekday() takes a time" in problem("weekday(birthday) == 1")


def test_an_explanation_shows_the_weekday() -> None:
    probe = catalog("weekday(last_activity) >= 6")
    explained = explain(probe, active_at(SATURDAY_NIGHT_IN_SHANGHAI), day(10)).dimensions[0].tags[0]
    assert explained.holds
    assert {v.expression: v.value for v in explained.values}["weekday(last_activity)"] == "6"


# --------------------------------------------------------------------------------------------
# 4. logins over a window, optionally through one channel


def logged_in(*events: LoginEvent, now: int) -> CustomerState:
    state = CustomerState("c1")
    for event in events:
        apply_event(state, event, now)
    return state


def test_logins_counts_the_logins_younger_than_the_window() -> None:
    state = logged_in(login(day(0)), login(day(10)), login(day(25)), now=day(25))
    assert value("logins(30d)", state, day(25)) == 3
    assert value("logins(30d)", state, day(30)) == 2  # the one of day 0 is exactly 30 days old: out
    assert value("logins(1y)", state, day(30)) == 3


def test_logins_through_one_channel_count_only_that_channel() -> None:
    state = logged_in(login(day(1), channel="app"), login(day(2), channel="web"), login(day(3), channel=None),
                      login(day(4), channel="app"), now=day(5))
    assert value('logins(30d, "app")', state, day(5)) == 2
    assert value('logins(30d, "web")', state, day(5)) == 1
    assert value('logins(30d, "mini_program")', state, day(5)) == 0
    assert value("logins(30d)", state, day(5)) == 4


def test_a_redelivered_login_is_counted_once_even_long_after() -> None:
    first = login(day(0), event_id="login-1")
    state = logged_in(first, *(login(day(0) + n) for n in range(1, 40)), first, now=day(1))
    assert value("logins(30d)", state, day(1)) == 40


def test_logins_are_kept_365_days_and_at_most_the_newest_thousand() -> None:
    state = logged_in(login(day(0)), login(day(100)), now=day(100))
    apply_event(state, login(day(366)), day(366))
    assert [entry.at for entry in state.logins] == [day(100), day(366)]
    many = logged_in(*(login(day(0) + n * HOUR) for n in range(MAX_LOGINS + 5)), now=day(50))
    assert len(many.logins) == MAX_LOGINS
    assert many.logins[0].at == day(0) + 5 * HOUR  # the oldest went first


def test_frequent_user_leaves_at_the_moment_a_login_leaves_the_window_live_and_in_replay() -> None:
    probe = catalog("logins(7d) >= 3")
    events = [login(day(0)), login(day(1)), login(day(2)), login(day(20))]
    live = Customer(*events, catalog=probe)
    _, replayed = replay(*events, catalog=probe)
    expected = [("hit", day(2), EVENT), (None, day(7), TIMER)]
    assert [(c.to_tag, c.effective_at, c.trigger) for c in live.changes] == expected
    assert [(c.to_tag, c.effective_at, c.trigger) for c in replayed] == expected
    assert live.changes[0].reason == {"logins_7d": 3}


def test_a_channel_window_flips_live_and_in_replay_alike() -> None:
    probe = catalog('logins(7d, "app") >= 2 and logins(30d) >= 3')
    events = [login(day(0), channel="web"), login(day(1), channel="app"), login(day(3), channel="app"),
              login(day(40), channel="web")]
    live = Customer(*events, catalog=probe)
    _, replayed = replay(*events, catalog=probe)
    expected = [("hit", day(3)), (None, day(8))]
    assert [(c.to_tag, c.effective_at) for c in live.changes] == expected
    assert [(c.to_tag, c.effective_at) for c in replayed] == expected
    assert live.changes[0].reason == {"logins_7d_app": 2, "logins_30d": 3}


def test_logins_move_with_login_events_only() -> None:
    assert WINDOWS["logins"].changed_by == (LoginEvent,)
    probe = catalog("logins(30d) >= 1")
    assert probe.moved_by[LoginEvent] == {"probe"}
    assert probe.moved_by[ProfileEvent] == frozenset()


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("logins(30) > 1", "logins() takes a window length such as 90d"),
        ("logins(30d, app) > 1", "unknown name 'app'"),
        ("logins(30d, 3) > 1", 'the channel is a string such as "app"'),
        ('logins(30d, "") > 1', 'the channel is a string such as "app"'),
        ('spend(30d, "app") > 1', "spend() takes one argument"),
        ('age(last_activity, "app") > 1d', "age() takes one argument"),
        ("logins(400d) > 1", "a window must be longer than 0 and at most 365d"),
    ],
)
def test_logins_is_typed(source: str, message: str) -> None:
    with pytest.raises(ExprError) as caught:
        compile_condition(source, {})
    assert message in caught.value.message


def test_an_explanation_shows_the_login_counts() -> None:
    probe = catalog('logins(30d) >= 2 and logins(30d, "app") >= 1')
    state = logged_in(login(day(1), channel="app"), login(day(2), channel="web"), now=day(2))
    explained = explain(probe, state, day(3)).dimensions[0].tags[0]
    assert explained.holds
    shown = {v.expression: v.value for v in explained.values}
    assert shown["logins(30d)"] == "2" and shown['logins(30d, "app")'] == "1"


# --------------------------------------------------------------------------------------------
# 5. the vocabulary, from one source of truth


def test_every_name_the_checker_accepts_is_in_the_vocabulary_and_nothing_else() -> None:
    written = {word.written.split("(")[0] for word in vocabulary()}
    assert written == {*FACTS, *WINDOWS, *FUNCTIONS}
    for word in vocabulary():
        if word.kind == "fact":
            compile_condition(f"{word.written} == null", {})  # each fact is a name the checker knows


def test_the_vocabulary_text_groups_facts_windows_and_functions() -> None:
    text = to_text(vocabulary())
    assert text.index("Facts:") < text.index("Window functions") < text.index("Functions:")
    assert "hour(t)" in text and "number" in text
