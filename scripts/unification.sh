#!/usr/bin/env bash
# Which crates would `cargo build --release` (the README's serve command) compile that
# `cargo test --release --workspace` (its test command) did not? Prints each such unit with
# its features beside the test build's units of the same crate, so a feature that only one
# command turns on shows (`cargo tree` merges build-time and run-time features and hides it).
# Builds both first if needed. `.ci/run` fails when the list is not empty.
set -euo pipefail
cd "$(dirname "$0")/.."
artifacts() { cargo "$@" --message-format=json 2>/dev/null | jq -r 'select(.reason=="compiler-artifact") | .filenames[]' | grep '/deps/' | sort -u; }
build=$(mktemp) test=$(mktemp)
trap 'rm -f "$build" "$test"' EXIT
artifacts build --release >"$build"
artifacts test --release --workspace --no-run >"$test"
python3 - "$build" "$test" <<'PY'
import glob, json, re, sys
def units(path):
    out = set()
    for line in open(path):
        m = re.search(r'/deps/(?:lib)?([A-Za-z0-9_]+?)-([0-9a-f]{16})', line)
        if m:
            out.add(m.groups())
    return out
def describe(name, h):
    for f in glob.glob(f'target/release/.fingerprint/*-{h}/lib-*.json'):
        d = json.load(open(f))
        return f"profile {d['profile']} features {d['features']}"
    return "?"
build, test = units(sys.argv[1]), units(sys.argv[2])
only = sorted(build - test)
for name, h in only:
    print(f"{name}-{h}: {describe(name, h)}")
    for n2, h2 in sorted(test):
        if n2 == name:
            print(f"    the test build has {n2}-{h2}: {describe(n2, h2)}")
if only:
    print("the crates above differ: the first with different features is the cause; name those features in the root Cargo.toml and runtime/Cargo.toml (build-time crates under [build-dependencies])")
    sys.exit(1)
print("cargo build --release reuses the test build")
PY
