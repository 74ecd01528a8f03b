"""Drives a Cella server with E2B's own Python SDK (e2b-code-interpreter), unmodified.

Usage: client.py SCENARIO   with E2B_API_KEY, E2B_API_URL and E2B_SANDBOX_URL set.
Prints one JSON object: what the scenario observed. The Rust test (tests/e2e/e2b.rs) makes
the assertions; this script only reports what the SDK returned.
"""

import json
import sys
import time

from e2b import SandboxQuery
from e2b.api.client.models.sandbox_state import SandboxState
from e2b_code_interpreter import Sandbox


def execution(e):
    return {
        "text": e.text,
        "stdout": e.logs.stdout,
        "stderr": e.logs.stderr,
        "results": [{"text": r.text, "is_main_result": r.is_main_result} for r in e.results],
        "error": None if e.error is None else {"name": e.error.name, "value": e.error.value, "traceback": e.error.traceback},
        "count": e.execution_count,
    }


def basics():
    sbx = Sandbox.create()
    try:
        out = {"id": sbx.sandbox_id}
        out["define"] = execution(sbx.run_code("x = 41\nprint('hello')"))
        out["use"] = execution(sbx.run_code("x + 1"))
        out["string"] = execution(sbx.run_code("'abc'"))
        out["runtime_error"] = execution(sbx.run_code("1/0"))
        out["syntax_error"] = execution(sbx.run_code("def f(:"))
        out["after_errors"] = execution(sbx.run_code("x"))
        out["stderr"] = execution(sbx.run_code("import sys; print('oops', file=sys.stderr)"))
        out["env"] = execution(sbx.run_code("import os; os.environ.get('GREETING')", envs={"GREETING": "hi"}))
        out["js"] = execution(sbx.run_code("var y = 20; console.log('from js'); y + 1", language="javascript"))
        out["js_state"] = execution(sbx.run_code("y * 2", language="javascript"))
        out["js_error"] = execution(sbx.run_code("undefinedFunction()", language="javascript"))
        out["pip"] = execution(sbx.run_code("%pip install six\nimport six\nsix.PY3"))
        out["pip_unknown"] = execution(sbx.run_code("!pip install no-such-package-here"))
        out["shell"] = execution(sbx.run_code("!ls /"))
        out["npm"] = execution(sbx.run_code("npm install lodash", language="javascript"))
        return out
    finally:
        sbx.kill()


def streaming():
    """The cell prints, then waits for a file that only the on_stdout callback writes: it can
    print 'late' only if its first line reached the client while it was still running."""
    sbx = Sandbox.create()
    try:
        seen = []

        def on_stdout(message):
            seen.append(message.line)
            if message.line.startswith("early"):
                sbx.files.write("/home/user/go", "seen")

        code = (
            "import os, time\nprint('early', flush=True)\nt = time.time()\n"
            "while not os.path.exists('/home/user/go') and time.time() - t < 8:\n    pass\n"
            "print('late' if os.path.exists('/home/user/go') else 'the first line was not seen while running')"
        )
        e = sbx.run_code(code, on_stdout=on_stdout)
        return {"lines": seen, "stdout": e.logs.stdout}
    finally:
        sbx.kill()


