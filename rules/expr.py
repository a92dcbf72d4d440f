"""The condition language: a small, typed, safe expression language over customer facts.

    age(last_activity) >= 30d and age(last_activity) < 180d
    spend(180d) > 5000 and paid_orders(180d) > 3
    lifecycle == "mature" and age(last_activity) >= 90d
    latest_stage in ["proposal", "quoted", "negotiating"]

There is no ``eval``: text is tokenised, parsed into a tree, type-checked against the fact
vocabulary (``rules/facts.py``) and the catalog's dimensions, and compiled into nested Python
closures. Numbers are ``Decimal`` (money and ratios compare exactly), durations and times are
integer microseconds. ``null`` (a missing fact, such as the last activity of a customer who never
had one) makes every ordering comparison false, so ``age(last_activity) < 30d`` is false for a
customer with no activity, and so is ``age(last_activity) >= 30d``.

``age(t)`` may only be compared with a duration literal: that is what lets the engine compute, from
the tree alone, every future moment at which a condition can flip (``t + duration``), and so each
customer's next deadline.

Every node of the tree keeps the span of source text it was parsed from and the function that
builds its closure from its children's closures. The engine runs the closures built once from the
children's plain closures; ``Condition.evaluated`` (the explanation, ``rules/explain.py``) builds a
second set from the same builders over recording children, so the values it shows are computed by
the very code the engine runs, and the engine's closures carry no instrumentation at all.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, DivisionByZero, InvalidOperation
from typing import Any

from rules.facts import (
    BOOL,
    DURATION,
    FACTS,
    FUNCTIONS,
    LOCAL_PARTS,
    NUMBER,
    NUMBERS,
    STRING,
    STRINGS,
    TAGSET,
    TIME,
    WINDOWS,
    Elements,
    Timed,
    in_window,
    local_part,
    of_channel,
)
from state.customer import CustomerState
from state.times import DEFAULT_ZONE, format_duration, parse_duration

MAX_WINDOW = 365 * 86_400 * 1_000_000
"""Orders and follow-ups are kept one by one for 365 days, so no window may be longer."""


class ExprError(Exception):
    """A condition that cannot be used; ``offset`` is the character where the problem is."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


class Context:
    """What a condition is evaluated against: one customer, one moment, the tags decided so far."""

    __slots__ = ("cache", "elements", "now", "state", "tags")

    def __init__(self, state: CustomerState, now: int, tags: dict[str, object]) -> None:
        self.state = state
        self.now = now
        self.tags = tags
        # Values computed once per evaluation: facts by name, windows by their call ("spend(180d)").
        # Keys are strings: a string keeps its hash, a tuple computes it again at every look-up.
        self.cache: dict[str, object] = {}
        self.elements: dict[Elements, Sequence[Timed]] = {}  # what windows count, by the function listing it


Evaluator = Callable[[Context], object]
_NO_CONTEXT: Any = None  # what a constant is evaluated against: it reads nothing


@dataclass(frozen=True, slots=True)
class Dimension:
    """What the type checker needs to know of a dimension a condition refers to."""

    exclusive: bool
    tags: frozenset[str]


@dataclass(slots=True)
class Condition:
    """A compiled condition, with what the deadline computation and the reasons need."""

    source: str
    evaluate: Evaluator
    ages: set[tuple[str, int]] = field(default_factory=set)  # (time fact, age at which it flips)
    facts: set[str] = field(default_factory=set)  # facts it reads, directly or through age()
    windows: set[tuple[str, int]] = field(default_factory=set)  # (window function, length)
    # (fact of the calendar, a value at whose start a comparison can flip; None: any change)
    calendar: set[tuple[str, int | None]] = field(default_factory=set)
    dimensions: set[str] = field(default_factory=set)  # dimensions it refers to
    leaves: list[tuple[str, Evaluator, str]] = field(default_factory=list)  # reason key, fn, type
    root: Node | None = None  # the typed tree ``evaluate`` was built from
    # ``evaluate(ctx) is True`` as one generated function (``_generated``): what the engine runs.
    test: Callable[[Context], bool] = field(default=lambda ctx: False)

    def __call__(self, ctx: Context) -> bool:
        return self.test(ctx)

    def reason(self, ctx: Context) -> dict[str, object]:
        """The values this condition looked at, ready for JSON."""
        return {key: _json_value(fn(ctx), kind) for key, fn, kind in self.leaves}

    def evaluated(self, ctx: Context) -> Evaluated:
        """The condition evaluated at ``ctx`` with the value of every sub-expression (slow path).

        One evaluation through closures built by the same builders as ``evaluate``, each node
        wrapped to record its value. Parts the engine does not reach (the right of an ``and``
        whose left is false) are then evaluated through their own recording closures, so that
        an explanation can show every failing clause, not only the first.
        """
        assert self.root is not None, "a compiled condition always has its tree"
        values: dict[int, object] = {}
        recording: dict[int, Evaluator] = {}
        _recorder(self.root, values, recording)(ctx)
        for node in _preorder(self.root):
            if id(node) not in values:
                recording[id(node)](ctx)
        return _evaluated(self.source, self.root, values)


