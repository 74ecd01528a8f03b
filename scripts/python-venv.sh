#!/usr/bin/env bash
# Makes (or reuses) a Python virtual environment with pinned requirements, for the tests
# that drive Cella with Python programs this project did not write (the MCP SDK, ...).
#
#   scripts/python-venv.sh <venv dir> <requirements file>
#
# Prints the venv's python on stdout. Idempotent and safe to run concurrently: the work is
# done under a lock, and skipped when the requirements have not changed since the last
# install (a stamp file holds their sha256). Needs python3 (3.10+) and the PyPI registry.
set -euo pipefail
venv=$1
requirements=$2
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [[ -x $venv/bin/python && -f $venv/.stamp && $(cat "$venv/.stamp") == "$want" ]]; then
    echo "$venv/bin/python"
    exit 0
fi
echo "python-venv: installing $(tr '\n' ' ' <"$requirements")into $venv" >&2
rm -rf "$venv"
python3 -m venv "$venv" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" >&2
echo "$want" >"$venv/.stamp"
echo "$venv/bin/python"
