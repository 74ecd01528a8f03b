#!/usr/bin/env bash
# How long `cella serve` takes to be ready (from exec to "cella listening on") with every
# backend of the embedded default configuration already compiled and warm in the cache:
# the median and slowest of N starts, each stopped with SIGTERM once it listens.
#
#   scripts/ready.sh [N]        # default 10 starts; the first, untimed, fills the cache
#
# CELLA_BIN=<binary> measures another build (before/after a change).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
runs="${1:-10}"
bin="${CELLA_BIN:-$root/target/release/cella}"
[[ -x "$bin" ]] || { echo "error: $bin is missing: cargo build --release" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# One start: prints the milliseconds from exec to the listening line.
start() {
    local began pid ended
    began="$(date +%s%N)"
    "$bin" serve --port 0 > "$work/stdout" 2> "$work/stderr" &
    pid=$!
    until grep -q "listening on" "$work/stdout" 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || { echo "error: the server stopped:" >&2; cat "$work/stderr" >&2; exit 1; }
        sleep 0.001
    done
    ended="$(date +%s%N)"
    kill -TERM "$pid"
    wait "$pid" || true
    echo $(( (ended - began) / 1000000 ))
}

start > /dev/null   # fills the cache if it is empty
for _ in $(seq "$runs"); do start; done | sort -n | awk '{ v[NR] = $1 } END {
    printf "cella serve ready (every backend cached), %d starts: median %d ms, slowest %d ms\n", NR, v[int((NR + 1) / 2)], v[NR] }'