def files():
    sbx = Sandbox.create()
    try:
        out = {}
        info = sbx.files.write("/home/user/data/input.txt", "line one\nline two\n")
        out["written"] = {"name": info.name, "path": info.path, "type": str(info.type)}
        sbx.files.write("relative.txt", b"\x00\x01binary")
        out["read"] = sbx.files.read("/home/user/data/input.txt")
        out["read_bytes"] = list(sbx.files.read("/home/user/relative.txt", format="bytes"))
        out["code_reads"] = execution(sbx.run_code("open('/home/user/data/input.txt').read().splitlines()[1]"))
        out["code_reads_relative"] = execution(sbx.run_code("open('data/input.txt').read().count('line')"))
        sbx.run_code("open('made_by_code.txt', 'w').write('from the cell')")
        out["made_by_code"] = sbx.files.read("/home/user/made_by_code.txt")
        out["list"] = sorted((e.name, str(e.type)) for e in sbx.files.list("/home/user"))
        out["exists"] = [sbx.files.exists("/home/user/data/input.txt"), sbx.files.exists("/home/user/missing")]
        out["make_dir"] = [sbx.files.make_dir("/home/user/new/dir"), sbx.files.make_dir("/home/user/new/dir")]
        moved = sbx.files.rename("/home/user/relative.txt", "/home/user/new/moved.txt")
        out["moved"] = moved.path
        sbx.files.remove("/home/user/data")
        out["after_remove"] = [sbx.files.exists("/home/user/data/input.txt"), sbx.files.exists("/home/user/data")]
        try:
            sbx.files.read("/home/user/missing.txt")
            out["missing"] = "read"
        except Exception as e:
            out["missing"] = type(e).__name__
        try:
            sbx.files.read("/etc/passwd")
            out["outside"] = "read"
        except Exception as e:
            out["outside"] = type(e).__name__
        return out
    finally:
        sbx.kill()


def command(sbx, line):
    from e2b import CommandExitException
    try:
        r = sbx.commands.run(line)
        return {"stdout": r.stdout, "stderr": r.stderr, "exit_code": r.exit_code}
    except CommandExitException as e:
        return {"stdout": e.stdout, "stderr": e.stderr, "exit_code": e.exit_code}


def commands():
    sbx = Sandbox.create()
    try:
        out = {}
        sbx.run_code("before = 1")  # a Python context that exists before pip install
        sbx.files.write("/home/user/prog.py", "import sys\nprint('from a file')\nprint('to stderr', file=sys.stderr)\n")
        for name, line in [
            ("python_file", "python prog.py"),
            ("python_c", "python3 -c 'print(6 * 7)'"),
            ("python_fails", "python -c '1/0'"),
            ("node_e", "node -e 'console.log(1 + 1)'"),
            ("pwd", "pwd"),
            ("echo", "echo hello there"),
            ("mkdir", "mkdir -p made/deep"),
            ("ls", "ls"),
            ("cat", "cat prog.py"),
            ("rm", "rm -r made"),
            ("ls_after", "ls /home/user"),
            ("pip", "pip install six"),
            ("pip_unknown", "pip install no-such-package-here"),
            ("unknown", "gcc main.c"),
            ("pipe", "ls | wc -l"),
        ]:
            out[name] = command(sbx, line)
        out["six_in_old_context"] = execution(sbx.run_code("import six; six.PY3"))
        fresh = sbx.create_code_context()
        out["six_in_new_context"] = execution(sbx.run_code("import six; six.PY3", context=fresh))
        return out
    finally:
        sbx.kill()


def contexts():
    sbx = Sandbox.create()
    try:
        out = {}
        sbx.run_code("shared = 'default'")
        a = sbx.create_code_context()
        b = sbx.create_code_context(language="python", cwd="/home/user")
        sbx.run_code("v = 'a'", context=a)
        sbx.run_code("v = 'b'", context=b)
        out["a"] = execution(sbx.run_code("v", context=a))
        out["b"] = execution(sbx.run_code("v", context=b))
        out["a_sees_default"] = execution(sbx.run_code("shared", context=a))
        out["listed"] = sorted(c.id for c in sbx.list_code_contexts())
        out["ids"] = sorted([a.id, b.id])
        sbx.restart_code_context(a)
        out["after_restart"] = execution(sbx.run_code("v", context=a))
        sbx.remove_code_context(b)
        out["listed_after_remove"] = sorted(c.id for c in sbx.list_code_contexts())
        try:
            sbx.run_code("1", context=b)
            out["removed_runs"] = "ran"
        except Exception as e:
            out["removed_runs"] = type(e).__name__
        js = sbx.create_code_context(language="javascript")
        out["js_context"] = {"language": js.language, "run": execution(sbx.run_code("typeof v", context=js))}
        return out
    finally:
        sbx.kill()


