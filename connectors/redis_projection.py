"""The Redis projection of the tag state (SPEC section 6): what other services read.

Layout (``prefix`` defaults to ``tagengine``)::

    HGETALL <prefix>:customer:<customer_id>  -> one field per tag held, value JSON
                                                {"dimension", "since", "rule_id", "seq"}
    SMEMBERS <prefix>:tag:<tag>              -> ids of the customers holding the tag
    GET <prefix>:seq:<customer_id>           -> the seq of the snapshot the two above show
    GET <prefix>:generation                  -> a random token set when the keys were first written

The projection writes *snapshots*: a customer's whole current tag set at its change counter
``seq`` (``CustomerState.tags`` / ``.seq``). A Lua script (EVALSHA; one call carries up to
``GROUP`` customers) compares each customer's stored seq and applies the snapshot only if it is
newer, setting the hash, adding the customer to the sets of the tags it holds and removing it from
the sets of the tags it lost, atomically for that customer. So applying
is idempotent and insensitive to order: a snapshot older than (or as old as) what Redis shows is
ignored, and *a write never overwrites a newer seq*. A customer left with no tags has no hash, but
keeps its seq key, so that a late older snapshot cannot bring its tags back.

The worker never waits for Redis: ``offer()`` is synchronous and only puts the snapshot into a
pending dict keyed by customer (a newer snapshot of a customer replaces the pending one, so a
burst of changes collapses into one write). A background loop (``start()`` / ``run()``) drains
the dict in pipelined batches; while Redis is down or failing it keeps the snapshots, counts the
error, backs off (capped exponential) and tries again, so nothing is lost and the projection
catches up when Redis returns. ``lag_seconds()`` says how far behind it is.

Memory: the pending dict holds at most one snapshot per customer, so it is bounded by the number
of customers of the worker's partitions, whatever ``max_pending`` says: ``max_pending`` is only
the level above which a warning is logged (dropping snapshots would leave Redis wrong until the
customer changes again). What is still pending when the worker stops (``close()`` flushes for a
few seconds) is lost; ``rebuild()`` (``tagengine redis-sync``) rewrites everything from the state.

Connection settings come with the URL, which redis-py parses: ``redis://:password@host:6379/0``,
``redis://user:password@host/0`` (ACL), ``rediss://host:6380/0`` for TLS (``ssl_ca_certs=...`` and
other redis-py options can be passed as keyword arguments).

The script touches the keys of the tag sets it computes, which is fine on a single Redis server
(and its replicas) but not on Redis Cluster, where the sets of one customer live in other slots.

Redis restarted empty (or flushed) loses the generation key with everything else. Every
``check_seconds`` the loop reads it; when it is missing (and this projection then sets it) or not
the token seen before, ``on_lost`` is called: the worker offers again the snapshots of every
customer it owns, and the projection is whole again without anyone running ``redis-sync``.

``offer()`` must be called on the event loop's thread (the Faust agent's), like everything here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from state.codec import decode_state
from state.customer import CustomerState, TagState
from state.times import format_timestamp

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "tagengine"
GROUP = 100  # customers per EVALSHA: a few milliseconds of Redis time at most

# Apply the snapshots of several customers, each only if newer than what Redis shows.
# ARGV[1] mode ("gt": only newer, "ge": also the same seq again, "force": always), ARGV[2..4] the
# key prefixes of the customer hashes, the seq keys and the tag sets; then per customer: its id,
# its seq, how many tags n, and n times tag, JSON value. Returns per customer 1 when applied, 0
# when Redis was as new or newer. The keys are computed here, not passed as KEYS: fine on one
# Redis server, not on Redis Cluster.
_APPLY = """
local mode, hashkey, seqkey, tagkey = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local out = {}
local i = 5
while i <= #ARGV do
  local customer, seq, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local first, last = i + 3, i + 2 + 2 * n
  i = last + 1
  local stored = tonumber(redis.call('GET', seqkey .. customer))
  local newer = tonumber(seq)
  if stored == nil or mode == 'force' or newer > stored or (mode == 'ge' and newer == stored) then
    local hash = hashkey .. customer
    local held = {}
    for j = first, last, 2 do held[ARGV[j]] = true end
    for _, tag in ipairs(redis.call('HKEYS', hash)) do
      if not held[tag] then
        redis.call('HDEL', hash, tag)
        redis.call('SREM', tagkey .. tag, customer)
      end
    end
    for j = first, last, 2 do
      redis.call('HSET', hash, ARGV[j], ARGV[j + 1])
      redis.call('SADD', tagkey .. ARGV[j], customer)
    end
    redis.call('SET', seqkey .. customer, seq)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
