"""One batch of records through the agent's logic, without Kafka: the same code the worker runs."""

from __future__ import annotations

from collections import Counter

import orjson

from connectors.kafka_admin import TICKS
from connectors.partitioning import partition_for
from rules.catalog import load_default_catalog
from rules.engine import TagChange
from state.cache import StateCache
from state.codec import audience_key, decode_step, history_key, history_prefix, is_customer_key, peek_deadline
from state.history import KEEP_STEPS, Interval, fold
from state.times import DAY, format_timestamp
from streams.processor import BatchProcessor, Record, _append_step

PARTITIONS = 4
NOW = 1_795_000_000_000_000


class Table(dict[tuple[int, bytes], bytes]):
    """A stand-in for the Faust table: (partition, key) -> value."""

    def load(self, partition: int, key: bytes) -> bytes | None:
        return self.get((partition, key))

    def write(self, states: dict[int, dict[bytes, bytes | None]]) -> None:
        for partition, entries in states.items():
            for key, value in entries.items():
                if value is None:
                    self.pop((partition, key), None)
                else:
                    self[(partition, key)] = value

    def entries(self) -> list[tuple[bytes, bytes]]:
        return [(key, value) for (_, key), value in self.items()]


def login(customer: str, event_id: str, at: int = NOW) -> Record:
    value = {"event_id": event_id, "customer_id": customer, "occurred_at": format_timestamp(at)}
    return Record("logins", partition_for(customer.encode(), PARTITIONS), 0, customer.encode(), orjson.dumps(value))


def processor(table: Table) -> BatchProcessor:
    return BatchProcessor(load_default_catalog(), PARTITIONS, table.load)


def test_a_customer_touched_twice_in_a_batch_is_written_once() -> None:
    table = Table()
    batch = processor(table).process([login("a", "e1"), login("a", "e2", NOW + 1)], NOW + 1)
    assert sum(key == b"a" for states in batch.states.values() for key in states) == 1
    assert batch.applied == {"logins": 2}
    assert [(c.dimension, c.to_tag) for c in batch.changes] == [("lifecycle", "prospect"), ("activity", "active")]


def test_a_record_on_the_wrong_partition_is_rerouted_not_applied() -> None:
    record = login("a", "e1")
    wrong = Record(record.topic, (record.partition + 1) % PARTITIONS, 7, None, record.value)
    batch = processor(Table()).process([wrong], NOW)
    assert batch.reroutes == [(wrong, "a", record.partition)] and not batch.states and not batch.changes


def test_invalid_and_rejected_records_become_dead_letters_and_the_rest_goes_on() -> None:
    refund = {"event_id": "r", "customer_id": "b", "occurred_at": format_timestamp(NOW), "order_id": "x",
              "amount": 1, "status": "refunded"}
    records = [
        Record("orders", 0, 1, b"b", b"{not json"),
        Record("orders", partition_for(b"b", PARTITIONS), 2, b"b", orjson.dumps(refund)),
        login("b", "ok"),
    ]
    batch = BatchProcessor(load_default_catalog(), PARTITIONS, Table().load, topic_prefix="x-").process(records, NOW)
    assert [(d.reason, d.source_topic, d.offset) for d in batch.dead_letters] == [
        ("malformed_json", "x-orders", 1), ("refund_unknown_order", "x-orders", 2),
    ]
    assert batch.applied == {"logins": 1}


def test_a_tick_fires_the_due_deadlines_of_its_partition_at_their_own_time() -> None:
    table = Table()
    engine = processor(table)
    first = engine.process([login("a", "e1")], NOW)
    table.write(first.states)
    home = partition_for(b"a", PARTITIONS)
    assert engine.deadlines[home].earliest() == NOW + 30 * DAY
    tick = Record(TICKS, home, 0, None, b"{}")
    assert engine.process([tick], NOW + 29 * DAY).changes == []
    fired = engine.process([tick], NOW + 31 * DAY)
    assert [(c.to_tag, c.trigger, c.effective_at) for c in fired.changes] == [("silent", "timer", NOW + 30 * DAY)]
    assert fired.fire_delays == [DAY] and fired.ticked == {home}


def test_the_index_is_rebuilt_from_the_table_for_owned_partitions_only() -> None:
    table = Table()
    engine = processor(table)
    table.write(engine.process([login(c, f"e-{c}") for c in "abcdefgh"], NOW).states)
    owned = {partition_for(b"a", PARTITIONS)}
    fresh = processor(table)
    count = fresh.rebuild(owned, table.entries())
    expected = sum(1 for c in "abcdefgh" if partition_for(c.encode(), PARTITIONS) in owned)
    assert count == expected and set(fresh.deadlines) == owned
    assert all(peek_deadline(v) == NOW + 30 * DAY for (_, key), v in table.items() if is_customer_key(key))


