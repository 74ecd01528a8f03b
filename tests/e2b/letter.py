"""E2B's API to the letter: what the pinned SDKs (e2b 2.63.0, e2b-code-interpreter 2.11.5,
unmodified) see of listing, pause, files and code contexts, each where Cella once differed.

Usage: letter.py SCENARIO   with E2B_API_KEY, E2B_API_URL and E2B_SANDBOX_URL set. Prints
one JSON object; the Rust test (tests/e2e/e2b_letter.rs) makes the assertions.
"""

import json
import sys
import threading
import time
from datetime import datetime, timezone

from e2b import SandboxQuery
from e2b.api.client.models.sandbox_state import SandboxState
from e2b_code_interpreter import Sandbox


def error_name(call):
    """The exception's class name, or "no error"."""
    try:
        call()
        return "no error"
    except Exception as e:
        return type(e).__name__


def until(read, want, seconds=10):
    """Reads until it answers `want` or `seconds` pass; the last answer (a bound, not a
    threshold: the assertion is on the value)."""
    end = time.time() + seconds
    got = read()
    while got != want and time.time() < end:
        time.sleep(0.05)
        got = read()
    return got


def ids(paginator):
    out = []
    while paginator.has_next:
        out.extend(s.sandbox_id for s in paginator.next_items())
    return out


def listing():
    """Three sandboxes, the middle one paused: orders, pages of one, a start-time filter."""
    made = []
    try:
        for _ in range(3):
            made.append(Sandbox.create(metadata={"suite": "listing"}))
        mine = SandboxQuery(metadata={"suite": "listing"})
        made[1].pause()
        middle = made[1].get_info().started_at
        out = {"made": [s.sandbox_id for s in made]}
        out["asc"] = ids(Sandbox.list(query=mine, order="asc"))
        out["desc"] = ids(Sandbox.list(query=mine, order="desc"))
        out["asc_pages"] = ids(Sandbox.list(query=mine, order="asc", limit=1))
        out["desc_pages"] = ids(Sandbox.list(query=mine, order="desc", limit=1))
        after = SandboxQuery(metadata={"suite": "listing"}, started_after=middle)
        out["started_after"] = ids(Sandbox.list(query=after, order="asc"))
        paused = SandboxQuery(metadata={"suite": "listing"}, state=[SandboxState.PAUSED])
        out["paused"] = ids(Sandbox.list(query=paused, limit=1))
        future = SandboxQuery(metadata={"suite": "listing"}, started_after=datetime.now(timezone.utc).replace(year=2100))
        out["none_after"] = ids(Sandbox.list(query=future))
        return out
    finally:
        for s in made:
            s.kill()


def paused():
    """A paused sandbox does not run until it is connected to again."""
    sbx = Sandbox.create()
    try:
        sbx.run_code("x = 42")
        out = {"running_before": sbx.is_running()}
        sbx.pause()
        out["running_paused"] = sbx.is_running()
        again = Sandbox.connect(sbx.sandbox_id)
        out["running_connected"] = again.is_running()
        out["kept"] = again.run_code("x").text
        return out
    finally:
        sbx.kill()


def files():
    """remove of a missing file, a directory's size, and the default contexts."""
    sbx = Sandbox.create()
    try:
        out = {"contexts": sorted(c.language for c in sbx.list_code_contexts())}
        out["remove_missing"] = error_name(lambda: sbx.files.remove("/home/user/missing.txt"))
        sbx.files.make_dir("/home/user/dir")
        out["dir_size"] = sbx.files.get_info("/home/user/dir").size
        sbx.files.write("/home/user/f.txt", "12345")
        out["file_size"] = sbx.files.get_info("/home/user/f.txt").size
        return out
    finally:
        sbx.kill()


