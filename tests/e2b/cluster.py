"""A sandbox in a cluster of Cella nodes (#35), through the unmodified e2b SDK.

Usage: cluster.py make|use|roll|counters|listed|read   with E2B_API_KEY, E2B_API_URL and E2B_SANDBOX_URL naming one
node (or the router), and for `use` the output of `make` in CELLA_INPUT. Prints one JSON
object; the Rust test (tests/e2e/cluster.rs) makes the assertions.
"""

import json
import os
import sys

from e2b_code_interpreter import Sandbox


def make():
    sbx = Sandbox.create(timeout=600)
    sbx.run_code("x = 41")
    sbx.files.write("/home/user/c.txt", "written on the first node")
    return {"id": sbx.sandbox_id}


def use():
    given = json.loads(os.environ["CELLA_INPUT"])
    sbx = Sandbox.connect(given["id"])
    return {"python": sbx.run_code("x + 1").text, "file": sbx.files.read("/home/user/c.txt")}



def roll():
    """A bounded load loop: increments a counter in each given sandbox, round after round,
    until the file CELLA_STOP exists (or 300 rounds, or 180 s); a call that fails is retried
    and not counted. Writes the number of rounds done to CELLA_STOP.rounds after each round;
    prints what was acknowledged."""
    import time

    given = json.loads(os.environ["CELLA_INPUT"])
    acked = {i: 0 for i in given["ids"]}
    boxes, failures, end = {}, 0, time.time() + 180
    for done in range(300):
        if os.path.exists(os.environ["CELLA_STOP"]) or time.time() > end:
            break
        with open(os.environ["CELLA_STOP"] + ".rounds", "w") as f:
            f.write(str(done))
        for i in given["ids"]:
            try:
                if i not in boxes:
                    boxes[i] = Sandbox.connect(i)
                got = boxes[i].run_code("n += 1\nn")
                if got.error is None and got.text is not None:
                    acked[i] = max(acked[i], int(got.text))
                else:
                    failures += 1
            except Exception:
                failures += 1
                boxes.pop(i, None)
                time.sleep(0.2)
    return {"acked": acked, "failures": failures}


def counters():
    """Makes the given number of sandboxes, each with a counter at 0."""
    n = json.loads(os.environ["CELLA_INPUT"])["n"]
    ids = []
    for _ in range(n):
        sbx = Sandbox.create(timeout=600)
        sbx.run_code("n = 0")
        ids.append(sbx.sandbox_id)
    return {"ids": ids}


def listed():
    """The ids of every running sandbox, as the SDK pages through them (two a page)."""
    paginator = Sandbox.list(limit=2)
    ids = []
    while paginator.has_next:
        ids.extend(s.sandbox_id for s in paginator.next_items())
    return {"ids": sorted(ids)}


def read():
    """Each given sandbox's counter."""
    given = json.loads(os.environ["CELLA_INPUT"])
    return {i: int(Sandbox.connect(i).run_code("n").text) for i in given["ids"]}


if __name__ == "__main__":
    print(json.dumps(globals()[sys.argv[1]]()))