@dataclass(frozen=True, slots=True)
class Evaluated:
    """One sub-expression of a condition, as written, with its value at one moment.

    ``and``/``or`` chains are flattened: ``a and b and c`` is one node with three children.
    """

    text: str  # the source text of the sub-expression
    type: str  # a type of rules/facts.py (BOOL, NUMBER, DURATION, TIME, ...)
    value: object  # None for null
    op: str  # "and", "or", "not", a comparison or arithmetic operator, "fact", "call", "literal", ...
    money: bool  # a number that is an amount of money (formatted with 2 decimals)
    children: tuple[Evaluated, ...] = ()

    @property
    def is_literal(self) -> bool:
        return self.op == LITERAL

    def walk(self) -> list[Evaluated]:
        """This node and every node below it, children before their parent (evaluation order)."""
        return [*(node for child in self.children for node in child.walk()), self]


# --------------------------------------------------------------------------------------------
# Tokens

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<duration>\d+(?:\.\d+)?[smhdy](?![A-Za-z0-9_]))
  | (?P<number>\d+(?:\.\d+)?(?![A-Za-z0-9_.]))  # no backtracking into "30days"
  | (?P<string>"[^"\\\n]*"|'[^'\\\n]*')
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|==|!=|<|>|\+|-|\*|/|\(|\)|\[|\]|,)
    """,
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "in", "true", "false", "null"}


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # duration, number, string, name, keyword, op, end
    text: str
    offset: int


def tokenize(source: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    while position < len(source):
        match = _TOKEN.match(source, position)
        if match is None:
            raise ExprError(f"unexpected character {source[position]!r}", position)
        kind = match.lastgroup or ""
        text = match.group()
        if kind != "space":
            if kind == "name" and text in _KEYWORDS:
                kind = "keyword"
            tokens.append(Token(kind, text, position))
        position = match.end()
    tokens.append(Token("end", "", len(source)))
    return tokens


# --------------------------------------------------------------------------------------------
# Typed tree


LITERAL = "literal"
Builder = Callable[..., Evaluator]  # the children's evaluators -> this node's evaluator


@dataclass(slots=True)
class Node:
    type: str
    offset: int  # where a problem with this node is reported
    fn: Evaluator  # what the engine runs: ``build`` applied to the children's ``fn``
    literal: object = None  # the value, when the node is a literal
    is_literal: bool = False
    age_of: str | None = None  # the time fact, when the node is age(fact)
    fact: str | None = None  # the fact's name, when the node reads a fact
    span: tuple[int, int] = (0, 0)  # [start, end) of its source text
    op: str = ""  # what it computes, for explanations: "and", "<", "fact", "call", LITERAL...
    children: tuple[Node, ...] = ()
    build: Builder | None = None  # None for leaves, whose ``fn`` reads the context directly
    money: bool = False  # an amount of money (spend, and arithmetic on it)


def _node(kind: str, offset: int, op: str, build: Builder, *children: Node, **extra: Any) -> Node:
    """An inner node: its evaluator is built from its children's, and it spans their text."""
    fn = build(*(child.fn for child in children))
    span = (min(offset, children[0].span[0]), children[-1].span[1])
    return Node(kind, offset, fn, span=span, op=op, children=children, build=build, **extra)


def _end(token: Token) -> int:
    return token.offset + len(token.text)


_ORDERING: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