"""

# Forget a customer entirely (rebuild with delete_missing). KEYS[1] hash, KEYS[2] seq key;
# ARGV[1] the tag-set key prefix, ARGV[2] the customer id.
_FORGET = """
for _, tag in ipairs(redis.call('HKEYS', KEYS[1])) do
  redis.call('SREM', ARGV[1] .. tag, ARGV[2])
end
return redis.call('DEL', KEYS[1], KEYS[2])
"""

# Remove the members of one tag set whose hash does not hold the tag. KEYS[1] the set;
# ARGV[1] the customer-hash key prefix, ARGV[2] the tag, ARGV[3..] members to check.
_SWEEP = """
local removed = 0
for i = 3, #ARGV do
  if redis.call('HEXISTS', ARGV[1] .. ARGV[i], ARGV[2]) == 0 then
    removed = removed + redis.call('SREM', KEYS[1], ARGV[i])
  end
end
return removed
"""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A customer's whole tag set at change ``seq``: tag -> TagState(dimension, since, seq)."""

    customer_id: str
    seq: int
    tags: Mapping[str, TagState]

    @classmethod
    def of(cls, state: CustomerState) -> Snapshot:
        """From the live state (the tags are copied: the engine keeps changing the state)."""
        return cls(state.customer_id, state.seq, dict(state.tags))

    @classmethod
    def decode(cls, encoded: bytes) -> Snapshot:
        """From a state as the table stores it (``state.codec.encode_state``)."""
        return cls.of(decode_state(encoded))

    def fields(self) -> list[bytes | str]:
        """tag, JSON value, tag, JSON value, ... as the hash holds them."""
        out: list[bytes | str] = []
        for tag, held in self.tags.items():
            out.append(tag)
            out.append(
                orjson.dumps(
                    {
                        "dimension": held.dimension,
                        "since": format_timestamp(held.since),
                        "rule_id": f"{held.dimension}.{tag}",
                        "seq": held.seq,
                    }
                )
            )
        return out


