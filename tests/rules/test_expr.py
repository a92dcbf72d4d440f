"""The condition language (rules/expr.py): parsing, types, null semantics, exact numbers, errors."""

from __future__ import annotations

from decimal import Decimal

import pytest

from rules.expr import Condition, Context, Dimension, Evaluated, ExprError, compile_condition, tokenize
from state.customer import CustomerState, LatestFollowup, Order
from state.times import DAY
from tests.builders import day

DIMENSIONS = {
    "lifecycle": Dimension(True, frozenset({"prospect", "new", "growing", "mature"})),
    "intent": Dimension(True, frozenset({"early", "high_intent", "won", "lost_deal"})),
    "behavior": Dimension(False, frozenset({"price_sensitive", "new_product_follower"})),
}
NOW = day(100)


def compile_(source: str) -> Condition:
    return compile_condition(source, DIMENSIONS)


def holds(source: str, state: CustomerState | None = None, tags: dict[str, object] | None = None) -> bool:
    condition = compile_(source)
    return condition(Context(state or CustomerState("c1"), NOW, tags or {}))


def error(source: str) -> ExprError:
    with pytest.raises(ExprError) as caught:
        compile_(source)
    return caught.value


def customer() -> CustomerState:
    state = CustomerState("c1", last_activity_at=day(60), owner_rep="rep1")
    state.orders = [
        Order(1, day(10), Decimal("1000.10"), discounted=True, new_product=False),
        Order(2, day(50), Decimal("2000.20"), discounted=False, new_product=True),
        Order(3, day(90), Decimal("99.70"), discounted=True, new_product=False, refunded=True),
    ]
    state.latest_followup = LatestFollowup(day(99), "quoted", "rep2")
    return state


# --------------------------------------------------------------------------------------------
# parsing and evaluation


def test_tokens_carry_their_offsets() -> None:
    tokens = tokenize('age(last_activity) >= 30d and x == "a b"')
    assert [(t.kind, t.text, t.offset) for t in tokens] == [
        ("name", "age", 0),
        ("op", "(", 3),
        ("name", "last_activity", 4),
        ("op", ")", 17),
        ("op", ">=", 19),
        ("duration", "30d", 22),
        ("keyword", "and", 26),
        ("name", "x", 30),
        ("op", "==", 32),
        ("string", '"a b"', 35),
        ("end", "", 40),
    ]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("true or false and false", True),  # and binds tighter than or
        ("(true or false) and false", False),
        ("not false and false", False),  # not binds tighter than and
        ("not (false and false)", True),
        ("not true or true", True),
        ("not not true", True),
        ("false or false or true", True),
        ("1 + 2 * 3 == 7", True),  # * before +
        ("(1 + 2) * 3 == 9", True),
        ("10 - 4 - 3 == 3", True),  # left-associative
        ("-2 < 0", True),
        ("- -2 == 2", True),
        ("10 / 4 == 2.5", True),
        ("1 != 2", True),
        ("2 <= 2 and 2 >= 2 and not 2 < 2 and not 2 > 2", True),
        ("1.5d == 36h", True),
        ("1d + 12h == 36h", True),
        ("1m == 60s", True),
        ('"a" == "a"', True),
        ("'single' == \"single\"", True),
        ('"b" in ["a", "b"]', True),
        ('"c" not in ["a", "b"]', True),
        ('"a" in []', False),
    ],
)
def test_literal_expressions(source: str, expected: bool) -> None:
    assert holds(source) is expected


def test_decimal_arithmetic_is_exact() -> None:
    assert holds("0.6 * 5 == 3")
    assert holds("0.1 + 0.2 == 0.3")
    assert holds("3 >= 0.6 * 5")
    assert not holds("2.99 >= 0.6 * 5")


def test_division_by_zero_is_unknown() -> None:
    assert not holds("1 / 0 > 0")
    assert not holds("1 / 0 <= 0")


