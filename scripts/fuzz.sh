#!/usr/bin/env bash
# Fuzz request parsing and tool dispatch (and configuration parsing) for a fixed time.
#
#   scripts/fuzz.sh [seconds per target]      (default 60)
#
# Uses cargo-fuzz on the nightly toolchain (installed by rustup with the machine's Rust);
# installs cargo-fuzz from crates.io on first use. The components are built first with the
# pinned toolchain, since the nightly has no wasm32-wasip2 standard library here.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cargo build --release --quiet
export CELLA_PREBUILT_COMPONENTS="$PWD/target/components/wasm32-wasip2/release"
cd fuzz
for target in request config; do
    mkdir -p "corpus/$target"
    echo "== $target: $seconds s"
    cargo +nightly fuzz run -s none -O "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=10
done
echo "fuzzing ran clean"