def metadata():
    """File metadata on write (one file and many), from get_info and list, over rename, and
    cleared by an overwrite without it."""
    from e2b.sandbox.filesystem.filesystem import WriteEntry

    sbx = Sandbox.create()
    try:
        out = {}
        w = sbx.files.write("/home/user/m.txt", "x", metadata={"Owner": "ada", "step": "1"})
        out["written"] = w.metadata
        out["info"] = sbx.files.get_info("/home/user/m.txt").metadata
        many = sbx.files.write_files(
            [WriteEntry(path="/home/user/d/a.txt", data="a"), WriteEntry(path="/home/user/d/b.txt", data="b")],
            metadata={"batch": "7"},
        )
        out["many"] = [e.metadata for e in many]
        out["listed"] = {e.name: e.metadata for e in sbx.files.list("/home/user/d")}
        out["renamed"] = sbx.files.rename("/home/user/m.txt", "/home/user/n.txt").metadata
        out["renamed_info"] = sbx.files.get_info("/home/user/n.txt").metadata
        sbx.files.write("/home/user/n.txt", "overwritten")
        out["overwritten"] = sbx.files.get_info("/home/user/n.txt").metadata
        out["plain"] = sbx.files.get_info("/home/user/d").metadata
        out["bad_key"] = error_name(lambda: sbx.files.write("/home/user/bad.txt", "x", metadata={"bad key": "v"}))
        return out
    finally:
        sbx.kill()


def processes():
    """commands.run(background=True): list, kill(pid), connect(pid), send_stdin and
    close_stdin (output streaming as a line runs: shell.py's `programs`)."""
    from e2b import CommandExitException

    sbx = Sandbox.create()
    try:
        out = {}
        sleeper = sbx.commands.run("sleep 30", background=True)
        listed = {p.pid: p for p in sbx.commands.list()}
        out["listed"] = sleeper.pid in listed
        out["listed_args"] = listed[sleeper.pid].args if sleeper.pid in listed else None
        out["killed"] = sbx.commands.kill(sleeper.pid)
        try:
            sleeper.wait()
            out["killed_wait"] = "no error"
        except CommandExitException as e:
            out["killed_wait"] = e.exit_code
        out["listed_after_kill"] = sleeper.pid in {p.pid for p in sbx.commands.list()}
        out["kill_again"] = sbx.commands.kill(sleeper.pid)

        # A reader fed through send_stdin, its output seen line by line, by the handle that
        # started it and by one that joined it with connect(pid).
        reader = sbx.commands.run("while read l; do echo got:$l; done; echo end", background=True, stdin=True)
        seen = []
        done = {}
        waiter = threading.Thread(target=lambda: done.update(r=reader.wait(on_stdout=lambda s: seen.append(s))))
        waiter.start()
        sbx.commands.send_stdin(reader.pid, "a\n")
        out["first_line_before_the_end"] = until(lambda: list(seen), ["got:a\n"])
        joined = sbx.commands.connect(reader.pid)
        reader.send_stdin("b\n")
        sbx.commands.close_stdin(reader.pid)
        waiter.join(30)
        out["reader_stdout"] = done["r"].stdout if "r" in done else None
        out["joined_stdout"] = joined.wait().stdout

        # A killed python command: its interpreter goes once its cell is done.
        contexts = lambda: sorted(c.language for c in sbx.list_code_contexts())
        slow = sbx.commands.run("python -c 'import time; time.sleep(1)'", background=True)
        out["python_running"] = until(contexts, ["javascript", "python", "python"])
        out["python_killed"] = sbx.commands.kill(slow.pid)
        out["contexts_after"] = until(contexts, ["javascript", "python"])
        out["stdin_to_ended"] = error_name(lambda: sbx.commands.send_stdin(sleeper.pid, "x"))
        return out
    finally:
        sbx.kill()


def killed():
    """kill() while another thread's run_code is mid-cell ends that run_code."""
    sbx = Sandbox.create()
    started = threading.Event()
    seen = {}

    def cell():
        try:
            e = sbx.run_code(
                "import time\nprint('started', flush=True)\nwhile True:\n    time.sleep(0.05)",
                on_stdout=lambda m: started.set(),
                timeout=60,
            )
            seen["result"] = None if e.error is None else e.error.name
        except Exception as e:
            seen["result"] = type(e).__name__

    t = threading.Thread(target=cell)
    t.start()
    started.wait(30)
    sbx.kill()
    t.join(60)
    return {"started": started.is_set(), "ended": not t.is_alive(), "result": seen.get("result")}


SCENARIOS = {f.__name__: f for f in [listing, paused, files, metadata, processes, killed]}

if __name__ == "__main__":
    print(json.dumps(SCENARIOS[sys.argv[1]](), default=str))