class _Parser:
    """Recursive descent, one method per precedence level, type-checking as it builds."""

    def __init__(self, source: str, dimensions: Mapping[str, Dimension], zone: tzinfo = DEFAULT_ZONE) -> None:
        self.source = source
        self.zone = zone
        self.open_clocks: list[Node] = []  # calendar facts not (yet) compared with a constant
        self.tokens = tokenize(source)
        self.index = 0
        self.dimensions = dimensions
        self.condition = Condition(source, lambda ctx: None)
        self.open_ages: list[Node] = []  # age() nodes not (yet) compared with a duration literal

    # -- token helpers --

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def accept(self, *texts: str) -> Token | None:
        token = self.token
        if token.kind in ("op", "keyword") and token.text in texts:
            self.index += 1
            return token
        return None

    def expect(self, text: str) -> Token:
        token = self.accept(text)
        if token is None:
            raise ExprError(f"expected {text!r}, found {self._describe(self.token)}", self.token.offset)
        return token

    @staticmethod
    def _describe(token: Token) -> str:
        return "end of the condition" if token.kind == "end" else repr(token.text)

    # -- grammar --

    def parse(self) -> Condition:
        node = self.parse_or()
        if self.token.kind != "end":
            raise ExprError(f"unexpected {self._describe(self.token)}", self.token.offset)
        if node.type != BOOL:
            raise ExprError(f"a condition must be true or false, this is a {node.type}", 0)
        if self.open_ages:
            raise ExprError(
                "age(...) can only be compared with a duration such as 30d", self.open_ages[0].offset
            )
        # A calendar fact used otherwise than against a constant may be seen to change any midnight.
        self.condition.calendar |= {(clock.fact, None) for clock in self.open_clocks if clock.fact}
        self.condition.evaluate = node.fn
        self.condition.root = node
        self.condition.test = _generated(node)
        return self.condition

    def parse_or(self) -> Node:
        node = self.parse_and()
        while (token := self.accept("or")) is not None:
            right = self.parse_and()
            self._need(node, BOOL, "or")
            self._need(right, BOOL, "or")
            node = _node(BOOL, token.offset, "or", _either, node, right)
        return node

    def parse_and(self) -> Node:
        node = self.parse_not()
        while (token := self.accept("and")) is not None:
            right = self.parse_not()
            self._need(node, BOOL, "and")
            self._need(right, BOOL, "and")
            node = _node(BOOL, token.offset, "and", _both, node, right)
        return node

    def parse_not(self) -> Node:
        token = self.accept("not")
        if token is None:
            return self.parse_comparison()
        operand = self.parse_not()
        self._need(operand, BOOL, "not")
        return _node(BOOL, token.offset, "not", _not, operand)

    def parse_comparison(self) -> Node:
        left = self.parse_sum()
        token = self.token
        if self.accept("<", "<=", ">", ">="):
            return self._ordering(token, left, self.parse_sum())
        if self.accept("==", "!="):
            return self._equality(token, left, self.parse_sum())
        if self.accept("in"):
            return self._membership(token, left, self.parse_sum(), negate=False)
        if self.token.text == "not" and self.tokens[self.index + 1].text == "in":
            self.index += 2
            return self._membership(token, left, self.parse_sum(), negate=True)
        return left

    def parse_sum(self) -> Node:
        node = self.parse_product()
        while (token := self.accept("+", "-")) is not None:
            right = self.parse_product()
            node = self._arithmetic(token, node, right)
        return node

    def parse_product(self) -> Node:
        node = self.parse_unary()
        while (token := self.accept("*", "/")) is not None:
            right = self.parse_unary()
            node = self._arithmetic(token, node, right)
        return node

    def parse_unary(self) -> Node:
        token = self.accept("-")
        if token is None:
            return self.parse_atom()
        operand = self.parse_unary()
        if operand.type not in (NUMBER, DURATION):
            raise ExprError(f"cannot negate a {operand.type}", token.offset)
        if operand.age_of:
            raise ExprError("age(...) can only be compared with a duration such as 30d", token.offset)
        node = _node(operand.type, token.offset, "-", _negation, operand, money=operand.money)
        return _folded(node) if operand.type == DURATION and operand.is_literal else node

    def parse_atom(self) -> Node:
        token = self.token
        self.index += 1
        if token.kind == "number":
            return _literal(NUMBER, Decimal(token.text), token)
        if token.kind == "duration":
            return _literal(DURATION, parse_duration(token.text), token)
        if token.kind == "string":
            return _literal(STRING, token.text[1:-1], token)
        if token.kind == "keyword" and token.text in ("true", "false"):
            return _literal(BOOL, token.text == "true", token)
        if token.kind == "keyword" and token.text == "null":
            return _literal("null", None, token)
        if token.kind == "op" and token.text == "(":
            node = self.parse_or()
            node.span = (token.offset, _end(self.expect(")")))  # shown as written, parentheses included
            return node
        if token.kind == "op" and token.text == "[":
            return self._list(token)
        if token.kind == "name":
            if self.accept("("):
                return self._call(token)
            return self._name(token)
        raise ExprError(f"unexpected {self._describe(token)}", token.offset)

    # -- building blocks --

    def _list(self, start: Token) -> Node:
        """A list of strings or of numbers (its first item says which), all literals."""
        items: list[object] = []
        kind = "string" if self.token.kind != "number" else "number"
        while (close := self.accept("]")) is None:
            if items:
                self.expect(",")
            token = self.token
            if token.kind != kind:
                raise ExprError(f"a list holds strings or numbers, not both: this one holds {kind}s",
                                token.offset)
            self.index += 1
            items.append(token.text[1:-1] if kind == "string" else Decimal(token.text))
        node = _literal(STRINGS if kind == "string" else NUMBERS, frozenset(items), start)
        node.span = (start.offset, _end(close))
        return node

    def _name(self, token: Token) -> Node:
        name = token.text
        if name in self.dimensions:
            dimension = self.dimensions[name]
            self.condition.dimensions.add(name)
            kind = STRING if dimension.exclusive else TAGSET
            node = Node(kind, token.offset, lambda c: c.tags.get(name), span=(token.offset, _end(token)),
                        op="dimension")
            node.literal = name  # remembered so that tag names compared with it can be checked
            self._leaf(name, node)
            return node
        fact = FACTS.get(name)
        if fact is None:
            raise ExprError(f"unknown name {name!r}{_suggest(name, self._names())}", token.offset)
        self.condition.facts.add(name)
        read = _reader(name, self.zone)
        node = Node(fact.type, token.offset, read, fact=name, span=(token.offset, _end(token)), op="fact")
        if fact.clock is not None:
            self.open_clocks.append(node)
        self._leaf(name, node)
        return node

    def _close_clock(self, node: Node, other: Node) -> None:
        """``days_to_birthday <= 7``: the comparison can flip only when the value becomes 7 or 6,
        or jumps back after the birthday; the engine then needs only those midnights as deadlines."""
        if node not in self.open_clocks or not other.is_literal or other.type not in (NUMBER, NUMBERS):
            return
        assert node.fact is not None
        constants = other.literal if isinstance(other.literal, frozenset) else {other.literal}
        for constant in constants:
            assert isinstance(constant, Decimal)
            # "v < 2.5" flips when v becomes 2; "v < 3" when it becomes 2, "v <= 3" when it becomes 3.
            below = int(constant.to_integral_value(ROUND_FLOOR))
            above = int(constant.to_integral_value(ROUND_CEILING))
            self.condition.calendar |= {(node.fact, below), (node.fact, above - 1)}
        self.open_clocks.remove(node)

    def _call(self, token: Token) -> Node:
        name = token.text
        leaves_before = len(self.condition.leaves)
        argument = self.parse_or()
        extra = self.parse_or() if self.accept(",") else None
        end = _end(self.expect(")"))
        if extra is not None and not (name in WINDOWS and WINDOWS[name].by_channel):
            raise ExprError(f"{name}() takes one argument", extra.offset)
        if name == "age":
            if argument.type != TIME or argument.fact is None:
                raise ExprError("age() takes a time fact, such as age(last_activity)", argument.offset)
            fact = argument.fact
            # The time itself is not worth a reason; its age is. Only drop what the argument added:
            # the same fact may already be a leaf of an earlier part of the condition.
            del self.condition.leaves[leaves_before:]
            node = _node(DURATION, token.offset, "call", _age_of, argument, age_of=fact)
            node.span = (token.offset, end)
            self.open_ages.append(node)
            self._leaf(f"days_since_{fact}", node)
            return node
        if name in LOCAL_PARTS:
            return self._local_part(token, argument, end)
        return self._window(token, argument, extra, end)

    def _window(self, token: Token, argument: Node, extra: Node | None, end: int) -> Node:
        """``spend(180d)``, ``logins(30d, "app")``: a leaf, its arguments constants read once here."""
        name = token.text
        window = WINDOWS.get(name)
        if window is None:
            known = [*FUNCTIONS, *WINDOWS]
            raise ExprError(f"unknown function {name!r}{_suggest(name, known)}", token.offset)
        if not argument.is_literal or argument.type != DURATION:
            raise ExprError(f"{name}() takes a window length such as 90d", argument.offset)
        length = int(argument.literal)  # type: ignore[call-overload]
        if not 0 < length <= MAX_WINDOW:
            raise ExprError("a window must be longer than 0 and at most 365d", argument.offset)
        channel = self._channel(extra) if extra is not None else None
        # One deadline list for every channel: a login of another channel leaving the window is a
        # deadline at which nothing flips, which costs an evaluation and nothing else.
        self.condition.windows.add((name, length))
        key = f"{name}({length})" if channel is None else f"{name}({length}, {channel!r})"
        listing, nothing = window.elements, window.value([])

        def evaluate(c: Context) -> object:
            if key not in c.cache:
                # spend() and paid_orders() count the same orders: they are listed once.
                elements = c.elements.get(listing)
                if elements is None:
                    elements = c.elements[listing] = listing(c.state)
                if channel is not None:
                    elements = of_channel(elements, channel)
                # Most customers have no order or no follow-up: nothing to filter or add up.
                c.cache[key] = window.value(in_window(elements, c.now, length)) if elements else nothing
            return c.cache[key]

        node = Node(NUMBER, token.offset, evaluate, span=(token.offset, end), op="call", money=window.money)
        suffix = "" if channel is None else f"_{channel}"
        self._leaf(f"{name}_{format_duration(length, years=False)}{suffix}", node)
        return node

    @staticmethod
    def _channel(node: Node) -> str:
        if not (node.is_literal and node.type == STRING) or not str(node.literal).strip():
            raise ExprError('the channel is a string such as "app"', node.offset)
        return str(node.literal)

    def _local_part(self, token: Token, argument: Node, end: int) -> Node:
        """``weekday(t)``, ``hour(t)``: read on the catalog's wall clock. No deadline: the value
        depends on the moment ``t`` only, which changes with events, not with "now"."""
        name = token.text
        if argument.type != TIME:
            raise ExprError(f"{name}() takes a time, such as {name}(last_activity)", argument.offset)
        node = _node(NUMBER, token.offset, "call", _part_of(name, self.zone), argument)
        node.span = (token.offset, end)
        if argument.fact is not None:
            self._leaf(f"{name}_{argument.fact}", node)
        return node

    def _ordering(self, token: Token, left: Node, right: Node) -> Node:
        if left.type != right.type or left.type not in (NUMBER, DURATION, TIME):
            raise ExprError(
                f"cannot compare {left.type} {token.text} {right.type}", token.offset
            )
        # The moment the comparison flips: at t + d for "age < d" and "age >= d", one microsecond
        # later for "age <= d" and "age > d" (the age must pass d). With age on the right,
        # "d < age" is "age > d", and so on.
        late = token.text in (("<=", ">") if left.age_of else ("<", ">="))
        self._close_age(left, right, late)
        self._close_age(right, left, late)
        self._close_clock(left, right)
        self._close_clock(right, left)
        return _node(BOOL, token.offset, token.text, _comparison(_ORDERING[token.text]), left, right)

    def _close_age(self, node: Node, other: Node, late: bool) -> None:
        if node.age_of is None:
            return
        if other.type == DURATION and not other.is_literal:
            # The deadline t + d needs d before any customer is seen: "age(a) > age(b)" or
            # "age(a) < 2 * age(b)" could flip at moments no tree walk can list.
            raise ExprError(
                "age(...) can only be compared with a constant duration such as 30d or 2 * 7d, "
                "not with one that depends on the customer",
                other.offset,
            )
        if not (other.is_literal and other.type == DURATION):
            raise ExprError("age(...) can only be compared with a duration such as 30d", other.offset)
        self.condition.ages.add((node.age_of, int(other.literal) + late))  # type: ignore[call-overload]
        self.open_ages.remove(node)

    def _equality(self, token: Token, left: Node, right: Node) -> Node:
        if "null" not in (left.type, right.type) and left.type != right.type:
            raise ExprError(f"cannot compare {left.type} {token.text} {right.type}", token.offset)
        if left.age_of or right.age_of:
            raise ExprError("age(...) can only be compared with <, <=, > or >=", token.offset)
        self._check_tag(left, right)
        self._check_tag(right, left)
        self._close_clock(left, right)
        self._close_clock(right, left)
        build = _equal if token.text == "==" else _unequal
        return _node(BOOL, token.offset, token.text, build, left, right)

    def _membership(self, token: Token, left: Node, right: Node, negate: bool) -> Node:
        if (left.type, right.type) not in ((STRING, STRINGS), (STRING, TAGSET), (NUMBER, NUMBERS)):
            raise ExprError(
                f"'in' needs a string on the left and a list of strings or a non-exclusive dimension "
                f"on the right, or a number and a list of numbers, not {left.type} in {right.type}",
                token.offset,
            )
        self._close_clock(left, right)
        self._check_tag(right, left)
        if right.type == STRINGS:
            self._check_tag(left, right)
        if negate:
            return _node(BOOL, token.offset, "not in", _not_member, left, right)
        return _node(BOOL, token.offset, "in", _member, left, right)

    def _check_tag(self, dimension_node: Node, value_node: Node) -> None:
        """``lifecycle == "matur"`` is an unknown tag, not a condition that is always false; so is
        ``latest_stage == "qoted"`` an unknown stage."""
        if dimension_node.fact is not None:
            self._check_domain(dimension_node.fact, value_node)
            return
        name = dimension_node.literal
        if dimension_node.is_literal or not isinstance(name, str) or name not in self.dimensions:
            return
        if not value_node.is_literal or value_node.literal is None:
            return
        values = value_node.literal if isinstance(value_node.literal, frozenset) else {value_node.literal}
        for value in sorted(values):
            if value not in self.dimensions[name].tags:
                tags = ", ".join(sorted(self.dimensions[name].tags))
                raise ExprError(
                    f"unknown tag {value!r} in dimension {name!r} (it has: {tags})",
                    value_node.offset,
                )

    def _check_domain(self, fact: str, value_node: Node) -> None:
        domain = FACTS[fact].domain
        if not domain or not value_node.is_literal or value_node.literal is None:
            return
        values = value_node.literal if isinstance(value_node.literal, frozenset) else {value_node.literal}
        for value in sorted(str(v) for v in values):
            if value not in domain:
                hint = _suggest(value, list(domain))
                raise ExprError(f"{fact} is never {value!r}{hint}: it is one of {', '.join(domain)}", value_node.offset)

    def _arithmetic(self, token: Token, left: Node, right: Node) -> Node:
        op = token.text
        kind = _ARITHMETIC.get((left.type, op, right.type))
        if kind is None:
            raise ExprError(f"cannot compute {left.type} {op} {right.type}", token.offset)
        if left.age_of or right.age_of:
            raise ExprError("age(...) can only be compared with a duration such as 30d", token.offset)
        money = kind == NUMBER and _is_money(op, left, right)
        node = _node(kind, token.offset, op, _arithmetic(op, kind), left, right, money=money)
        if kind == DURATION and left.is_literal and right.is_literal:
            # Folded now, so that "age(t) >= 2 * 7d" compares with a constant and keeps its deadline.
            if node.fn(_NO_CONTEXT) is None:
                raise ExprError("division by zero", right.offset)
            return _folded(node)
        return node

    def _need(self, node: Node, kind: str, operator: str) -> None:
        if node.type != kind:
            raise ExprError(f"'{operator}' needs true/false values, not a {node.type}", node.offset)

    def _leaf(self, key: str, node: Node) -> None:
        if all(existing != key for existing, _, _ in self.condition.leaves):
            self.condition.leaves.append((key, node.fn, node.type))

    def _names(self) -> list[str]:
        return [*FACTS, *self.dimensions]


