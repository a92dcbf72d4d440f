"""The pure tag engine: state + event + "now" -> new state, tag changes, tasks, next deadline.

Both runtimes call these functions and nothing else: the Faust agent (``streams/``) with the wall
clock, and ``tagengine replay`` with event time. Sharing them is what makes a replay of the same
events produce the same changes as the live pipeline.

Order of work for an event at engine time ``now`` (SPEC section 8): first every deadline of the
customer at or before ``now`` fires, each evaluated at its own moment (``trigger: timer``); then the
event is applied and the customer evaluated at ``now`` (``trigger: event``). A customer's next
deadline is the earliest future moment at which any condition can flip without a new event: an
``age(t) OP d`` comparison flips at ``t + d``, a window count changes when an element leaves it,
a calendar fact (``days_to_birthday``) changes at a local midnight of the catalog's time zone, and
a held tag with ``valid_for`` expires at ``since + valid_for`` (SPEC section 9).

An expired tag is removed (the next tag of an exclusive dimension whose condition holds taking its
place) and kept in ``state.expired`` until an evaluation sees its condition false: until then it is
*unavailable*, decided as if its condition did not hold.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from rules.catalog import OWNER, Catalog, TagRule
from rules.expr import Context
from rules.facts import FACTS, window_deadline
from state.customer import CustomerState, Outcome, RejectedEvent, TagState, apply_event, settle
from state.events import Event

TIMER = "timer"
EVENT = "event"
CATALOG = "catalog"
EXPIRED = "expired"
"""Reason key of a change that removes a tag because its validity period ended."""


@dataclass(slots=True)  # not frozen: see below
class TagChange:
    """One transition of one customer in one dimension (SPEC section 3, ``tag-changes``).

    Never changed once made, but not a frozen dataclass: that sets each field through
    ``object.__setattr__``, which made a change cost about 1 us to build, three times a plain one
    (an event makes about one). Nothing else changes: its dict field made it unhashable already."""

    customer_id: str
    seq: int
    dimension: str
    from_tag: str | None
    to_tag: str | None
    rule_id: str
    catalog_version: str
    trigger: str
    event_id: str | None
    effective_at: int
    reason: dict[str, object]

    @property
    def change_id(self) -> str:
        return f"{self.customer_id}:{self.seq}"


@dataclass(frozen=True, slots=True)
class Task:
    """A to-do for a person, caused by a change (SPEC section 3, ``tasks``)."""

    task_id: str
    customer_id: str
    assignee: str
    title: str
    kind: str
    rule_id: str
    change_id: str
    due_at: int
    created_at: int


@dataclass(slots=True)
class Result:
    """What processing one event or one deadline produced."""

    changes: list[TagChange] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)
    outcome: Outcome | None = None  # None when no event was involved
    rejected: RejectedEvent | None = None


def process_event(catalog: Catalog, state: CustomerState, event: Event, now: int) -> Result:
    """Fire the customer's due deadlines, apply the event, evaluate, and schedule the next deadline.

    A rejected event (e.g. a refund of an unknown order) leaves the state as the deadlines left it
    and is returned in ``result.rejected``, for the caller to dead-letter.
    """
    result = fire_deadlines(catalog, state, now)
    try:
        result.outcome = apply_event(state, event, now)
    except RejectedEvent as rejected:
        result.rejected = rejected
        return result
    if result.outcome is Outcome.APPLIED:
        # A customer evaluated before under this catalog holds exactly the tags decided then, and
        # no deadline lies between then and now: only what this event can move needs deciding.
        # Validity keeps this true: an expiry is a deadline (and deadlines decide everything), and
        # an expired tag's condition, which alone can make it available again, moves only with
        # its dimension.
        moved = catalog.moved_by.get(type(event)) if state.catalog_version == catalog.version else None
        # An event that can move no dimension (a profile update, when no condition reads the
        # profile) would decide nothing, move nothing, and leave ``state.expired`` as it is (it
        # holds only tags this catalog limits: the evaluation that added them removed the others).
        if moved is None or moved:
            _evaluate(catalog, state, now, EVENT, event.event_id, event.occurred_at, result, moved)
    state.next_deadline = next_deadline(catalog, state, now)
    return result


def fire_deadlines(catalog: Catalog, state: CustomerState, until: int) -> Result:
    """Evaluate the customer at each of its deadlines up to ``until``, in order."""
    result = Result()
    while state.next_deadline is not None and state.next_deadline <= until:
        moment = state.next_deadline
        settle(state, moment)
        _evaluate(catalog, state, moment, TIMER, None, moment, result)
        state.next_deadline = next_deadline(catalog, state, moment)
    return result


def reevaluate(catalog: Catalog, state: CustomerState, now: int) -> Result:
    """Evaluate under a (new) catalog: changes carry ``trigger: catalog``."""
    result = Result()
    _evaluate(catalog, state, now, CATALOG, None, now, result)
    state.next_deadline = next_deadline(catalog, state, now)
    return result


def decide_tags(
    catalog: Catalog, state: CustomerState, now: int, only: frozenset[str] | None = None
) -> tuple[dict[str, object], Context]:
    """Each dimension's tags at ``now``: a tag name or None (exclusive), a frozenset otherwise.

    An exclusive dimension takes its first tag whose condition holds, in catalog order. A tag that
    is ``unavailable`` at ``now`` is never taken. With ``only``, the other dimensions are taken as
    the customer holds them.
    """
    tags, ctx, _ = _decide(catalog, state, now, only, now)
    return tags, ctx


def _decide(
    catalog: Catalog,
    state: CustomerState,
    now: int,
    only: frozenset[str] | None,
    since: int,
    holding: dict[str, list[str]] | None = None,
) -> tuple[dict[str, object], Context, set[str]]:
    """``decide_tags`` for tags entered now being held from ``since`` (an event's own time, which
    may be long past). A tag whose validity would already be over at ``now`` is not entered: it is
    returned as *overdue*, to be remembered as expired, the state on-time processing would have
    left. Entering it would leave a held tag past its expiry with no deadline to remove it.
    ``holding`` is ``_holding(state)``, when the caller has it already."""
    tags: dict[str, object] = {}
    ctx = Context(state, now, tags)
    barred = unavailable(catalog, state, now)
    overdue: set[str] = set()
    for dimension in catalog.dimensions:
        if only is not None and dimension.name not in only:
            if holding is None:
                holding = _holding(state)
            held = holding.get(dimension.name, [])
            tags[dimension.name] = (held[0] if held else None) if dimension.exclusive else frozenset(held)
        elif dimension.exclusive:
            tags[dimension.name] = None
            for tag in dimension.tags:
                # The condition first: it is what usually fails, and evaluating it changes nothing.
                if tag.condition.test(ctx) and _enters(tag, state, barred, since, now, overdue):
                    tags[dimension.name] = tag.name
                    break
        else:
            entered = []  # a loop, not a comprehension: one function call less per dimension
            for tag in dimension.tags:
                if tag.condition.test(ctx) and _enters(tag, state, barred, since, now, overdue):
                    entered.append(tag.name)
            tags[dimension.name] = frozenset(entered)
    return tags, ctx, overdue


def _enters(tag: TagRule, state: CustomerState, barred: frozenset[str], since: int, now: int,
            overdue: set[str]) -> bool:
    """Whether a tag whose condition holds is entered (or kept); one already overdue when entered
    is added to ``overdue`` instead."""
    if tag.name in barred:
        return False
    if tag.valid_for is not None and tag.name not in state.tags and since + tag.valid_for <= now:
        overdue.add(tag.name)
        return False
    return True


def unavailable(catalog: Catalog, state: CustomerState, now: int) -> frozenset[str]:
    """Tags the customer cannot hold at ``now`` whatever their conditions say: held tags whose
    validity has ended, and expired tags not qualified again (while the catalog limits them)."""
    if not catalog.valid_for:
        return _NONE
    awaiting = {tag for tag in state.expired if tag in catalog.valid_for}
    return expired_at(catalog, state, now) | awaiting


def expired_at(catalog: Catalog, state: CustomerState, now: int) -> frozenset[str]:
    """Held tags whose validity period has ended at ``now`` (``since + valid_for <= now``)."""
    if not catalog.valid_for:
        return _NONE
    return frozenset(tag for tag, end in _validity_ends(catalog, state) if end <= now)


_NONE: frozenset[str] = frozenset()


def _validity_ends(catalog: Catalog, state: CustomerState) -> Iterator[tuple[str, int]]:
    """Each held tag the catalog limits, with the moment it expires."""
    limits = catalog.valid_for
    if limits:
        for tag, held in state.tags.items():
            if tag in limits:
                yield tag, held.since + limits[tag]


def _holding(state: CustomerState) -> dict[str, list[str]]:
    """The tags the customer holds, per dimension, in name order."""
    holding: dict[str, list[str]] = {}
    if not state.tags:
        return holding
    for tag, held_tag in sorted(state.tags.items()):
        holding.setdefault(held_tag.dimension, []).append(tag)
    return holding


def next_deadline(catalog: Catalog, state: CustomerState, now: int) -> int | None:
    """The earliest moment after ``now`` at which a condition of the catalog can change."""
    candidates: list[int] = []
    _age_flips(catalog, state, now, candidates)
    _window_exits(catalog, state, now, candidates)
    for fact, values in catalog.calendar.items():  # days_to_birthday: local midnights
        changes = FACTS[fact].changes
        assert changes is not None, "a calendar fact says when it changes"
        moment = changes(FACTS[fact].get(state), now, catalog.zone, values)
        if moment is not None and moment > now:
            candidates.append(moment)
    if catalog.valid_for:
        candidates += [end for _, end in _validity_ends(catalog, state) if end > now]
    return min(candidates) if candidates else None


def _age_flips(catalog: Catalog, state: CustomerState, now: int, candidates: list[int]) -> None:
    """Adds, per time fact, the first moment after ``now`` an ``age(t) OP d`` comparison flips."""
    for time_of, durations in catalog.deadline_ages:
        moment = time_of(state)
        if isinstance(moment, int):
            for duration in durations:  # shortest first: the first flip still ahead is the earliest
                if moment + duration > now:
                    candidates.append(moment + duration)
                    break


def _window_exits(catalog: Catalog, state: CustomerState, now: int, candidates: list[int]) -> None:
    """Adds, per window length, the next moment an element leaves the window."""
    for elements, lengths in catalog.deadline_windows:
        items = elements(state)
        if items:  # most customers have no order, or no follow-up, in their state
            for length in lengths:
                moment = window_deadline(items, now, length)
                if moment is not None:
                    candidates.append(moment)


def _evaluate(
    catalog: Catalog,
    state: CustomerState,
    now: int,
    trigger: str,
    event_id: str | None,
    effective_at: int,
    result: Result,
    only: frozenset[str] | None = None,
) -> None:
    holding = _holding(state)  # the tags held before this evaluation moves any
    decided, ctx, overdue = _decide(catalog, state, now, only, effective_at, holding)
    ending = expired_at(catalog, state, now)
    for dimension_name, from_tag, to_tag in _moves(catalog, state, decided, only, holding):
        change = _change(
            catalog, state, ctx, dimension_name, from_tag, to_tag, trigger, event_id, effective_at,
            expired=from_tag in ending,
        )
        result.changes.append(change)
        if to_tag is not None:
            result.tasks += _tasks(catalog, catalog.tags[to_tag], state, change)
    if ending:
        state.expired |= {tag for tag in ending if tag not in state.tags}  # the expiries the moves made
    if overdue:
        state.expired |= overdue
    _requalify(catalog, state, ctx, only)
    state.catalog_version = catalog.version


def _moves(
    catalog: Catalog,
    state: CustomerState,
    decided: dict[str, object],
    only: frozenset[str] | None,
    holding: dict[str, list[str]],
) -> list[tuple[str, str | None, str | None]]:
    """(dimension, from, to) for every difference between the held (``holding``, as
    ``_holding`` gives them) and the decided tags."""
    moves: list[tuple[str, str | None, str | None]] = []
    for dimension in catalog.dimensions:
        if only is not None and dimension.name not in only:
            continue  # decided as held: nothing moves
        held = holding.get(dimension.name, [])
        value = decided[dimension.name]
        if dimension.exclusive:
            target = value if isinstance(value, str) else None
            current = held[0] if held else None
            if current != target:
                moves.append((dimension.name, current, target))
        elif held or value:  # most customers hold, and are decided, no tag of most such dimensions
            wanted = value if isinstance(value, frozenset) else frozenset()
            moves += [(dimension.name, tag, None) for tag in held if tag not in wanted]
            moves += [(dimension.name, None, tag) for tag in sorted(wanted) if tag not in held]
    if not catalog.dimension_names.issuperset(holding):  # held tags of a dimension the catalog no longer has
        for tag, held_tag in sorted(state.tags.items()):
            if held_tag.dimension not in catalog.dimension_names:
                moves.append((held_tag.dimension, tag, None))
    return moves


def _requalify(catalog: Catalog, state: CustomerState, ctx: Context, only: frozenset[str] | None) -> None:
    """Forget the expired tags whose condition this evaluation saw false (they may be entered again
    once it holds), and those the catalog no longer limits or no longer has."""
    if state.expired:
        state.expired = {tag for tag in state.expired if _still_awaiting(catalog.tags.get(tag), ctx, only)}


def _still_awaiting(rule: TagRule | None, ctx: Context, only: frozenset[str] | None) -> bool:
    if rule is None or rule.valid_for is None:
        return False
    if only is not None and rule.dimension not in only:
        return True  # not decided now: its condition has not changed since it was last seen true
    return rule.condition(ctx)


def _change(
    catalog: Catalog,
    state: CustomerState,
    ctx: Context,
    dimension: str,
    from_tag: str | None,
    to_tag: str | None,
    trigger: str,
    event_id: str | None,
    effective_at: int,
    *,
    expired: bool = False,
) -> TagChange:
    rule: TagRule | None = catalog.tags.get(to_tag or from_tag or "")
    reason = rule.condition.reason(ctx) if rule else {}
    state.seq += 1
    if from_tag is not None:
        del state.tags[from_tag]
    if to_tag is not None:
        state.tags[to_tag] = TagState(dimension, effective_at, state.seq)
    return TagChange(
        customer_id=state.customer_id,
        seq=state.seq,
        dimension=dimension,
        from_tag=from_tag,
        to_tag=to_tag,
        rule_id=rule.rule_id if rule else f"{dimension}.{from_tag}",
        catalog_version=catalog.version,
        trigger=trigger,
        event_id=event_id,
        effective_at=effective_at,
        reason={EXPIRED: True, **reason} if expired else reason,
    )


def _tasks(catalog: Catalog, rule: TagRule, state: CustomerState, change: TagChange) -> list[Task]:
    tasks = []
    for index, task in enumerate(rule.tasks):
        tasks.append(
            Task(
                task_id=f"{change.change_id}:{index}",
                customer_id=state.customer_id,
                assignee=resolve_assignee(task.assignee, state),
                title=task.title.get(catalog.language, next(iter(task.title.values()), "")),
                kind=task.kind,
                rule_id=rule.rule_id,
                change_id=change.change_id,
                due_at=change.effective_at + task.due,
                created_at=change.effective_at,
            )
        )
    return tasks


def resolve_assignee(assignee: str, state: CustomerState) -> str:
    """``owner``: the profile's owner rep, else the latest follow-up's rep, else ``unassigned``."""
    if assignee != OWNER:
        return assignee
    if state.owner_rep:
        return state.owner_rep
    if state.latest_followup is not None:
        return state.latest_followup.rep_id
    return "unassigned"