def isolation():
    one, two = Sandbox.create(), Sandbox.create()
    try:
        one.run_code("secret = 'one'")
        one.files.write("/home/user/mine.txt", "one's file")
        return {
            "two_state": execution(two.run_code("secret")),
            "two_file": two.files.exists("/home/user/mine.txt"),
            "two_reads_code": execution(two.run_code("import os; sorted(os.listdir('/home/user'))")),
        }
    finally:
        one.kill()
        two.kill()


def lifecycle():
    out = {}
    sbx = Sandbox.create(metadata={"purpose": "lifecycle test", "x": "a&b"})
    info = sbx.get_info()
    out["info"] = {"id": info.sandbox_id, "state": str(info.state), "metadata": info.metadata,
                   "lifetime_s": (info.end_at - info.started_at).total_seconds()}
    sbx.set_timeout(1200)
    info = sbx.get_info()
    out["renewed_lifetime_s"] = (info.end_at - info.started_at).total_seconds()
    listed = Sandbox.list(query=SandboxQuery(metadata={"x": "a&b"})).next_items()
    out["listed"] = [s.sandbox_id for s in listed]
    out["listed_other"] = [s.sandbox_id for s in Sandbox.list(query=SandboxQuery(metadata={"x": "nope"})).next_items()]
    out["is_running"] = sbx.is_running()
    connected = Sandbox.connect(sbx.sandbox_id)
    out["connected_runs"] = execution(connected.run_code("6 * 7"))
    out["killed"] = sbx.kill()
    out["killed_again"] = Sandbox.kill(sbx.sandbox_id)
    try:
        sbx.run_code("1")
        out["after_kill"] = "ran"
    except Exception as e:
        out["after_kill"] = type(e).__name__
    try:
        sbx.get_info()
        out["info_after_kill"] = "found"
    except Exception as e:
        out["info_after_kill"] = type(e).__name__
    return out


def paused():
    """Pause keeps the interpreter's state; connect resumes it."""
    out = {}
    sbx = Sandbox.create()
    sbx.run_code("kept = 6 * 7")
    out["paused"] = sbx.pause()
    out["state"] = str(sbx.get_info().state)
    out["listed_paused"] = [s.sandbox_id for s in Sandbox.list(query=SandboxQuery(state=[SandboxState.PAUSED])).next_items()] == [sbx.sandbox_id]
    resumed = Sandbox.connect(sbx.sandbox_id)
    out["state_after_connect"] = str(resumed.get_info().state)
    out["kept"] = execution(resumed.run_code("kept"))
    sbx.kill()
    return out


def forked():
    """fork(count=2): each copy has the interpreter's state, the files and the contexts; the
    copies and the source then diverge; a fork of a missing sandbox is not found."""
    out = {}
    sbx = Sandbox.create(metadata={"purpose": "fork"})
    try:
        sbx.run_code("x = 20\ndef double(v):\n    return 2 * v")
        ctx = sbx.create_code_context()
        sbx.run_code("y = 'in the context'", context=ctx)
        sbx.files.write("/home/user/notes.txt", "kept")
        copies = sbx.fork(count=2)
        out["copies"] = [type(c).__name__ for c in copies]
        out["ids_differ"] = len({c.sandbox_id for c in copies} | {sbx.sandbox_id}) == 3
        out["runs"] = []
        for k, copy in enumerate(copies):
            out["runs"].append({
                "double": execution(copy.run_code(f"x += {k}\ndouble(x)")),
                "file": copy.files.read("/home/user/notes.txt"),
                "context": execution(copy.run_code("y", context=ctx)),
                "metadata": copy.get_info().metadata,
            })
            copy.files.write("/home/user/notes.txt", f"copy {k}")
        out["source_x"] = execution(sbx.run_code("x"))
        out["source_file"] = sbx.files.read("/home/user/notes.txt")
        for copy in copies:
            copy.kill()
        try:
            Sandbox.fork("nope", count=1)
            out["missing"] = "forked"
        except Exception as e:
            out["missing"] = type(e).__name__
        return out
    finally:
        sbx.kill()


