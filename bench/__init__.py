"""Benchmarks of the tag engine: ``python -m bench`` (``make bench``).

One run measures, and prints as a summary table at the end:

1. offline replay throughput over a cached one-million-event file, and the pure engine cost per
   ``process_event`` / ``decide_tags`` call (``bench.replay``);
2. the size of encoded customer states: the replay's final states and two constructed customers
   (``bench.state_size``);
3. a live ``tagengine worker`` on the local broker, events/s from first to last processed event
   (``bench.live``);
4. baselines on the same broker in the same run: raw aiokafka producer and consumer, and a plain
   Faust agent with one table write per event (``bench.kafka``, ``bench.plain_agent``);
5. throughput side by side on a live and a backfill backlog: raw aiokafka, Faust (take-only and
   plain), Quix Streams, one and two workers; latency at half load; memory with 1M customers
   (``bench.throughput``).

Progress goes to stderr, figures to stdout.

Tools for before/after comparisons of two checkouts, run by hand from each tree in turn (not part
of ``python -m bench``): ``bench/engine_cost.py`` (engine time per event, and a digest of all it
produced: two trees with the same digest produced the same outputs) and ``bench/codec_cost.py``
(parsing and encoding, step by step). ``python -m bench.throughput --systems quix,w1`` measures a
subset of the throughput section.
"""
