#!/usr/bin/env bash
# What `server.snapshots.fsync` costs: a `cella serve` with a Python session holding 10 MB of
# random bytes, snapshotted N times over HTTP (curl's total time per snapshot, ms), with the
# store's writes left to the kernel and then flushed, alternately, ROUNDS times. The store is
# a directory under $TMPDIR (so: that disk).
#
#   scripts/snapshot-fsync.sh [N] [ROUNDS]      # default 5 snapshots, 2 rounds
#
# CELLA_BIN=<binary> measures another build.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
count="${1:-5}"
rounds="${2:-2}"
bin="${CELLA_BIN:-$root/target/release/cella}"
[[ -x "$bin" ]] || { echo "error: $bin is missing: cargo build --release" >&2; exit 1; }
work="$(mktemp -d)"
server=""
trap '[[ -n "$server" ]] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT

post() { curl -sf "http://127.0.0.1:$port$1" -H 'content-type: application/json' -d "$2"; }

measure() {
    local fsync="$1"
    port=$((20000 + RANDOM % 20000))
    cat > "$work/config.json" <<JSON
{"server": {"limits": {"memory_mb": 256}, "snapshots": {"dir": "$work/store-$fsync", "fsync": $fsync}},
 "resources": {"python": {"component": "builtin:python"}}}
JSON
    CELLA_LOG=warn "$bin" serve --config "$work/config.json" --port "$port" > "$work/log" 2>&1 &
    server=$!
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" > /dev/null && break; sleep 0.1; done
    post /api/v1/session/create '{"worker_id": "w", "resource_type": "python"}' > /dev/null
    post /api/v1/execute '{"worker_id": "w", "action": "python:run",
        "params": {"code": "import random\ndata = random.randbytes(10 << 20)"}}' > /dev/null
    echo -n "fsync $fsync:"
    for _ in $(seq "$count"); do
        curl -sf -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$port/api/v1/session/snapshot" \
            -H 'content-type: application/json' -d '{"worker_id": "w", "resource_type": "python"}'
    done | awk '{printf " %.1f", $1 * 1000} END {print " ms"}'
    kill "$server"; wait "$server" 2>/dev/null || true; server=""
    rm -rf "$work/store-$fsync"
}

for _ in $(seq "$rounds"); do
    measure false
    measure true
done