def snapshotted():
    """create_snapshot(name): new sandboxes start from it by id or name with the interpreter's
    state, files and metadata; it is listed, and deleted."""
    out = {}
    sbx = Sandbox.create(metadata={"purpose": "snapshot"})
    try:
        sbx.run_code("x = 41")
        sbx.files.write("/home/user/notes.txt", "kept")
        snap = sbx.create_snapshot(name="my-snap")
        out["names"] = snap.names
        sbx.run_code("x = 0")
        out["listed"] = [s.snapshot_id for s in sbx.list_snapshots().next_items()] == [snap.snapshot_id]
        made = Sandbox.create(template=snap.snapshot_id)
        out["x"] = execution(made.run_code("x + 1"))
        out["file"] = made.files.read("/home/user/notes.txt")
        out["metadata"] = made.get_info().metadata
        out["new_id"] = made.sandbox_id != sbx.sandbox_id
        by_name = Sandbox.create(template="my-snap")
        out["by_name"] = execution(by_name.run_code("x"))
        made.kill()
        by_name.kill()
        out["deleted"] = Sandbox.delete_snapshot(snap.snapshot_id)
        out["deleted_again"] = Sandbox.delete_snapshot(snap.snapshot_id)
        return out
    finally:
        sbx.kill()


def reaped():
    sbx = Sandbox.create(timeout=2)
    before = sbx.get_info().state
    time.sleep(4)
    try:
        sbx.get_info()
        return {"before": str(before), "after_timeout": "found"}
    except Exception as e:
        return {"before": str(before), "after_timeout": type(e).__name__, "running": sbx.is_running()}


def create_only():
    """Creates a sandbox and prints what another client would need to reach it."""
    sbx = Sandbox.create()
    sbx.run_code("secret = 'tenant a'")
    return {"id": sbx.sandbox_id, "token": sbx._envd_access_token}


def scientific():
    import base64
    import struct

    sbx = Sandbox.create()
    try:
        out = {}
        e = sbx.run_code("import pandas as pd\npd.DataFrame({'a': [1, 2], 'b': [3.5, 4.5]})")
        out["frame"] = [{"text": r.text, "html": r.html, "main": r.is_main_result} for r in e.results]
        e = sbx.run_code(
            "import matplotlib.pyplot as plt\nplt.figure(figsize=(4, 3), dpi=100)\n"
            "plt.plot([1, 2, 3], [4, 1, 9], label='y')\nplt.title('rises')\nplt.show()"
        )
        charts = []
        for r in e.results:
            png = base64.b64decode(r.png) if r.png else b""
            chart = r.chart
            charts.append({
                "signature": png[:8].hex(),
                "size": list(struct.unpack(">II", png[16:24])) if len(png) >= 24 else None,
                "main": r.is_main_result,
                "type": chart.type.value if chart else None,
                "title": chart.title if chart else None,
                "points": [list(p) for p in chart.elements[0].points] if chart else None,
            })
        out["chart"] = charts
        sbx.files.write("data.csv", "x,y\n1,2\n3,4\n")
        out["csv"] = execution(sbx.run_code("import pandas as pd\nint(pd.read_csv('data.csv')['y'].sum())"))
        sbx.run_code("import matplotlib.pyplot as plt\nplt.figure()\nplt.bar(['a', 'b'], [1, 2])\nplt.savefig('chart.png')\nplt.close('all')")
        out["saved"] = bytes(sbx.files.read("chart.png", format="bytes"))[:8].hex()
        out["numpy"] = execution(sbx.run_code("import numpy as np\nnp.arange(10).reshape(2, 5).sum(axis=1).tolist()"))
        out["memory"] = execution(sbx.run_code("import numpy as np\nbig = np.ones((12000, 12000))"))
        out["after_memory"] = execution(sbx.run_code("1 + 1"))
        return out
    finally:
        sbx.kill()


SCENARIOS = {f.__name__: f for f in [scientific, basics, streaming, files, commands, contexts, isolation, lifecycle, paused, forked, snapshotted, reaped, create_only]}

if __name__ == "__main__":
    print(json.dumps(SCENARIOS[sys.argv[1]](), default=str))
