#!/usr/bin/env bash
# The request path under load, measured the way issue #17 measures it: wrk from a second
# process on loopback, `GET /health` (the HTTP stack alone) against `execute kv:get` on a live
# session, at 16 connections and at 1, in interleaved rounds; the median of each, the server's
# CPU per request (from /proc/PID/stat), and execute's share of /health's rate.
#
#   scripts/load.sh [ROUNDS] [SECONDS]      # defaults: 3 rounds of 8 s per measure
#
# Needs wrk (Debian: apt-get install wrk) and a release build (`cargo build --release`), or
# CELLA_BIN=<binary> to measure another build (before/after a change).
# CELLA_LOG is passed through to the server (default info, as served), to compare logging costs.
# The last run's raw wrk output is kept in /tmp/wrk-last.log.
#
# AGENTFLOW_DIR=<a checkout of github.com/OpenDCAI/AgentFlow> adds issue #17's baseline:
# AgentFlow's own server (its sandbox-server.py, default settings) serving the same kv tool
# (scripts/agentflow/kv_backend.py), measured with the same `execute kv:get` in the same
# rounds, and Cella's rate as a multiple of it. Its Python packages are installed, pinned
# (scripts/agentflow/requirements.txt), into target/venvs/agentflow on first use.
# AGENTFLOW_LOG sets its --log-level (default INFO, its own default), as CELLA_LOG does Cella's.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
rounds="${1:-3}"
seconds="${2:-8}"
bin="${CELLA_BIN:-$root/target/release/cella}"
command -v wrk >/dev/null || { echo "error: wrk is not installed (apt-get install wrk)" >&2; exit 1; }
[[ -x "$bin" ]] || { echo "error: $bin is missing: cargo build --release" >&2; exit 1; }

work="$(mktemp -d)"
af_pid=""
trap 'kill "$pid" $af_pid 2>/dev/null || true; cp "$work/wrk.log" /tmp/wrk-last.log 2>/dev/null; rm -rf "$work"' EXIT
cat > "$work/cella.json" <<JSON
{"server": {"host": "127.0.0.1", "port": 0, "connection_close": "never",
            "cache_dir": "$root/target/bench-cache", "limits": {"max_instances": 200}},
 "resources": {"kv": {"component": "builtin:kv"}}}
JSON
"$bin" serve --config "$work/cella.json" > "$work/stdout" 2> "$work/server.log" &
pid=$!
for _ in $(seq 100); do grep -q "listening on" "$work/stdout" 2>/dev/null && break; sleep 0.1; done
base="$(sed -n 's/^cella listening on //p' "$work/stdout")"
[[ -n "$base" ]] || { echo "error: the server did not start:" >&2; cat "$work/server.log" >&2; exit 1; }

# Every measure must hit the live session: a call for a worker without one runs in a
# temporary session (S-12), a new instance per call, and would be measured instead.
must_succeed() {
    local what="$1" answer="$2"
    python3 -c 'import json, sys; a = json.loads(sys.argv[1]); sys.exit(a.get("code") != 0 or a["meta"].get("temporary_session", False))' "$answer" \
        || { echo "error: $what did not answer success in the live session: $answer" >&2; exit 1; }
}
must_succeed "session/create" "$(curl -s --json '{"worker_id": "load", "resource_type": "kv"}' "$base/api/v1/session/create")"
must_succeed "kv:set" "$(curl -s --json '{"worker_id": "load", "action": "kv:set", "params": {"key": "k", "value": 42}}' "$base/api/v1/execute")"

if [[ -n "${AGENTFLOW_DIR:-}" ]]; then
    [[ -f "$AGENTFLOW_DIR/sandbox/cli/sandbox-server.py" ]] \
        || { echo "error: AGENTFLOW_DIR=$AGENTFLOW_DIR has no sandbox/cli/sandbox-server.py" >&2; exit 1; }
    af_python="$("$root/scripts/python-venv.sh" "$root/target/venvs/agentflow" "$root/scripts/agentflow/requirements.txt")"
    af_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    cat > "$work/agentflow.json" <<JSON
{"server": {"url": "http://127.0.0.1:$af_port", "session_ttl": 300},
 "resources": {"kv": {"enabled": true, "backend_class": "kv_backend.KvBackend", "config": {}}}}
