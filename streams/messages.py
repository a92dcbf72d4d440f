"""The wire format of the outputs (SPEC section 3): tag changes, tasks and dead letters as JSON.

The engine works with dataclasses and integer microseconds; this is the one place that turns them
into the documented JSON, so the worker and ``tagengine replay`` print exactly the same thing.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

import orjson

from rules.engine import TagChange, Task
from state.times import format_moment, format_timestamp, parse_timestamp


def change_message(change: TagChange, emitted_at: int) -> dict[str, object]:
    return {
        "change_id": change.change_id,
        "customer_id": change.customer_id,
        "seq": change.seq,
        "dimension": change.dimension,
        "from": change.from_tag,
        "to": change.to_tag,
        "rule_id": change.rule_id,
        "catalog_version": change.catalog_version,
        "trigger": change.trigger,
        "event_id": change.event_id,
        "effective_at": format_moment(change.effective_at),  # an event's time: seldom seen twice
        "emitted_at": format_timestamp(emitted_at),
        "reason": change.reason,
    }


def change_from_message(message: dict[str, object]) -> TagChange:
    """A ``tag-changes`` message read back (to rebuild histories and audiences from the topic)."""
    reason = message["reason"]
    return TagChange(
        customer_id=str(message["customer_id"]),
        seq=int(str(message["seq"])),
        dimension=str(message["dimension"]),
        from_tag=None if message["from"] is None else str(message["from"]),
        to_tag=None if message["to"] is None else str(message["to"]),
        rule_id=str(message["rule_id"]),
        catalog_version=str(message["catalog_version"]),
        trigger=str(message["trigger"]),
        event_id=None if message["event_id"] is None else str(message["event_id"]),
        effective_at=parse_timestamp(str(message["effective_at"])),
        reason=dict(reason) if isinstance(reason, dict) else {},
    )


def task_message(task: Task) -> dict[str, object]:
    return {
        "task_id": task.task_id,
        "customer_id": task.customer_id,
        "assignee": task.assignee,
        "title": task.title,
        "kind": task.kind,
        "rule_id": task.rule_id,
        "change_id": task.change_id,
        "due_at": format_timestamp(task.due_at),
        "created_at": format_timestamp(task.created_at),
    }


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An input record the engine could not use, with where it came from and why."""

    source_topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    error: str
    reason: str
    received_at: int

    def message(self) -> dict[str, object]:
        key, key_encoding = _text(self.key)
        value, value_encoding = _text(self.value)
        return {
            "source_topic": self.source_topic,
            "partition": self.partition,
            "offset": self.offset,
            "key": key,
            "key_encoding": key_encoding,
            "value": value,
            "value_encoding": value_encoding,
            "error": self.error,
            "reason": self.reason,
            "received_at": format_timestamp(self.received_at),
        }


DEAD_LETTER_LIMIT = 900_000
"""Bytes a dead letter may take as JSON: under Kafka's 1 MB default record limit, with room for
the record's key and headers. A larger raw value is cut (see ``dead_letter_bytes``)."""
KEPT_PREFIX = 64 * 1024
"""Raw bytes of an oversized key or value a truncated dead letter keeps."""


def dead_letter_bytes(letter: DeadLetter, limit: int = DEAD_LETTER_LIMIT) -> bytes:
    """The dead letter as JSON, at most ``limit`` bytes.

    Escaping can make JSON several times larger than the raw record (a control character becomes
    six bytes, non-UTF-8 bytes grow by a third in base64), so a record that Kafka accepted on an
    input topic may not fit on the dead-letter topic. Then the letter keeps the first 64 KiB of
    the raw key and value, with their full length and SHA-256, and says ``truncated: true``:
    nothing vanishes, and the original can be found again by its topic, partition and offset.
    """
    encoded = dumps(letter.message())
    if len(encoded) <= limit:
        return encoded
    message = letter.message()
    for field, raw in (("key", letter.key), ("value", letter.value)):
        if raw is not None and len(raw) > KEPT_PREFIX:
            message[field], message[f"{field}_encoding"] = _text(raw[:KEPT_PREFIX])
            message[f"{field}_length"] = len(raw)
            message[f"{field}_sha256"] = hashlib.sha256(raw).hexdigest()
    message["error"] = str(message["error"])[:KEPT_PREFIX]
    message["truncated"] = True
    return dumps(message)


def _text(raw: bytes | None) -> tuple[str | None, str | None]:
    """The raw text and "utf-8", or base64 and "base64" when it is not UTF-8 (SPEC section 2)."""
    if raw is None:
        return None, None
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode(), "base64"


def dumps(message: dict[str, object]) -> bytes:
    return orjson.dumps(message)
