"""A sandbox in a cluster of Cella nodes (#35), through the unmodified e2b SDK.

Usage: cluster.py make|use   with E2B_API_KEY, E2B_API_URL and E2B_SANDBOX_URL naming one
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


if __name__ == "__main__":
    print(json.dumps(globals()[sys.argv[1]]()))
