"""Why a customer holds each tag of the catalog, or not, at one moment (SPEC section 9).

Nothing here decides a tag. The customer is brought to "now" by the engine's own functions (due
deadlines fired, a new catalog applied), so "held" and "since" are what the engine holds; each
condition is evaluated by ``Condition.evaluated``, the engine's compiled closures rebuilt to record
the value of every sub-expression; and the moment each answer next changes by itself is found by
letting the engine fire the customer's deadlines, one by one, on a copy. A tag whose condition
holds and which is not held was either beaten by an earlier tag of its exclusive dimension or barred
by the engine because its validity period (``valid_for``) is over. Pure: no I/O, no clock.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from rules.catalog import Catalog, DimensionRule, TagRule
from rules.engine import decide_tags, fire_deadlines, reevaluate, unavailable
from rules.expr import Context, Evaluated
from rules.facts import DURATION, NUMBER, TIME
from state.customer import CustomerState
from state.times import format_duration, format_span, format_timestamp

MAX_STEPS = 1000
"""Deadlines the engine fires, at most, to find when each answer changes. Far more than a customer
has (an order every day for a year makes about 180); beyond it ``horizon`` says where the search
stopped, so that a pathological customer cannot hold a worker for seconds."""


class UnknownLanguage(ValueError):
    """A language the catalog has no texts in."""

    def __init__(self, language: str, catalog: Catalog) -> None:
        known = ", ".join(catalog.languages)
        super().__init__(f"unknown language {language!r}: the catalog has {known}")


@dataclass(frozen=True, slots=True)
class Value:
    """A sub-expression of a condition as written, and its value formatted for people."""

    expression: str
    value: str


@dataclass(frozen=True, slots=True)
class TagExplanation:
    tag: str
    rule_id: str
    name: str  # display name in the language
    definition: str
    held: bool
    since: int | None  # when the customer entered the tag, while held
    condition: str  # as written in the catalog
    holds: bool  # the condition's value now (a tag may hold and yet be shadowed)
    values: tuple[Value, ...]  # every fact and sub-expression the condition reads
    failing: tuple[str, ...]  # for a tag whose condition fails: the clauses that fail
    any_of: bool  # the condition is an "or": ``failing`` are its alternatives, none of which holds
    shadowed_by: str | None  # an earlier tag of the exclusive dimension, held instead
    expired: bool  # held for its valid_for, and its condition has held ever since: not entered again yet
    valid_for: int | None  # the catalog's limit on holding the tag, if any
    reason: dict[str, object]  # what a change of this tag now would carry as its ``reason``
    next_change: int | None  # when held/not held next changes without a new event


@dataclass(frozen=True, slots=True)
class DimensionExplanation:
    dimension: str
    name: str
    exclusive: bool
    tags: tuple[TagExplanation, ...]


@dataclass(frozen=True, slots=True)
class Explanation:
    customer_id: str
    at: int
    language: str
    catalog_name: str
    catalog_version: str
    next_deadline: int | None  # the customer's: the next moment any condition can flip
    horizon: int | None  # set when the search for next changes stopped there (see MAX_STEPS)
    dimensions: tuple[DimensionExplanation, ...]


def explain(catalog: Catalog, state: CustomerState, now: int, language: str | None = None) -> Explanation:
    """Every tag of ``catalog`` for this customer at ``now``. ``state`` is left unchanged.

    Raises UnknownLanguage when ``language`` is not one of the catalog's.
    """
    language = language or catalog.language
    if language not in catalog.languages:
        raise UnknownLanguage(language, catalog)
    current = brought_to(catalog, state, now)
    _, ctx = decide_tags(catalog, current, now)
    changes, horizon = next_changes(catalog, current)
    seen = _Seen(catalog, current, ctx, unavailable(catalog, current, now), changes, language)
    dimensions = tuple(
        DimensionExplanation(
            dimension.name,
            _text(dimension.label, language, catalog) or dimension.name,
            dimension.exclusive,
            tuple(_tag(seen, dimension, tag) for tag in dimension.tags),
        )
        for dimension in catalog.dimensions
    )
    return Explanation(state.customer_id, now, language, catalog.name, catalog.version,
                       current.next_deadline, horizon, dimensions)


@dataclass(frozen=True, slots=True)
class _Seen:
    """What the engine makes of the customer now, shared by the explanation of every tag."""

    catalog: Catalog
    current: CustomerState  # brought to now
    ctx: Context  # the evaluation that decided its tags now
    unavailable: frozenset[str]  # tags it cannot hold now whatever their conditions say (expired)
    changes: dict[str, int]  # tag -> its next change
    language: str


def brought_to(catalog: Catalog, state: CustomerState, now: int) -> CustomerState:
    """A copy of the customer as the engine holds it at ``now``: its deadlines up to ``now`` fired
    (a worker's timer may not have reached them yet) and, if another catalog evaluated it last,
    re-evaluated under this one, as the engine does on a catalog change."""
    current = copy.deepcopy(state)
    fire_deadlines(catalog, current, now)
    if current.catalog_version != catalog.version:
        reevaluate(catalog, current, now)
    return current


def next_changes(catalog: Catalog, current: CustomerState) -> tuple[dict[str, int], int | None]:
    """When each tag is next entered or left without a new event: the engine fires the
    customer's deadlines in order on a copy. Also the horizon, if the search stopped short."""
    future = copy.deepcopy(current)
    held = set(future.tags)
    changes: dict[str, int] = {}
    for _ in range(MAX_STEPS):
        moment = future.next_deadline
        if moment is None or len(changes) == len(catalog.tags):
            return changes, None
        fire_deadlines(catalog, future, moment)
        now_held = set(future.tags)
        for tag in held ^ now_held:
            changes.setdefault(tag, moment)
        held = now_held
    return changes, future.next_deadline


def _tag(seen: _Seen, dimension: DimensionRule, rule: TagRule) -> TagExplanation:
    root = rule.condition.evaluated(seen.ctx)
    holds = root.value is True
    held = seen.current.tags.get(rule.name)
    failing = () if holds or held is not None else failing_clauses(root)
    # A tag that holds and is not held was either barred by the engine (its validity is over) or
    # beaten by an earlier tag of its exclusive dimension.
    expired = holds and held is None and rule.name in seen.unavailable
    shadowed = holds and held is None and not expired
    return TagExplanation(
        tag=rule.name,
        rule_id=rule.rule_id,
        name=_text(rule.label, seen.language, seen.catalog) or rule.name,
        definition=_text(rule.definition, seen.language, seen.catalog),
        held=held is not None,
        since=held.since if held is not None else None,
        condition=rule.condition.source,
        holds=holds,
        values=values_read(root),
        failing=failing,
        any_of=bool(failing) and root.op == "or",
        shadowed_by=_shadowed_by(dimension, rule, seen.current) if shadowed else None,
        expired=expired,
        valid_for=rule.valid_for,
        reason=rule.condition.reason(seen.ctx),
        next_change=seen.changes.get(rule.name),
    )


def failing_clauses(root: Evaluated) -> tuple[str, ...]:
    """The operands of a top-level ``and`` that are not true; every alternative of an ``or``
    (none held, or the condition would hold); else the whole condition."""
    if root.op == "and":
        return tuple(clause.text for clause in root.children if clause.value is not True)
    if root.op == "or":
        return tuple(clause.text for clause in root.children)
    return (root.text,)


def values_read(root: Evaluated) -> tuple[Value, ...]:
    """Every sub-expression but the condition itself and literals, once each, in evaluation order."""
    seen: dict[str, Value] = {}
    for node in root.walk()[:-1]:
        if not node.is_literal and node.text not in seen:
            seen[node.text] = Value(node.text, format_value(node))
    return tuple(seen.values())


def _shadowed_by(dimension: DimensionRule, rule: TagRule, current: CustomerState) -> str | None:
    """The earlier tag of an exclusive dimension that the customer holds instead of this one."""
    if not dimension.exclusive:
        return None
    for earlier in dimension.tags:
        if earlier.name == rule.name:
            return None
        if earlier.name in current.tags:
            return earlier.name
    return None


def format_value(node: Evaluated) -> str:
    """A value for people: money with 2 decimals, ages like ``37d 4h``, times as ISO-8601 UTC,
    strings quoted as in a condition, tag sets as lists."""
    value = node.value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if node.type == NUMBER and isinstance(value, Decimal | int):
        return _number(Decimal(value), node.money)
    if node.type == DURATION and isinstance(value, int):
        return format_span(value)
    if node.type == TIME and isinstance(value, int):
        return format_timestamp(value)
    if isinstance(value, frozenset):
        return "[" + ", ".join(f'"{item}"' for item in sorted(value)) + "]"
    return f'"{value}"'


def _number(value: Decimal, money: bool) -> str:
    if money:
        return f"{value.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP)}"  # as a till rounds
    if value == value.to_integral_value():
        return str(int(value))
    return f"{value.quantize(Decimal('0.0001')).normalize():f}"  # a ratio: 4 decimals are plenty


def _text(texts: dict[str, str], language: str, catalog: Catalog) -> str:
    """The text in ``language``, else in the catalog's first language."""
    return texts.get(language) or texts.get(catalog.language, "")


# -- documents --


def to_json(explanation: Explanation) -> dict[str, object]:
    """The document of ``GET /customers/<id>/explain`` and ``tagengine explain --json``."""
    return {
        "customer_id": explanation.customer_id,
        "at": format_timestamp(explanation.at),
        "language": explanation.language,
        "catalog": {"name": explanation.catalog_name, "version": explanation.catalog_version},
        "next_deadline": _time(explanation.next_deadline),
        "horizon": _time(explanation.horizon),
        "dimensions": [
            {
                "dimension": dimension.dimension,
                "name": dimension.name,
                "exclusive": dimension.exclusive,
                "tags": [_tag_json(tag) for tag in dimension.tags],
            }
            for dimension in explanation.dimensions
        ],
    }


def _tag_json(tag: TagExplanation) -> dict[str, object]:
    return {
        "tag": tag.tag,
        "rule_id": tag.rule_id,
        "name": tag.name,
        "definition": tag.definition,
        "held": tag.held,
        "since": _time(tag.since),
        "condition": tag.condition,
        "holds": tag.holds,
        "values": {value.expression: value.value for value in tag.values},
        "failing": list(tag.failing),
        "any_of": tag.any_of,
        "shadowed_by": tag.shadowed_by,
        "expired": tag.expired,
        "valid_for": format_duration(tag.valid_for) if tag.valid_for is not None else None,
        "reason": tag.reason,
        "next_change": _time(tag.next_change),
    }


def _time(moment: int | None) -> str | None:
    return format_timestamp(moment) if moment is not None else None


def to_text(explanation: Explanation) -> str:
    """A compact layout for a person at a terminal: one block per tag."""
    e = explanation
    lines = [
        f"customer {e.customer_id} at {format_timestamp(e.at)} "
        f"(catalog {e.catalog_name} {e.catalog_version}, {e.language})",
        f"next deadline: {_time(e.next_deadline) or 'none'}",
    ]
    for dimension in e.dimensions:
        kind = "exclusive" if dimension.exclusive else "non-exclusive"
        lines += ["", f"{dimension.name} ({dimension.dimension}, {kind})"]
        for tag in dimension.tags:
            lines += _tag_text(tag)
    if e.horizon is not None:
        lines += ["", f"(changes searched up to {format_timestamp(e.horizon)} only)"]
    return "\n".join(lines) + "\n"


def _tag_text(tag: TagExplanation) -> list[str]:
    mark = "+" if tag.held else "-"
    lines = [f"  {mark} {tag.tag} \u2014 {tag.name}: {_verdict(tag)}", f"      when {tag.condition}"]
    lines += [f"      {value.expression} = {value.value}" for value in tag.values]
    if tag.next_change is not None:
        lines.append(f"      changes by itself at {format_timestamp(tag.next_change)}")
    return lines


def _verdict(tag: TagExplanation) -> str:
    validity = f" (valid for {format_duration(tag.valid_for)})" if tag.valid_for is not None else ""
    if tag.held:
        return f"held since {_time(tag.since)}{validity}"
    if tag.expired:
        return f"not held: it was held for its validity{validity}, and its condition has held ever since; " \
               "it can be entered again once the condition has stopped holding"
    if tag.shadowed_by is not None:
        return f"not held: its condition holds, but {tag.shadowed_by} comes first"
    if tag.any_of:
        return "not held: none holds of " + "; ".join(tag.failing)
    if tag.failing:
        return "not held: fails " + "; ".join(tag.failing)
    return "not held"
