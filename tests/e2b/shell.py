"""Drives `commands.run` of a Cella sandbox with E2B's own Python SDK (e2b 2.63.0), unmodified.

Usage: shell.py SCENARIO   with E2B_API_KEY, E2B_API_URL, E2B_SANDBOX_URL and CELLA_INPUT
(a JSON object the scenario reads) set. Prints one JSON object; the Rust test
(tests/e2e/shell.rs) makes the assertions.
"""

import json
import os
import sys

from e2b import CommandExitException
from e2b_code_interpreter import Sandbox


def run(sbx, line, **kwargs):
    try:
        r = sbx.commands.run(line, **kwargs)
        return {"stdout": r.stdout, "stderr": r.stderr, "exit_code": r.exit_code}
    except CommandExitException as e:
        return {"stdout": e.stdout, "stderr": e.stderr, "exit_code": e.exit_code}


def lines():
    """Writes the input's files, then runs its lines in order, each its own commands.run."""
    given = json.loads(os.environ["CELLA_INPUT"])
    sbx = Sandbox.create()
    try:
        for path, text in given["files"].items():
            sbx.files.write(path, text)
        return {"ran": [run(sbx, line) for line in given["lines"]]}
    finally:
        sbx.kill()


def programs():
    """python and node in the sandbox's interpreters: env vars, arguments, stdin, exit codes,
    and output that streams line by line."""
    sbx = Sandbox.create()
    try:
        out = {}
        sbx.files.write("/home/user/script.py", "import os, sys\nprint(os.environ.get('FOO'), sys.argv[1:])\n")
        out["env_prefix"] = run(sbx, "FOO=1 python script.py a b")
        out["envs"] = run(sbx, "python -c 'import os; print(os.environ[\"FOO\"])'", envs={"FOO": "bar"})
        out["exported"] = run(sbx, "export FOO=exp && python3 script.py")
        out["stdin"] = run(sbx, "printf 'x\\ny\\n' | python -c 'import sys; print(len(sys.stdin.read().split()))'")
        out["exit"] = run(sbx, "python -c 'import sys; sys.exit(3)'; echo after $?")
        out["traceback"] = run(sbx, "python -c '1/0' || echo failed")
        out["piped"] = run(sbx, "python -c 'print(\"b\"); print(\"a\")' | sort")
        out["node"] = run(sbx, "node -e 'console.log(6 * 7)'")
        out["refused"] = run(sbx, "git status")
        out["sudo"] = run(sbx, "sudo apt-get install curl")
        out["ln"] = run(sbx, "touch t && ln -s t link")
        out["ls_la"] = run(sbx, "mkdir -p d && ls -la")
        out["cwd"] = run(sbx, "pwd; touch here.txt; ls /home/user/d", cwd="/home/user/d")
        try:
            out["deadline"] = run(sbx, "echo start; while true; do sleep 0.1; done", timeout=2)
        except Exception as e:
            out["deadline"] = {"stdout": None, "stderr": str(e), "exit_code": type(e).__name__}
        # The server stops the line at the same deadline: nothing is left running.
        import time

        end = time.time() + 10
        while sbx.commands.list() and time.time() < end:
            time.sleep(0.05)
        out["running_after_deadline"] = [p.args for p in sbx.commands.list()]
        # The line prints "two" only once the client, having seen "one", wrote the file it
        # waits for: so "one" arrived while the line ran (no timing involved).
        seen = []

        def on_stdout(data):
            seen.append(data)
            if data.startswith("one"):
                sbx.files.write("/home/user/go", "seen")

        line = (
            "echo one; n=0; while [ ! -f go ] && [ $n -lt 80 ]; do sleep 0.1; n=$((n+1)); done; "
            "[ -f go ] && echo two || echo 'one was not seen while the line ran'"
        )
        handle = sbx.commands.run(line, on_stdout=on_stdout)
        out["streamed"] = {"lines": seen, "stdout": handle.stdout}
        return out
    finally:
        sbx.kill()


SCENARIOS = {f.__name__: f for f in [lines, programs]}

if __name__ == "__main__":
    print(json.dumps(SCENARIOS[sys.argv[1]](), default=str))