class Keys:
    """The key layout under one prefix."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = prefix
        self.customer_prefix = f"{prefix}:customer:"
        self.tag_prefix = f"{prefix}:tag:"
        self.seq_prefix = f"{prefix}:seq:"

    def customer(self, customer_id: str) -> str:
        return self.customer_prefix + customer_id

    def tag(self, tag: str) -> str:
        return self.tag_prefix + tag

    @property
    def generation(self) -> str:
        return f"{self.prefix}:generation"

    def seq(self, customer_id: str) -> str:
        return self.seq_prefix + customer_id


def connect(url: str, **redis_options: Any) -> aioredis.Redis:
    """A client that fails fast: the projection's own loop does the retrying and the backing off.

    redis-py's default would retry a failing command 10 times for several seconds first.
    """
    options: dict[str, Any] = {
        "socket_timeout": 5.0,
        "socket_connect_timeout": 5.0,
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.02), 1),
    }
    options.update(redis_options)
    client: aioredis.Redis = aioredis.Redis.from_url(url, **options)
    return client


async def _apply(
    client: aioredis.Redis, script: AsyncScript, keys: Keys, snapshots: Sequence[Snapshot], mode: str
) -> list[Any]:
    """Per snapshot: 1 applied, 0 stale, or the exception that failed its group.

    One pipeline (no MULTI) of EVALSHAs of ``GROUP`` customers each: per-command overhead in
    redis-py, not Redis, is what limits the rate. The pipeline loads the script first when Redis
    does not know it (e.g. after a restart). A failing group may have applied some of its
    customers: applying again is harmless.
    """
    async with client.pipeline(transaction=False) as pipe:
        for start in range(0, len(snapshots), GROUP):
            args: list[bytes | str | int] = [mode, keys.customer_prefix, keys.seq_prefix, keys.tag_prefix]
            for snap in snapshots[start : start + GROUP]:
                args += (snap.customer_id, snap.seq, len(snap.tags), *snap.fields())
            await script(args=args, client=pipe)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
    results: list[Any] = []
    for start, reply in zip(range(0, len(snapshots), GROUP), replies, strict=True):
        size = min(GROUP, len(snapshots) - start)
        results += [reply] * size if isinstance(reply, Exception) else reply
    return results


_Entry = tuple[Snapshot, float]  # the snapshot, and since when the customer has been pending


class RedisProjection:
    """Keeps Redis up to date with the snapshots offered, in the background, never blocking."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        max_pending: int = 1_000_000,
        batch: int = 500,
        retry_seconds: float = 1.0,
        max_retry_seconds: float = 30.0,
        check_seconds: float = 2.0,
        on_lost: Callable[[], None] = lambda: None,
        **redis_options: Any,
    ) -> None:
        self.keys = Keys(prefix)
        self.check_seconds = check_seconds
        self.on_lost = on_lost  # offers every owned customer again
        self._generation: bytes | str | None = None
        self._watch: asyncio.Task[None] | None = None
        self.resyncs = 0
        self.max_pending = max_pending
        self.batch = batch
        self.retry_seconds = retry_seconds
        self.max_retry_seconds = max_retry_seconds
        self.client = connect(url, **redis_options)
        self._script = self.client.register_script(_APPLY)
        self._pending: dict[str, _Entry] = {}  # insertion order = pending since (oldest first)
        self._draining: list[_Entry] = []  # taken from _pending, written chunk by chunk
        self._index = 0  # first entry of _draining not yet written
        self._wakeup = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._over_limit = False
        self._failing = False
        self.offered = 0  # snapshots offered
        self.written = 0  # snapshots applied in Redis
        self.stale = 0  # snapshots Redis already had (same or newer seq): nothing to do
        self.errors = 0  # failed writes (a batch that failed, or an item Redis refused); retried

    # -- the worker's side: synchronous, never waits --

    def offer(self, snapshot: Snapshot) -> None:
        """Queue a customer's current tags; replaces a pending older snapshot of the customer."""
        self.offered += 1
        current = self._pending.get(snapshot.customer_id)
        if current is None:
            self._pending[snapshot.customer_id] = (snapshot, time.monotonic())
            if len(self._pending) > self.max_pending and not self._over_limit:
                self._over_limit = True
                log.warning(
                    "Redis projection: %d customers pending (max_pending %d); keeping them all, "
                    "one snapshot per customer", len(self._pending), self.max_pending,
                )
        elif snapshot.seq >= current[0].seq:
            self._pending[snapshot.customer_id] = (snapshot, current[1])  # keeps its place
        self._wakeup.set()

    def pending(self) -> int:
        """Snapshots not yet in Redis (a customer can count twice: once in flight, once queued)."""
        return len(self._draining) - self._index + len(self._pending)

    def lag_seconds(self) -> float:
        """How long the oldest snapshot not yet in Redis has been waiting; 0 when caught up."""
        oldest = None
        if self._index < len(self._draining):
            oldest = self._draining[self._index][1]
        if self._pending:
            first = next(iter(self._pending.values()))[1]
            oldest = first if oldest is None else min(oldest, first)
        return 0.0 if oldest is None else max(0.0, time.monotonic() - oldest)

    # -- the background loop --

    def start(self) -> asyncio.Task[None]:
        """Run the loop as a task of the running event loop (idempotent)."""
        if self._task is None or self._task.done():
            loop = asyncio.get_running_loop()
            self._task = loop.create_task(self.run(), name="redis-projection")
            self._watch = loop.create_task(self.watch_generation(), name="redis-generation")
        return self._task

    async def watch_generation(self) -> None:
        """Notice Redis losing its data (restarted empty, flushed) and have everything offered again."""
        while not self._closing:
            with contextlib.suppress(RedisError, OSError):  # Redis away: the write loop reports it
                await self.check_generation()
            await asyncio.sleep(self.check_seconds)

    async def check_generation(self) -> bool:
        """Read the generation token, setting it if missing; True (and ``on_lost`` called) when Redis
        has lost what this projection wrote."""
        token = await self.client.get(self.keys.generation)
        empty = token is None
        if empty:
            await self.client.set(self.keys.generation, uuid.uuid4().hex.encode(), nx=True)
            token = await self.client.get(self.keys.generation)
        # At the first look, a key already there means Redis kept its data while we were away.
        lost = empty or (self._generation is not None and token != self._generation)
        self._generation = token
        if lost:
            log.warning("Redis projection: Redis has none of the tags written before (new, restarted "
                        "empty or flushed); writing every customer of this worker again")
            self.resyncs += 1
            self.on_lost()
        return lost

    async def run(self) -> None:
        """Drain the pending snapshots into Redis until closed; survives any Redis failure."""
        failures = 0
        while True:
            if self._index >= len(self._draining):
                self._draining, self._index = [], 0
                if not self._pending:
                    if self._closing:
                        return
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                # Take everything queued: swapping the dict out keeps every step O(1) per item.
                self._draining, self._pending = list(self._pending.values()), {}
                if len(self._draining) <= self.max_pending:
                    self._over_limit = False
            chunk = self._draining[self._index : self._index + self.batch]
            try:
                results = await _apply(self.client, self._script, self.keys, [s for s, _ in chunk], "gt")
            except (RedisError, OSError) as exc:
                self._requeue(self._draining[self._index :])
                self._draining, self._index = [], 0
                failures += 1
                self._failed(exc, failures)
                await self._back_off(failures)
                continue
            self._index += len(chunk)
            refused = self._count(chunk, results)
            if refused:
                # Redis refused some (out of memory, read-only replica after a failover, ...):
                # keep them, and back off as for a failed batch.
                self._requeue(entry for entry, _ in refused)
                failures += 1
                self.errors += len(refused) - 1
                self._failed(refused[0][1], failures)
                await self._back_off(failures)
                continue
            if self._failing:
                self._failing = False
                log.warning("Redis projection: writing again; %d snapshots pending", self.pending())
            failures = 0

    async def close(self, timeout: float = 5.0) -> None:
        """Flush what is pending for up to ``timeout`` seconds, stop the loop, close the client."""
        self._closing = True
        self._wakeup.set()
        if self._watch is not None:
            self._watch.cancel()
        task = self._task
        if task is not None and not task.done():
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.pending():
            log.warning("Redis projection: closed with %d snapshots not written", self.pending())
        await self.client.aclose()

    # -- helpers --

    def _count(self, chunk: Sequence[_Entry], results: Sequence[Any]) -> list[tuple[_Entry, Exception]]:
        """Count what a written chunk did; returns the entries Redis refused, with its errors."""
        refused = []
        for entry, result in zip(chunk, results, strict=True):
            if isinstance(result, Exception):
                refused.append((entry, result))
            elif result:
                self.written += 1
            else:
                self.stale += 1
        return refused

    def _requeue(self, entries: Iterable[_Entry]) -> None:
        """Put unwritten snapshots back in front of the queue; a newer queued snapshot of the same
        customer wins, and keeps the older entry's place and time."""
        merged: dict[str, _Entry] = {}
        for snap, since in entries:
            newer = self._pending.get(snap.customer_id)
            merged[snap.customer_id] = (newer[0], since) if newer and newer[0].seq >= snap.seq else (snap, since)
        for customer_id, entry in self._pending.items():
            merged.setdefault(customer_id, entry)
        self._pending = merged

    def _failed(self, exc: BaseException, failures: int) -> None:
        self.errors += 1
        if not self._failing:
            self._failing = True
            log.warning("Redis projection: write failed (%s: %s); keeping %d snapshots and retrying",
                        type(exc).__name__, exc, self.pending())
        else:
            log.debug("Redis projection: write failed again (%d): %s", failures, exc)

    async def _back_off(self, failures: int) -> None:
        delay = min(self.max_retry_seconds, self.retry_seconds * 2 ** min(failures - 1, 30))
        if self._closing:
            delay = min(delay, 0.25)  # close() has its own deadline
        await asyncio.sleep(delay)