def compile_condition(
    source: str, dimensions: Mapping[str, Dimension], zone: tzinfo = DEFAULT_ZONE
) -> Condition:
    """Parse, type-check and compile one condition. Raises ExprError.

    ``zone`` is where facts of the calendar (days to a birthday, a weekday, an hour) are read."""
    return _Parser(source, dimensions, zone).parse()


def _reader(name: str, zone: tzinfo) -> Evaluator:
    """The evaluator of a fact, computed once per evaluation (the context's cache)."""
    fact = FACTS[name]
    getter, clock, key = fact.get, fact.clock, name

    def read(c: Context) -> object:
        if key not in c.cache:
            stored = getter(c.state)
            c.cache[key] = stored if clock is None else clock(stored, c.now, zone)
        return c.cache[key]

    return read


# --------------------------------------------------------------------------------------------
# Runtime helpers


# Builders: each takes its children's evaluators and returns the node's. The engine's closures
# and the explanation's recording ones come from the same builders, so they compute alike.


def _either(a: Evaluator, b: Evaluator) -> Evaluator:
    return lambda c: a(c) is True or b(c) is True


def _both(a: Evaluator, b: Evaluator) -> Evaluator:
    return lambda c: a(c) is True and b(c) is True


def _not(a: Evaluator) -> Evaluator:
    return lambda c: a(c) is not True


