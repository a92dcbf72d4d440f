"""A dry run of a candidate catalog: what switching to it would do to the customers, doing nothing.

Each customer is re-evaluated under the candidate exactly as the switch will (``reevaluate``, on a
copy the caller hands over), so the counts are those of the changes and tasks the switch would
publish. Per tag of either catalog: how many customers enter and leave it, how many tasks those
entries create, and a few sample customer ids (the smallest, so that answers from several
workers merge into the same sample).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from rules.catalog import Catalog
from rules.engine import reevaluate
from state.customer import CustomerState

SAMPLES = 5


@dataclass(slots=True)
class TagMoves:
    enter: int = 0
    leave: int = 0
    tasks: int = 0
    enter_sample: list[str] = field(default_factory=list)
    leave_sample: list[str] = field(default_factory=list)

    def add(self, other: TagMoves) -> None:
        self.enter += other.enter
        self.leave += other.leave
        self.tasks += other.tasks
        self.enter_sample = sorted(self.enter_sample + other.enter_sample)[:SAMPLES]
        self.leave_sample = sorted(self.leave_sample + other.leave_sample)[:SAMPLES]


@dataclass(slots=True)
class DryRun:
    customers: int = 0
    tags: dict[str, TagMoves] = field(default_factory=dict)

    @property
    def tasks(self) -> int:
        return sum(moves.tasks for moves in self.tags.values())

    def add(self, other: DryRun) -> None:
        self.customers += other.customers
        for tag, moves in other.tags.items():
            self.tags.setdefault(tag, TagMoves()).add(moves)

    def document(self) -> dict[str, object]:
        return {
            "customers": self.customers,
            "tasks": self.tasks,
            "tags": {
                tag: {"enter": m.enter, "leave": m.leave, "tasks": m.tasks, "enter_sample": m.enter_sample,
                      "leave_sample": m.leave_sample}
                for tag, m in self.tags.items()
            },
        }

    @classmethod
    def from_document(cls, document: dict[str, object]) -> DryRun:
        tags = document.get("tags")
        return cls(
            customers=int(str(document.get("customers", 0))),
            tags={tag: TagMoves(**moves) for tag, moves in tags.items()} if isinstance(tags, dict) else {},
        )


def dry_run(candidate: Catalog, current: Catalog, states: Iterable[CustomerState], now: int) -> DryRun:
    """What switching from ``current`` to ``candidate`` at ``now`` would do to these customers.

    The states are changed (re-evaluated): pass copies. Every tag of both catalogs is listed, so a
    tag nobody would hold shows as zeros rather than missing.
    """
    result = DryRun(tags={tag: TagMoves() for tag in (*candidate.tags, *current.tags)})
    for state in states:
        result.customers += 1
        moved = reevaluate(candidate, state, now)
        entered = {}
        for change in moved.changes:
            if change.to_tag is not None:
                entered[change.change_id] = change.to_tag
                _sample(result.tags.setdefault(change.to_tag, TagMoves()), state.customer_id, entering=True)
            if change.from_tag is not None:
                _sample(result.tags.setdefault(change.from_tag, TagMoves()), state.customer_id, entering=False)
        for task in moved.tasks:
            result.tags[entered[task.change_id]].tasks += 1
    return result


def _sample(moves: TagMoves, customer_id: str, entering: bool) -> None:
    if entering:
        moves.enter += 1
        sample = moves.enter_sample
    else:
        moves.leave += 1
        sample = moves.leave_sample
    if len(sample) < SAMPLES or customer_id < sample[-1]:
        sample.append(customer_id)
        sample.sort()
        del sample[SAMPLES:]