JSON
    PYTHONPATH="$root/scripts/agentflow:$AGENTFLOW_DIR" "$af_python" "$AGENTFLOW_DIR/sandbox/cli/sandbox-server.py" \
        --config "$work/agentflow.json" --log-level "${AGENTFLOW_LOG:-INFO}" > "$work/agentflow.log" 2>&1 &
    af_pid=$!
    af_base="http://127.0.0.1:$af_port"
    for _ in $(seq 200); do curl -sf "$af_base/health" >/dev/null 2>&1 && break; sleep 0.1; done
    curl -sf "$af_base/health" >/dev/null || { echo "error: AgentFlow's server did not start:" >&2; cat "$work/agentflow.log" >&2; exit 1; }
    must_succeed "AgentFlow session/create" "$(curl -s --json '{"worker_id": "load", "resource_type": "kv"}' "$af_base/api/v1/session/create")"
    must_succeed "AgentFlow kv:set" "$(curl -s --json '{"worker_id": "load", "action": "kv:set", "params": {"key": "k", "value": 42}}' "$af_base/api/v1/execute")"
fi
cat > "$work/execute.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"worker_id": "load", "action": "kv:get", "params": {"key": "k"}}'
LUA

# CPU ticks (user + system) process $1 has used so far.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz="$(getconf CLK_TCK)"

# One wrk run against Cella (or, with a fourth argument "agentflow", AgentFlow's server):
# prints "req/s p50_us p99_us cpu_us_per_request".
measure() {
    local conns="$1" path="$2" script="${3:-}" server="${4:-cella}"
    local before after out target=$pid url=$base
    [[ $server == agentflow ]] && target=$af_pid url=$af_base
    before="$(ticks "$target")"
    out="$(wrk -t1 -c"$conns" -d"${seconds}s" --latency ${script:+-s "$script"} "$url$path")"
    echo "$out" >> "$work/wrk.log"
    after="$(ticks "$target")"
    python3 - "$out" "$before" "$after" "$hz" <<'PY'
import re, sys
out, before, after, hz = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
def us(text):
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 1, "ms": 1e3, "s": 1e6}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
total = int(re.search(r"(\d+) requests in", out).group(1))
p50 = us(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
p99 = us(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
cpu = (after - before) / hz * 1e6 / max(total, 1)
print(f"{rps:.0f} {p50:.0f} {p99:.0f} {cpu:.1f}")
PY
}

declare -A results
for round in $(seq "$rounds"); do
    for conns in 16 1; do
        results["health-$conns"]+="$(measure "$conns" /health)"$'\n'
        results["execute-$conns"]+="$(measure "$conns" /api/v1/execute "$work/execute.lua")"$'\n'
        if [[ -n $af_pid ]]; then
            results["agentflow-$conns"]+="$(measure "$conns" /api/v1/execute "$work/execute.lua" agentflow)"$'\n'
        fi
    done
    echo "round $round of $rounds done" >&2
done

# Still the live session at the end (its TTL renewed by every call).
must_succeed "kv:get after the rounds" "$(curl -s --json '{"worker_id": "load", "action": "kv:get", "params": {"key": "k"}}' "$base/api/v1/execute")"

printf '%-38s %10s %9s %9s %12s\n' measure req/s p50_us p99_us cpu_us/req
for conns in 16 1; do
    for what in health execute ${af_pid:+agentflow}; do
        median="$(printf '%s' "${results[$what-$conns]}" | sort -n -k1 | awk -v n="$rounds" 'NR == int((n + 1) / 2)')"
        label="$what"
        [[ $what == agentflow ]] && label="AgentFlow's execute"
        printf '%-38s %10s %9s %9s %12s\n' "$label, $conns connection(s)" $median
        results["median-$what-$conns"]="$median"
    done
    h="$(echo "${results[median-health-$conns]}" | cut -d' ' -f1)"
    e="$(echo "${results[median-execute-$conns]}" | cut -d' ' -f1)"
    python3 -c "print(f'execute / health at $conns connection(s): {100 * $e / $h:.1f}%')"
    if [[ -n $af_pid ]]; then
        a="$(echo "${results[median-agentflow-$conns]}" | cut -d' ' -f1)"
        python3 -c "print(f'Cella execute / AgentFlow execute at $conns connection(s): {$e / $a:.1f}x')"
    fi
done