def _negation(a: Evaluator) -> Evaluator:
    return lambda c: _negate(a(c))


def _part_of(part: str, zone: tzinfo) -> Builder:
    def build(moment: Evaluator) -> Evaluator:
        return lambda c: local_part(part, moment(c), zone)

    return build


def _age_of(moment: Evaluator) -> Evaluator:
    return lambda c: _age(c.now, moment(c))


def _comparison(test: Callable[[Any, Any], Any]) -> Builder:
    def build(a: Evaluator, b: Evaluator) -> Evaluator:
        def compare(c: Context) -> bool:
            x, y = a(c), b(c)
            return x is not None and y is not None and bool(test(x, y))

        return compare

    return build


def _equal(a: Evaluator, b: Evaluator) -> Evaluator:
    return lambda c: a(c) == b(c)


def _unequal(a: Evaluator, b: Evaluator) -> Evaluator:
    return lambda c: a(c) != b(c)


def _member(a: Evaluator, b: Evaluator) -> Evaluator:
    def member(c: Context) -> bool:
        value, collection = a(c), b(c)
        return value is not None and collection is not None and value in collection  # type: ignore[operator]

    return member


def _not_member(a: Evaluator, b: Evaluator) -> Evaluator:
    member = _member(a, b)
    return lambda c: not member(c)