def test_facts_and_windows_read_the_customer() -> None:
    state = customer()
    assert holds('owner_rep == "rep1"', state)
    assert holds('latest_stage == "quoted" and latest_rep == "rep2"', state)
    assert holds("paid_orders_total == 2", state)  # the refunded order does not count
    assert holds("spend(180d) == 3000.30", state)
    assert holds("spend(60d) == 2000.20", state)  # the day-10 order is 90 days old
    assert holds("paid_orders(91d) == 2 and paid_orders(90d) == 1", state)
    assert holds("discounted_orders(365d) == 1", state)
    assert holds("new_product_orders(365d) == 1", state)
    assert holds("age(last_activity) >= 40d and age(last_activity) < 40.000001d", state)
    assert holds("age(first_paid_order) >= 90d", state)
    assert not holds("has_phone", state)
    assert holds("not has_email", state)


def test_a_window_counts_elements_younger_than_its_length() -> None:
    state = CustomerState("c1")
    state.orders = [Order(1, NOW - 90 * DAY, Decimal(5), False, False)]
    assert holds("paid_orders(90d) == 0", state)
    state.orders[0].at += 1
    assert holds("paid_orders(90d) == 1", state)


def test_dimensions_read_the_tags_decided_so_far() -> None:
    tags: dict[str, object] = {"lifecycle": "mature", "behavior": frozenset({"price_sensitive"})}
    assert holds('lifecycle == "mature"', tags=tags)
    assert holds('lifecycle in ["new", "mature"]', tags=tags)
    assert holds('"price_sensitive" in behavior', tags=tags)
    assert holds('"new_product_follower" not in behavior', tags=tags)
    assert holds("intent == null", tags=tags)


# --------------------------------------------------------------------------------------------
# null semantics


def test_a_missing_time_makes_every_ordering_comparison_false() -> None:
    empty = CustomerState("c1")
    for op in ("<", "<=", ">", ">="):
        assert not holds(f"age(last_activity) {op} 30d", empty)
        assert not holds(f"age(first_paid_order) {op} 0d", empty)
    assert holds("not (age(last_activity) < 30d)", empty)
    assert holds("last_activity == null", empty)
    assert not holds("last_activity != null", empty)


def test_a_missing_string_is_in_no_list_and_equal_to_no_string() -> None:
    empty = CustomerState("c1")
    assert not holds('latest_stage in ["won", "lost"]', empty)
    assert not holds('latest_stage == "won"', empty)
    assert holds('latest_stage != "won"', empty)
    assert holds("latest_stage == null", empty)


def test_a_missing_tag_set_contains_nothing() -> None:
    assert not holds('"price_sensitive" in behavior')


# --------------------------------------------------------------------------------------------
# what a condition records: ages, windows, dimensions, reasons


def test_a_condition_records_its_ages_windows_and_dimensions() -> None:
    condition = compile_(
        'lifecycle == "mature" and age(last_activity) >= 90d and spend(180d) > 5000 or followups(90d) > 5'
    )
    assert condition.ages == {("last_activity", 90 * DAY)}
    assert condition.windows == {("spend", 180 * DAY), ("followups", 90 * DAY)}
    assert condition.dimensions == {"lifecycle"}


def test_reason_holds_the_values_looked_at() -> None:
    condition = compile_("age(last_activity) >= 30d and spend(180d) > 0 and owner_rep != null")
    reason = condition.reason(Context(customer(), NOW, {}))
    assert reason == {"days_since_last_activity": 40.0, "spend_180d": 3000.3, "owner_rep": "rep1"}


def test_reason_keeps_a_fact_that_is_also_read_by_age() -> None:
    condition = compile_("last_activity != null and spend(90d) >= 0 and age(last_activity) < 30d")
    reason = condition.reason(Context(customer(), NOW, {}))
    assert reason == {
        "last_activity": "2026-03-06T08:00:00Z",
        "spend_90d": 2000.2,
        "days_since_last_activity": 40.0,
    }