def test_a_cached_customer_is_not_read_from_the_table_again() -> None:
    table = Table()
    engine = BatchProcessor(load_default_catalog(), PARTITIONS, table.load, cache=StateCache(10))
    table.write(engine.process([login("a", "e1")], NOW).states)
    table.clear()  # were the state read from the table, "a" would be new again
    second = engine.process([login("a", "e2", NOW + 1)], NOW + 1)
    assert second.changes == [] and second.applied == {"logins": 1}


def test_customers_of_partitions_no_longer_owned_leave_the_cache() -> None:
    cache = StateCache(10)
    engine = BatchProcessor(load_default_catalog(), PARTITIONS, Table().load, cache=cache)
    engine.process([login(c, f"e-{c}") for c in "abcdefgh"], NOW)
    owned = {partition_for(b"a", PARTITIONS)}
    engine.rebuild(owned, iter(()))
    assert len(cache) == sum(1 for c in "abcdefgh" if partition_for(c.encode(), PARTITIONS) in owned)


def test_a_batch_with_changes_appends_their_steps_to_the_history_and_counts_the_audience() -> None:
    table = Table()
    engine = processor(table)
    home = partition_for(b"a", PARTITIONS)
    table.write(engine.process([login("a", "e1")], NOW).states)
    assert [(i.tag, i.left) for i in history(table, home, "a")] == [("active", None), ("prospect", None)]
    assert engine.audiences[home].holders == {"prospect": 1, "active": 1}
    table.write(engine.process([Record(TICKS, home, 0, None, b"{}")], NOW + 31 * DAY).states)
    assert [(i.tag, i.left.trigger if i.left else None) for i in history(table, home, "a")] == [
        ("silent", None), ("active", "timer"), ("prospect", None),
    ]
    assert table.load(home, audience_key(home, NOW // DAY)) is not None  # the day "a" became active


def test_a_step_beyond_what_the_history_keeps_is_deleted_with_the_new_one() -> None:
    writes: dict[bytes, bytes | None] = {}
    old = TagChange("a", KEEP_STEPS + 5, "activity", "active", "silent", "activity.silent", "v", "timer", None, NOW, {})
    _append_step(writes, old)
    assert writes[history_key("a", 5)] is None and writes[history_key("a", KEEP_STEPS + 5)] is not None


def history(table: Table, partition: int, customer: str) -> list[Interval]:
    prefix = history_prefix(customer)
    return fold(decode_step(v) for (p, k), v in table.items() if p == partition and k.startswith(prefix))


def test_holders_and_audience_figures_are_restored_from_the_table() -> None:
    table = Table()
    engine = processor(table)
    table.write(engine.process([login(c, f"e-{c}") for c in "abcdefgh"], NOW).states)
    fresh = processor(table)
    fresh.rebuild(set(range(PARTITIONS)), table.entries())
    for partition, audience in engine.audiences.items():
        assert fresh.audiences[partition].holders == audience.holders
        assert fresh.audiences[partition].series("active", NOW - DAY, NOW + DAY, DAY) == audience.series(
            "active", NOW - DAY, NOW + DAY, DAY)


def profile(customer: str, event_id: str, channel: str) -> Record:
    value = {"event_id": event_id, "customer_id": customer, "occurred_at": format_timestamp(NOW),
             "source_channel": channel}
    return Record("customers", partition_for(customer.encode(), PARTITIONS), 0, customer.encode(), orjson.dumps(value))


def test_customers_are_counted_per_source_channel_as_profiles_arrive_and_move() -> None:
    table = Table()
    engine = processor(table)
    table.write(engine.process([login("a", "e1"), profile("b", "p1", "web"), login("c", "e2")], NOW).states)
    table.write(engine.process([profile("a", "p2", "app"), profile("b", "p3", "app")], NOW).states)
    total = sum((census.channels for census in engine.censuses.values()), Counter())
    assert sum(census.customers for census in engine.censuses.values()) == 3
    assert +total == Counter({"app": 2, "": 1})
    fresh = processor(table)
    fresh.rebuild(set(range(PARTITIONS)), table.entries())
    assert +sum((census.channels for census in fresh.censuses.values()), Counter()) == +total