_ARITHMETIC: dict[tuple[str, str, str], str] = {
    # (left, operator, right) -> result. Durations scale by numbers and add to durations; a
    # duration divided by a duration is a plain ratio. Money stays a number (with its flag).
    **{(NUMBER, op, NUMBER): NUMBER for op in "+-*/"},
    (DURATION, "+", DURATION): DURATION,
    (DURATION, "-", DURATION): DURATION,
    (NUMBER, "*", DURATION): DURATION,
    (DURATION, "*", NUMBER): DURATION,
    (DURATION, "/", NUMBER): DURATION,
    (DURATION, "/", DURATION): NUMBER,
}


def _arithmetic(op: str, kind: str) -> Builder:
    def build(a: Evaluator, b: Evaluator) -> Evaluator:
        if kind == DURATION:
            return lambda c: _micros(_arith(op, a(c), b(c)))
        return lambda c: _arith(op, a(c), b(c))

    return build


def _micros(value: object) -> int | None:
    """A computed duration as whole microseconds, rounded down: ``30d / 7`` is not a whole number
    of microseconds, and durations are ints everywhere else (state/times.py)."""
    if value is None or isinstance(value, int):
        return value
    return int(Decimal(value).to_integral_value(rounding=ROUND_FLOOR))  # type: ignore[arg-type]


