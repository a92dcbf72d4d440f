#!/usr/bin/env bash
# `make run`: local Kafka and Redis, one worker, the demo generator, and tag changes as they happen.
# Ctrl-C stops the worker and the generator; `make stop` stops Kafka and Redis too.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
RUN=.cache/run
mkdir -p "$RUN"

eval "$(python3 scripts/services.py start)"
export KAFKA_BOOTSTRAP_SERVERS REDIS_URL
export TAGENGINE_DATADIR="${TAGENGINE_DATADIR:-$RUN/data}"
export TAGENGINE_WEB_PORT="${TAGENGINE_WEB_PORT:-6066}"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "stopped the worker and the generator (Kafka and Redis keep running: make stop)"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "starting the worker (log: $RUN/worker.log)..."
$BIN/tagengine worker >"$RUN/worker.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 180); do
  if curl -fs "http://127.0.0.1:$TAGENGINE_WEB_PORT/health" >/dev/null 2>&1; then break; fi
  if ! kill -0 "${pids[0]}" 2>/dev/null; then echo "the worker exited:"; tail -30 "$RUN/worker.log"; exit 1; fi
  sleep 0.5
done

$BIN/tagengine generate --customers 300 --rate 20 --history-days 45 2>"$RUN/generator.log" &
pids+=($!)

cat <<INFO

  cockpit:      http://127.0.0.1:$TAGENGINE_WEB_PORT/   (open it in a browser; 中文 at the top right)
  worker ready: http://127.0.0.1:$TAGENGINE_WEB_PORT/health
  customers:    curl "http://127.0.0.1:$TAGENGINE_WEB_PORT/tags/active/customers?limit=5"
  a customer:   curl http://127.0.0.1:$TAGENGINE_WEB_PORT/customers/<one of them>
  metrics:      curl http://127.0.0.1:$TAGENGINE_WEB_PORT/metrics
  demo events:  20/s over 300 customers ($RUN/generator.log)

  tag changes, tasks and dead letters as they happen (Ctrl-C to stop):

INFO
$BIN/tagengine watch