def test_age_of_a_parenthesised_fact() -> None:
    condition = compile_("age((last_activity)) >= 30d")
    assert condition.ages == {("last_activity", 30 * DAY)}
    assert condition(Context(customer(), NOW, {}))


def test_reason_of_a_missing_value_is_null() -> None:
    condition = compile_("age(last_activity) >= 30d")
    assert condition.reason(Context(CustomerState("c1"), NOW, {})) == {"days_since_last_activity": None}


# --------------------------------------------------------------------------------------------
# evaluated(): every sub-expression as written, with its value (what explanations show)


def evaluated(source: str, state: CustomerState | None = None, tags: dict[str, object] | None = None) -> Evaluated:
    return compile_(source).evaluated(Context(state or customer(), NOW, tags or {}))


def test_evaluated_shows_each_sub_expression_as_written_with_its_value() -> None:
    root = evaluated("spend(180d)  >  5000 and age( last_activity ) < 30d")
    assert [(node.text, node.value) for node in root.walk() if not node.is_literal] == [
        ("spend(180d)", Decimal("3000.30")),
        ("spend(180d)  >  5000", False),
        ("last_activity", day(60)),
        ("age( last_activity )", 40 * DAY),
        ("age( last_activity ) < 30d", False),
        ("spend(180d)  >  5000 and age( last_activity ) < 30d", False),
    ]


def test_evaluated_flattens_and_chains_but_keeps_parentheses() -> None:
    root = evaluated("paid_orders_total > 0 and (has_phone or has_email) and owner_rep == \"rep1\" and true")
    assert root.op == "and"
    assert [child.text for child in root.children] == [
        "paid_orders_total > 0", "(has_phone or has_email)", 'owner_rep == "rep1"', "true"]
    assert [child.value for child in root.children] == [True, False, True, True]


def test_evaluated_reaches_what_the_engine_short_circuits() -> None:
    # The engine stops at the first false operand of "and"; an explanation needs the others too.
    root = evaluated("has_phone and spend(90d) > 1 and latest_stage == \"quoted\"")
    assert root.value is False
    assert [child.value for child in root.children] == [False, True, True]


def test_evaluated_agrees_with_the_engine_on_every_condition() -> None:
    sources = [
        'lifecycle == "mature" and age(last_activity) >= 90d',
        "not (spend(90d) - spend(30d) >= 1000) or -paid_orders(90d) < -1",
        '"price_sensitive" in behavior and spend(180d) / paid_orders(180d) > 1000',
        'latest_stage not in ["won", "lost"] and 1 / 0 == null',
    ]
    tags: dict[str, object] = {"lifecycle": "mature", "behavior": frozenset({"price_sensitive"})}
    for source in sources:
        for state in (customer(), CustomerState("c2")):
            ctx = Context(state, NOW, tags)
            assert (compile_(source).evaluated(ctx).value is True) == compile_(source)(ctx), source


def test_evaluated_marks_money() -> None:
    root = evaluated("spend(90d) / paid_orders(90d) > spend(90d) / spend(180d) + paid_orders(30d)")
    money = {node.text: node.money for node in root.walk() if not node.is_literal}
    assert money == {
        "spend(90d)": True, "paid_orders(90d)": False, "spend(90d) / paid_orders(90d)": True,
        "spend(180d)": True, "spend(90d) / spend(180d)": False, "paid_orders(30d)": False,
        "spend(90d) / spend(180d) + paid_orders(30d)": False,
        "spend(90d) / paid_orders(90d) > spend(90d) / spend(180d) + paid_orders(30d)": False,
    }


# --------------------------------------------------------------------------------------------
# errors, with the offset of the problem


