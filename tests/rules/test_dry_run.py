"""Dry runs: what a catalog switch would do, counted from the very re-evaluation the switch runs."""

from __future__ import annotations

from pathlib import Path

from rules.catalog import Catalog, parse_catalog
from rules.dry_run import SAMPLES, DryRun, dry_run
from rules.engine import reevaluate
from tests.builders import Customer, day, default_catalog, order

DEFAULT = Path(__file__).resolve().parents[2] / "rules" / "default_catalog.yaml"


def looser() -> Catalog:
    """The default catalog with high value from a spend of 3000 instead of 5000."""
    return parse_catalog(DEFAULT.read_bytes().replace(b"spend(180d) > 5000", b"spend(180d) > 3000"), "looser.yaml")


def spender(name: str, amount: int) -> Customer:
    return Customer(*(order(day(n), amount, customer=name) for n in range(4)), customer_id=name)


def test_customers_entering_a_tag_with_a_task_count_that_task_and_are_sampled() -> None:
    customers = [spender(f"c{n:02d}", 1000) for n in range(8)] + [spender("rich", 2000)]
    result = dry_run(looser(), default_catalog(), [c.state for c in customers], day(4))
    high = result.tags["high_value"]
    assert (high.enter, high.leave, high.tasks) == (8, 0, 8)  # "rich" holds it under both catalogs
    assert high.enter_sample == [f"c{n:02d}" for n in range(SAMPLES)]
    assert result.tags["potential_high_value"].leave == 8 and result.tasks == 8
    assert result.tags["mature"].enter == 0  # a tag nobody moves in or out of is listed, as zeros


def test_the_counts_are_those_of_the_switch_itself() -> None:
    customers = [spender(f"c{n}", 900 + 100 * n) for n in range(6)]
    expected = [reevaluate(looser(), spender(c.state.customer_id, 900 + 100 * n).state, day(4))
                for n, c in enumerate(customers)]
    result = dry_run(looser(), default_catalog(), [c.state for c in customers], day(4))
    assert result.tasks == sum(len(r.tasks) for r in expected)
    assert result.tags["high_value"].enter == sum(c.to_tag == "high_value" for r in expected for c in r.changes)


def test_answers_of_two_workers_merge_into_one() -> None:
    first = dry_run(looser(), default_catalog(), [spender(f"b{n}", 1000).state for n in range(4)], day(4))
    second = dry_run(looser(), default_catalog(), [spender(f"a{n}", 1000).state for n in range(4)], day(4))
    first.add(DryRun.from_document(second.document()))
    assert first.customers == 8 and first.tags["high_value"].enter == 8
    assert first.tags["high_value"].enter_sample == ["a0", "a1", "a2", "a3", "b0"]
