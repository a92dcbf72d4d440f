"""Output messages: dead letters always fit on their topic; tag changes read back as they were."""

from __future__ import annotations

import hashlib

import orjson

from rules.engine import TagChange
from streams.messages import (
    DEAD_LETTER_LIMIT,
    KEPT_PREFIX,
    DeadLetter,
    change_from_message,
    change_message,
    dead_letter_bytes,
    dumps,
)


def letter(value: bytes | None, key: bytes | None = b"c1") -> DeadLetter:
    return DeadLetter("orders", 3, 42, key, value, "not JSON", "malformed_json", 1_795_000_000_000_000)


def test_a_small_dead_letter_keeps_the_whole_raw_value() -> None:
    message = orjson.loads(dead_letter_bytes(letter(b"{oops")))
    assert message["value"] == "{oops" and "truncated" not in message


def test_control_characters_that_escape_past_the_limit_are_cut_with_length_and_hash() -> None:
    raw = b"\x01" * 200_000  # 1.2 MB once escaped as JSON
    encoded = dead_letter_bytes(letter(raw))
    message = orjson.loads(encoded)
    assert len(encoded) <= DEAD_LETTER_LIMIT
    assert message["truncated"] is True and message["value_length"] == len(raw)
    assert message["value_sha256"] == hashlib.sha256(raw).hexdigest()
    assert message["value"] == raw[:KEPT_PREFIX].decode()
    assert (message["source_topic"], message["partition"], message["offset"]) == ("orders", 3, 42)


def test_a_megabyte_of_binary_is_cut_and_kept_as_base64() -> None:
    raw = bytes(range(256)) * 4096  # 1 MiB, not UTF-8: 1.4 MB in base64
    message = orjson.loads(dead_letter_bytes(letter(raw, key=b"\xff" * 300_000)))
    assert message["truncated"] is True and message["value_encoding"] == "base64"
    assert message["value_length"] == len(raw) and message["key_length"] == 300_000


def test_a_tag_change_message_reads_back_as_the_change_it_was() -> None:
    change = TagChange("c1", 4, "value", "standard", "high_value", "value.high_value", "v1", "event", "e9",
                       1_795_000_000_123_456, {"spend_180d": "3200.00", "paid_orders_180d": 2})
    assert change_from_message(orjson.loads(dumps(change_message(change, 1_795_000_001_000_000)))) == change
