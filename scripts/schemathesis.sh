#!/usr/bin/env bash
# Property-based run of schemathesis (PyPI) against the server's own /openapi.json.
#
#   scripts/schemathesis.sh [max-examples]      (default 100)
#
# Installs schemathesis into target/schemathesis-venv on first use, starts `cella serve` on a
# free loopback port with the embedded default configuration, runs two passes, and stops the
# server through its shutdown route:
#   1. response schema, status code and content type conformance: must pass;
#   2. not_a_server_error: the only 5xx allowed are the protocol's own answers for a batch
#      whose every item failed (code 5009, AGENTFLOW_PROTOCOL.md §6.4 and §6.13).
set -euo pipefail
cd "$(dirname "$0")/.."
examples="${1:-100}"
venv=target/schemathesis-venv
if [ ! -x "$venv/bin/schemathesis" ]; then
    echo "installing schemathesis into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet schemathesis
fi
cargo build --release --quiet
log=$(mktemp)
./target/release/cella serve --port 0 >"$log" 2>/dev/null &
server=$!
trap 'kill $server 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 100); do grep -q "listening" "$log" && break; sleep 0.1; done
base=$(sed -n 's/^cella listening on //p' "$log")
st="$venv/bin/schemathesis run $base/openapi.json --max-examples $examples --exclude-path /api/v1/server/shutdown --workers 2"
echo "== conformance ($base)"
$st --checks response_schema_conformance,status_code_conformance,content_type_conformance
echo "== server errors"
out=$($st --checks not_a_server_error 2>&1 || true)
echo "$out" | tail -5
unexpected=$(echo "$out" | grep -E '^\[5[0-9][0-9]\]' -A1 | grep -E '"code":' | grep -v '"code":5009' || true)
curl -s -X POST "$base/api/v1/server/shutdown" >/dev/null || true
if [ -n "$unexpected" ]; then
    echo "unexpected server errors:" >&2
    echo "$unexpected" >&2
    exit 1
fi
echo "no 5xx besides the protocol's all-failed batches (5009)"