@pytest.mark.parametrize(
    ("source", "message", "offset"),
    [
        (
            "age(last_activty) < 30d",
            "unknown name 'last_activty' (did you mean 'last_activity'?)",
            4,
        ),
        ("paid_orders_totl > 1", "unknown name 'paid_orders_totl' (did you mean 'paid_orders_total'?)", 0),
        ('lifecycel == "new"', "unknown name 'lifecycel' (did you mean 'lifecycle'?)", 0),
        ("zzz == 1", "unknown name 'zzz'", 0),
        ("spnd(90d) > 1", "unknown function 'spnd' (did you mean 'spend'?)", 0),
        ("true and frobnicate(1d) > 1", "unknown function 'frobnicate'", 9),
        ('latest_stage > "a"', "cannot compare string > string", 13),
        ("latest_stage == 3", "cannot compare string == number", 13),
        ("spend(90d) > 1d", "cannot compare number > duration", 11),
        ("paid_orders_total and true", "'and' needs true/false values, not a number", 0),
        ("true or owner_rep", "'or' needs true/false values, not a string", 8),
        ("not spend(90d)", "'not' needs true/false values, not a number", 4),
        ("spend(90d)", "a condition must be true or false, this is a number", 0),
        ("spend(90d) + 1d > 0", "cannot compute number + duration", 11),
        ("1d * 1d > 1d", "cannot compute duration * duration", 3),
        ('-"a" == "a"', "cannot negate a string", 0),
        (
            '"a" in "a"',
            "'in' needs a string on the left and a list of strings or a non-exclusive dimension "
            "on the right, or a number and a list of numbers, not string in string",
            4,
        ),
        ("age(last_activity) > 30", "cannot compare duration > number", 19),
        (
            "age(last_activity) < age(first_paid_order)",
            "age(...) can only be compared with a constant duration such as 30d or 2 * 7d, "
            "not with one that depends on the customer",
            21,
        ),
        ("age(last_activity) == 30d", "age(...) can only be compared with <, <=, > or >=", 19),
        ("age(last_activity) + 1d > 30d", "age(...) can only be compared with a duration such as 30d", 19),
        ("age(owner_rep) > 1d", "age() takes a time fact, such as age(last_activity)", 4),
        ("age(3) > 1d", "age() takes a time fact, such as age(last_activity)", 4),
        ("spend(366d) > 0", "a window must be longer than 0 and at most 365d", 6),
        ("followups(0d) > 0", "a window must be longer than 0 and at most 365d", 10),
        ("spend(paid_orders_total) > 0", "spend() takes a window length such as 90d", 6),
        (
            'lifecycle == "matur"',
            "unknown tag 'matur' in dimension 'lifecycle' (it has: growing, mature, new, prospect)",
            13,
        ),
        (
            'intent in ["early", "hi"]',
            "unknown tag 'hi' in dimension 'intent' (it has: early, high_intent, lost_deal, won)",
            10,
        ),
        (
            '"cheap" in behavior',
            "unknown tag 'cheap' in dimension 'behavior' (it has: new_product_follower, price_sensitive)",
            0,
        ),
        ('latest_stage == "won', "unexpected character '\"'", 16),
        ("spend(90d) > 5000 $", "unexpected character '$'", 18),
        ("30days > 1d", "unexpected character '3'", 0),
        ("true true", "unexpected 'true'", 5),
        ("(true", "expected ')', found end of the condition", 5),
        ("true and", "unexpected end of the condition", 8),
        ('owner_rep in ["a", 1]', "a list holds strings or numbers, not both: this one holds strings", 19),
        ("1 < 2 < 3", "unexpected '<'", 6),
    ],
)
def test_errors_name_the_problem_and_where_it_is(source: str, message: str, offset: int) -> None:
    problem = error(source)
    assert problem.message == message
    assert problem.offset == offset
    assert str(problem) == message


def test_a_window_of_exactly_365_days_is_allowed() -> None:
    assert compile_("spend(365d) > 0").windows == {("spend", 365 * DAY)}


def test_no_python_evaluation() -> None:
    for source in ("__import__('os')", "owner_rep.__class__ == 1", "[x for x in y]"):
        with pytest.raises(ExprError):
            compile_(source)
