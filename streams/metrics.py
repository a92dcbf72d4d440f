"""Prometheus metrics of one worker (``tagengine_`` prefix), in a registry of its own.

A registry per worker object (rather than prometheus-client's global one) lets tests run several
workers in one process and read each one's numbers.
"""

from __future__ import annotations

import collections

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from connectors.kafka_admin import TICKS
from rules.engine import TagChange, Task


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events_in = Counter("tagengine_events_in", "Input records read, per topic", ["topic"], registry=r)
        self.events_applied = Counter(
            "tagengine_events_applied", "Events applied to customer state, per topic", ["topic"], registry=r
        )
        self.invalid = Counter(
            "tagengine_invalid_events", "Records sent to dead letters, per reason", ["reason"], registry=r
        )
        self.duplicates = Counter("tagengine_duplicate_events", "Re-delivered events ignored", registry=r)
        self.rerouted = Counter(
            "tagengine_rerouted_events", "Records forwarded to the partition owning their customer", registry=r
        )
        self.tag_changes = Counter(
            "tagengine_tag_changes", "Tag changes published", ["dimension", "tag", "trigger"], registry=r
        )
        self.tasks = Counter("tagengine_tasks", "Tasks published, per rule", ["rule_id"], registry=r)
        self.batch_seconds = Histogram(
            "tagengine_batch_seconds",
            "Time to process one batch of records",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.latency = Histogram(
            "tagengine_processing_latency_seconds",
            "Input record timestamp to outputs handed to the producer",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.consumer_lag = Gauge(
            "tagengine_consumer_lag", "Records not yet read, per input partition", ["topic", "partition"], registry=r
        )
        self.projection_lag = Gauge(
            "tagengine_projection_lag_seconds", "Age of the oldest tag change not yet in Redis", registry=r
        )
        self.projection_pending = Gauge(
            "tagengine_projection_pending", "Customers whose latest tags are not yet in Redis", registry=r
        )
        self.projection_errors = Counter(
            "tagengine_projection_errors", "Failed writes to Redis (retried)", registry=r
        )
        self.stalls = Counter(
            "tagengine_partition_stalls", "Input partitions found stuck after a rebalance and resumed", registry=r
        )
        self.fire_delay = Histogram(
            "tagengine_deadline_fire_delay_seconds",
            "How late a deadline fired: fired at minus the deadline",
            buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1, 2, 5, 10, 30, 60, 300, 3600),
            registry=r,
        )
        self.pending_deadlines = Gauge(
            "tagengine_pending_deadlines", "Customers of this worker's partitions with a deadline", registry=r
        )
        self.customers = Gauge(
            "tagengine_customers", "Customers in this worker's partitions", registry=r
        )
        self.catalog_switches = Counter("tagengine_catalog_switches", "Catalog changes applied", registry=r)
        self.reevaluated = Counter(
            "tagengine_catalog_reevaluated", "Customers re-evaluated under a new catalog", registry=r
        )
        self.stale_customers = Gauge(
            "tagengine_catalog_stale_customers", "Customers still to re-evaluate under the new catalog", registry=r
        )

    def count_outputs(self, changes: list[TagChange], tasks: list[Task]) -> None:
        # Tallied first: a labelled counter's lookup and increment take a lock each, and a batch
        # holds hundreds of changes but a few label sets.
        tally = collections.Counter((c.dimension, c.to_tag or c.from_tag or "", c.trigger) for c in changes)
        for labels, count in tally.items():
            self.tag_changes.labels(*labels).inc(count)
        for rule_id, count in collections.Counter(task.rule_id for task in tasks).items():
            self.tasks.labels(rule_id).inc(count)

    def totals(self) -> dict[str, float]:
        """Running totals for the cockpit, which turns them into rates between two looks."""
        events = sum(m.value for metric in self.events_in.collect() for m in metric.samples
                     if m.name.endswith("_total") and m.labels.get("topic") != TICKS)
        return {
            "events_in": events,
            "tag_changes": _total(self.tag_changes),
            "tasks": _total(self.tasks),
            "dead_letters": _total(self.invalid),
        }

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _total(counter: Counter) -> float:
    return sum(m.value for metric in counter.collect() for m in metric.samples if m.name.endswith("_total"))
