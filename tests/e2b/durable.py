"""Sandboxes that outlive their server (#35), through the unmodified e2b SDK.

Usage: durable.py before|after|crash_before|crash_after   with E2B_API_KEY, E2B_API_URL and
E2B_SANDBOX_URL set, and the ids from `before` in CELLA_INPUT for `after`. Each phase prints
one JSON object; the Rust test (tests/e2e/durable.rs) restarts the server between them and
makes the assertions.
"""

import json
import os
import sys
from datetime import datetime, timezone

from e2b import SandboxQuery
from e2b.api.client.models.sandbox_state import SandboxState
from e2b_code_interpreter import Sandbox


def remaining(sbx_id):
    info = Sandbox.get_info(sbx_id)
    return (info.end_at - datetime.now(timezone.utc)).total_seconds()


def before():
    """A live sandbox with Python and JavaScript state, files, metadata and env; and a
    paused one."""
    live = Sandbox.create(metadata={"suite": "durable"}, envs={"GREETING": "hi"}, timeout=600)
    live.run_code("x = 41")
    js = live.create_code_context(language="javascript")
    live.run_code("globalThis.y = 1", context=js)
    live.files.write("/home/user/notes/a.txt", "kept", metadata={"owner": "ada"})
    paused = Sandbox.create(metadata={"suite": "durable-paused"})
    paused.run_code("z = 'paused'")
    paused.files.write("/home/user/p.txt", "p")
    paused.pause()
    return {
        "live": live.sandbox_id,
        "token": live._envd_access_token,
        "js": js.id,
        "paused": paused.sandbox_id,
        "remaining": remaining(live.sandbox_id),
    }


def after():
    given = json.loads(os.environ["CELLA_INPUT"])
    out = {"remaining": remaining(given["live"])}
    paused_ids = [s.sandbox_id for s in Sandbox.list(query=SandboxQuery(state=[SandboxState.PAUSED])).next_items()]
    out["paused_listed"] = given["paused"] in paused_ids
    out["live_listed"] = given["live"] in [s.sandbox_id for s in Sandbox.list().next_items()]
    live = Sandbox.connect(given["live"])
    out["token_kept"] = live._envd_access_token == given["token"]
    out["metadata"] = Sandbox.get_info(given["live"]).metadata
    out["python"] = live.run_code("x + 1").text
    out["env"] = live.run_code("import os; os.environ.get('GREETING')").text
    js = [c for c in live.list_code_contexts() if c.id == given["js"]]
    out["js"] = live.run_code("y + 1", context=js[0]).text if js else "no context"
    out["file"] = live.files.read("/home/user/notes/a.txt")
    out["file_metadata"] = live.files.get_info("/home/user/notes/a.txt").metadata
    out["shell"] = live.commands.run("cat notes/a.txt").stdout
    paused = Sandbox.connect(given["paused"])
    out["paused_state"] = paused.run_code("z").text
    out["paused_file"] = paused.files.read("/home/user/p.txt")
    out["killed"] = [live.kill(), paused.kill()]
    return out


def crash_before():
    """A paused sandbox, then the server is killed."""
    sbx = Sandbox.create(metadata={"suite": "crash"})
    sbx.run_code("w = [1, 2, 3]")
    sbx.files.write("/home/user/w.txt", "paused before the crash")
    sbx.pause()
    return {"paused": sbx.sandbox_id}


def crash_after():
    given = json.loads(os.environ["CELLA_INPUT"])
    sbx = Sandbox.connect(given["paused"])
    out = {"state": sbx.run_code("sum(w)").text, "file": sbx.files.read("/home/user/w.txt")}
    out["killed"] = sbx.kill()
    return out


if __name__ == "__main__":
    print(json.dumps(globals()[sys.argv[1]]()))