async def rebuild(
    url: str,
    customers: Iterable[tuple[str, bytes | None]] | AsyncIterable[tuple[str, bytes | None]],
    *,
    prefix: str = DEFAULT_PREFIX,
    batch: int = 1000,
    force: bool = False,
    delete_missing: bool = False,
    progress: Callable[[int], None] | None = None,
    **redis_options: Any,
) -> int:
    """Write every customer's tags from encoded states (``tagengine redis-sync``); returns how many
    states were read.

    ``customers`` yields (customer_id, encoded state) pairs, e.g. the table or its changelog topic
    (several versions of a customer may come in any order: only the newest seq stays; a ``None``
    value, a changelog tombstone, is skipped). A snapshot is written when its seq is at least the
    one in Redis, so a rebuild also repairs a customer Redis shows at the same seq. ``force`` writes
    even over a *newer* seq in Redis: for when the state was reset and starts its seqs anew.

    Customers in Redis but not in the state are left alone unless ``delete_missing``: then their
    keys are deleted, and every tag set is swept of members whose hash does not hold the tag. Do
    that with the workers stopped (a customer a worker writes during the rebuild, unseen by it,
    would be deleted until its next change). ``progress`` is called with the count so far after
    each batch. Unlike the live projection, any Redis error is raised.
    """
    keys = Keys(prefix)
    mode = "force" if force else "ge"
    seen: set[str] | None = set() if delete_missing else None
    count = 0
    chunk: list[Snapshot] = []
    client = connect(url, **redis_options)
    try:
        # Before reading anything: an unreachable Redis is said at once, even with nothing to write.
        await client.ping()
        script = client.register_script(_APPLY)
        async for customer_id, encoded in _aiter(customers):
            if encoded is None:
                continue
            snapshot = Snapshot.decode(encoded)
            if snapshot.customer_id != customer_id:
                raise ValueError(f"state of {snapshot.customer_id!r} stored under {customer_id!r}")
            chunk.append(snapshot)
            if seen is not None:
                seen.add(customer_id)
            count += 1
            if len(chunk) >= batch:
                await _apply_all(client, script, keys, chunk, mode)
                chunk = []
                if progress is not None:
                    progress(count)
        if chunk:
            await _apply_all(client, script, keys, chunk, mode)
            if progress is not None:
                progress(count)
        if seen is not None:
            await _delete_missing(client, keys, seen, batch)
    finally:
        await client.aclose()
    return count


