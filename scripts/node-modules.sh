#!/usr/bin/env bash
# Makes (or reuses) a folder of pinned npm packages, for the tests that drive Cella with
# JavaScript programs this project did not write (Scalebox's SDK, ...).
#
#   scripts/node-modules.sh <folder> <package.json>
#
# Prints the folder on stdout (its node_modules holds the packages). Idempotent and safe to
# run concurrently: the work is done under a lock, and skipped when package.json has not
# changed since the last install (a stamp file holds its sha256). Needs Node.js with npm and
# the npm registry.
set -euo pipefail
dir=$1
manifest=$2
mkdir -p "$(dirname "$dir")"
exec 9>"$dir.lock"
flock 9
want=$(sha256sum "$manifest" | cut -d' ' -f1)
if [[ -d $dir/node_modules && -f $dir/.stamp && $(cat "$dir/.stamp") == "$want" ]]; then
    echo "$dir"
    exit 0
fi
echo "node-modules: installing the packages of $manifest into $dir" >&2
rm -rf "$dir"
mkdir -p "$dir"
cp "$manifest" "$dir/package.json"
(cd "$dir" && npm install --no-audit --no-fund --loglevel=error >&2)
echo "$want" >"$dir/.stamp"
echo "$dir"