def _folded(node: Node) -> Node:
    """A duration made only of literals, as one literal with the computed value: ``2 * 7d`` is 14d.

    It keeps its span, so an explanation still shows the text as written (with its value); its
    operands are dropped: they are constants, and a literal has no children."""
    value = node.fn(_NO_CONTEXT)
    return Node(node.type, node.offset, lambda c: value, literal=value, is_literal=True, span=node.span,
                op=LITERAL)


def _is_money(op: str, left: Node, right: Node) -> bool:
    """Money plus, minus or times a number is money; money divided by money is a ratio."""
    if op == "/":
        return left.money and not right.money
    return left.money or right.money


def _literal(kind: str, value: object, token: Token) -> Node:
    return Node(kind, token.offset, lambda c: value, literal=value, is_literal=True,
                span=(token.offset, _end(token)), op=LITERAL)


# --------------------------------------------------------------------------------------------
# The engine's function: the whole tree as one Python function
#
# A condition run through its closures costs a Python call per node (``a and b`` over two
# comparisons of a fact with a constant is seven). ``_generated`` writes the tree as one Python
# expression instead, so the engine pays one call per condition. The source is produced here,
# from the typed tree alone: every value (constants, cache keys, the leaves' closures) is passed
# in by name, never written into the text, so nothing a catalog says is ever parsed as Python.
# Node kinds not written out below run their own closure (``F(c)``): the same code either way.
#
# The expression computes what the closures compute, with one freedom: an operand after one that
# already decides the result (a null left of ``<``) may not be evaluated. Evaluating is pure (it
# only fills the context's cache), so the value cannot differ; tests/rules/test_generated.py
# compares both on many conditions and customers.


def _generated(root: Node) -> Callable[[Context], bool]:
    """``lambda c: root.fn(c) is True``, as one function without a call per node."""
    writer = _Writer()
    body = f"def test(c):\n    return {writer.expression(root)} is True\n"
    exec(compile(body, "<condition>", "exec"), writer.values)  # our own source, written from the tree: see above
    test: Callable[[Context], bool] = writer.values["test"]  # type: ignore[assignment]
    return test