async def _aiter(
    items: Iterable[tuple[str, bytes | None]] | AsyncIterable[tuple[str, bytes | None]],
) -> AsyncIterable[tuple[str, bytes | None]]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


async def _apply_all(
    client: aioredis.Redis, script: AsyncScript, keys: Keys, snapshots: Sequence[Snapshot], mode: str
) -> None:
    for result in await _apply(client, script, keys, snapshots, mode):
        if isinstance(result, Exception):
            raise result


async def _delete_missing(client: aioredis.Redis, keys: Keys, seen: set[str], batch: int) -> None:
    forget = client.register_script(_FORGET)
    gone: set[str] = set()
    for key_prefix in (keys.customer_prefix, keys.seq_prefix):
        async for key in client.scan_iter(match=_glob(key_prefix) + "*", count=batch):
            customer_id = key.decode()[len(key_prefix) :]
            if customer_id not in seen:
                gone.add(customer_id)
    ids = sorted(gone)
    for start in range(0, len(ids), batch):
        async with client.pipeline(transaction=False) as pipe:
            for customer_id in ids[start : start + batch]:
                await forget(keys=[keys.customer(customer_id), keys.seq(customer_id)],
                             args=[keys.tag_prefix, customer_id], client=pipe)
            await pipe.execute()
    sweep = client.register_script(_SWEEP)
    tag_keys = [key async for key in client.scan_iter(match=_glob(keys.tag_prefix) + "*", count=batch)]
    for tag_key in tag_keys:
        tag = tag_key.decode()[len(keys.tag_prefix) :]
        async for members in _sscan_chunks(client, tag_key, batch):
            await sweep(keys=[tag_key], args=[keys.customer_prefix, tag, *members])


async def _sscan_chunks(client: aioredis.Redis, key: bytes, count: int) -> AsyncIterable[list[Any]]:
    cursor = 0
    while True:
        cursor, members = await client.sscan(key, cursor, count=count)
        if members:
            yield members
        if cursor == 0:
            return


def _glob(text: str) -> str:
    """Escape the glob characters of a key prefix for SCAN MATCH."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
