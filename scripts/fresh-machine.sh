#!/usr/bin/env bash
# Reproduces a new machine as far as one machine can, then runs the README's two commands.
#
#   scripts/fresh-machine.sh [--keep]
#
# What it takes away first (a green CI on a machine that already has everything proves
# nothing about a new one):
#   - a fresh clone of this checkout's HEAD into a temporary folder: an empty target/, so no
#     built components and no guest toolchains (target/venvs, target/node-tools);
#   - the wasm32-wasip2 target of the pinned toolchain (rustup target remove);
#   - Debian's C packages for the C guest (clang lld wasi-libc libclang-rt-dev-wasm32);
#   - cargo's registry cache, pip's, npm's and Cella's own cache (fresh folders for
#     CARGO_HOME, PIP_CACHE_DIR, npm_config_cache and XDG_CACHE_HOME).
# Then it runs, timing each:
#   1. `cargo run --release -- serve`, and checks that the server answers /health and a tool
#      call over HTTP, then stops it;
#   2. `cargo test --release --workspace` (every test);
#   3. `cargo run --release -- serve` again, which must compile nothing (the two commands
#      share one build), and answer again.
# The clone is removed at the end unless --keep is given. Needs root (apt-get, rustup).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
keep=no
[ "${1:-}" = "--keep" ] && keep=yes
work=$(mktemp -d /tmp/cella-fresh.XXXXXX)
log="$work/logs"
mkdir -p "$log"
cleanup() {
    [ -n "${server:-}" ] && kill "$server" 2>/dev/null || true
    if [ "$keep" = no ]; then rm -rf "$work"; else echo "kept: $work"; fi
}
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }
started=$(date +%s)

step "a fresh clone of $(git -C "$repo" rev-parse --short HEAD) into $work/cella"
git clone -q "$repo" "$work/cella"
cd "$work/cella"
toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)

step "taking away what a new machine lacks"
rustup target remove --toolchain "$toolchain" wasm32-wasip2 2>/dev/null || true
if rustup target list --toolchain "$toolchain" --installed | grep -q wasm32-wasip2; then
    echo "could not remove the wasm32-wasip2 target" >&2; exit 1
fi
echo "wasm32-wasip2 removed from $toolchain"
c_packages="clang lld wasi-libc libclang-rt-dev-wasm32"
installed=$(dpkg-query -W -f='${Package} ${Status}\n' $c_packages 2>/dev/null | awk '/ installed$/ {print $1}' || true)
if [ -n "$installed" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get remove -y -q $installed >"$log/apt-remove.txt" 2>&1
    echo "removed: $installed"
fi
if [ -e /usr/lib/wasm32-wasi/libc.a ]; then
    echo "the C library for wasm32 is still there" >&2; exit 1
fi
export CARGO_HOME="$work/cargo-home" PIP_CACHE_DIR="$work/pip-cache" npm_config_cache="$work/npm-cache"
export XDG_CACHE_HOME="$work/cache"
unset CARGO_TARGET_DIR RUSTFLAGS CARGO_BUILD_RUSTFLAGS
mkdir -p "$CARGO_HOME"

# Serves with the README's first command on a free port, checks two answers, stops it.
# $1: the log file. Sets `compiled` to the number of crates it compiled.
serve_and_check() {
    local out="$1" port base
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    base="http://127.0.0.1:$port"
    cargo run --release -- serve --port "$port" >"$out" 2>&1 &
    server=$!
    for _ in $(seq 3600); do
        grep -q "cella listening on" "$out" && break
        kill -0 "$server" 2>/dev/null || { tail -30 "$out"; echo "cella serve exited" >&2; exit 1; }
        sleep 1
    done
    grep -q "cella listening on" "$out" || { tail -30 "$out"; echo "cella serve did not start" >&2; exit 1; }
    curl -sf "$base/health" | grep -q healthy || { echo "no answer from $base/health" >&2; exit 1; }
    local answer
    answer=$(curl -s --json '{"worker_id": "fresh", "action": "rag:search", "params": {"query": "epoch deadline", "top_k": 1}}' "$base/api/v1/execute")
    echo "$answer" | grep -q '"code":0' || { echo "unexpected answer: $answer" >&2; exit 1; }
    echo "the server answers: /health, and rag:search over /api/v1/execute"
    kill -INT "$server"
    wait "$server" || true
    server=
    compiled=$(grep -c '^ *Compiling ' "$out" || true)
}

step "1. cargo run --release -- serve"
t=$(date +%s)
serve_and_check "$log/serve-1.txt"
serve_s=$(( $(date +%s) - t ))
echo "first serve: ${serve_s} s (built $compiled crates)"

step "2. cargo test --release --workspace"
t=$(date +%s)
if ! cargo test --release --workspace >"$log/test.txt" 2>&1; then
    grep -E '^(test .* FAILED|failures:|error)' "$log/test.txt" | head -40
    tail -40 "$log/test.txt"
    echo "the test command failed (log: $log/test.txt)" >&2
    keep=yes
    exit 1
fi
test_s=$(( $(date +%s) - t ))
grep -E '^test result:' "$log/test.txt" | awk '{p+=$4; f+=$6; i+=$8} END {printf "tests: %d passed, %d failed, %d ignored\n", p, f, i}'
echo "test command: ${test_s} s"

step "3. cargo run --release -- serve again: nothing to build"
t=$(date +%s)
serve_and_check "$log/serve-2.txt"
again_s=$(( $(date +%s) - t ))
if [ "$compiled" -ne 0 ]; then
    grep '^ *Compiling ' "$log/serve-2.txt"
    echo "the second serve rebuilt $compiled crates: the two commands do not share one build" >&2
    keep=yes
    exit 1
fi
echo "second serve: ${again_s} s, nothing compiled"

step "fresh machine: passed in $(( $(date +%s) - started )) s (serve ${serve_s} s, tests ${test_s} s, serve again ${again_s} s)"