class _Writer:
    """Writes a tree as a Python expression over ``c`` (the context). ``values`` receives what the
    expression refers to by name (``_0``, ``_1``...); ``t0``, ``t1``... are its local variables."""

    def __init__(self) -> None:
        self.values: dict[str, object] = {}
        self.temporaries = 0

    def value(self, value: object) -> str:
        name = f"_{len(self.values)}"
        self.values[name] = value
        return name

    def temporary(self) -> str:
        self.temporaries += 1
        return f"t{self.temporaries}"

    def expression(self, node: Node) -> str:  # noqa: C901 -- one case per kind of node
        """A Python expression computing ``node.fn(c)``."""
        parts = [self.expression(child) for child in node.children] if node.build is not None else []
        if node.is_literal:
            return self.value(node.literal)
        if node.op == "fact":  # read once per evaluation, through the context's cache like ``_reader``
            key, read = self.value(node.fact), self.value(node.fn)
            return f"(c.cache[{key}] if {key} in c.cache else {read}(c))"
        if node.op == "dimension":
            return f"c.tags.get({self.value(node.literal)})"
        if node.age_of is not None:  # age(t): now - t, null for a missing t (``_age``)
            moment = self.temporary()
            return f"(None if ({moment} := {parts[0]}) is None else c.now - {moment})"
        if node.op in ("and", "or"):  # ``_both``, ``_either``
            return f"({parts[0]} is True {node.op} {parts[1]} is True)"
        if node.op == "not":
            return f"({parts[0]} is not True)"
        if node.op in ("==", "!="):
            return f"({parts[0]} {node.op} {parts[1]})"
        if node.op in _ORDERING:
            # Both sides are numbers, durations or times (int or Decimal), whose comparison is a
            # bool already: what ``_comparison`` makes sure of with ``bool()``.
            return self._unless_null(node, parts, node.op)
        if node.op in ("in", "not in"):  # ``_member``, ``_not_member``
            member = self._unless_null(node, parts, "in")
            return member if node.op == "in" else f"(not {member})"
        if node.op in ("+", "-", "*", "/") and len(parts) == 2:
            arith = f"{self.value(_arith)}({self.value(node.op)}, {parts[0]}, {parts[1]})"
            return f"{self.value(_micros)}({arith})" if node.type == DURATION else arith
        return f"{self.value(node.fn)}(c)"  # a window, weekday(), a negation: its own closure

    def _unless_null(self, node: Node, parts: list[str], operator: str) -> str:
        """``x OP y``, false when either side is null (a constant side is known not to be)."""
        tests, operands = [], []
        for child, part in zip(node.children, parts, strict=True):
            if child.is_literal and child.literal is not None:
                operands.append(part)
            else:
                operand = self.temporary()
                tests.append(f"({operand} := {part}) is not None")
                operands.append(operand)
        return f"({' and '.join([*tests, f'{operands[0]} {operator} {operands[1]}'])})"


# --------------------------------------------------------------------------------------------
# Explanation: recording closures over the same tree


def _recorder(node: Node, values: dict[int, object], recording: dict[int, Evaluator]) -> Evaluator:
    """``node``'s evaluator rebuilt over recording children, itself recording into ``values``.

    ``recording`` receives the recording evaluator of every node of the tree, by ``id``.
    """
    if node.build is None:
        inner = node.fn  # a leaf: the engine's own closure
    else:
        inner = node.build(*(_recorder(child, values, recording) for child in node.children))
    key = id(node)

    def record(c: Context) -> object:
        value = inner(c)
        values[key] = value
        return value

    recording[key] = record
    return record


def _preorder(node: Node) -> list[Node]:
    return [node, *(n for child in node.children for n in _preorder(child))]


def _evaluated(source: str, node: Node, values: dict[int, object]) -> Evaluated:
    children = tuple(_evaluated(source, child, values) for child in _operands(node))
    start, end = node.span
    return Evaluated(source[start:end], node.type, values[id(node)], node.op, node.money, children)


def _operands(node: Node) -> list[Node]:
    """Children, with ``a and b and c`` (parsed as ``(a and b) and c``) flattened to three.

    A parenthesised chain is kept whole: its span is wider than its operands'."""
    if node.op not in ("and", "or"):
        return list(node.children)
    flat: list[Node] = []
    for child in node.children:
        same_chain = child.op == node.op and child.span[0] == child.children[0].span[0]
        flat += _operands(child) if same_chain else [child]
    return flat


def _age(now: int, moment: object) -> int | None:
    return None if moment is None else now - moment  # type: ignore[operator]


def _negate(value: object) -> object:
    return None if value is None else -value  # type: ignore[operator]


def _arith(op: str, a: object, b: object) -> object:
    if a is None or b is None:
        return None
    try:
        if op == "+":
            return a + b  # type: ignore[operator]
        if op == "-":
            return a - b  # type: ignore[operator]
        if op == "*":
            return a * b  # type: ignore[operator]
        return Decimal(a) / Decimal(b)  # type: ignore[arg-type]
    except (ZeroDivisionError, DivisionByZero, InvalidOperation):
        return None  # division by zero is "unknown", like a missing fact


def _json_value(value: object, kind: str) -> object:
    if value is None:
        return None
    if kind == DURATION:
        return round(value / 86_400_000_000, 6)  # type: ignore[operator]
    if kind == TIME:
        from state.times import format_timestamp

        return format_timestamp(value)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, frozenset):
        return sorted(value)
    return value


def _suggest(name: str, known: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
