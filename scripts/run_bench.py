"""Speed of the run API (issue 4), against a running `cella serve` (default config):

    target/venvs/mcp/bin/python scripts/run_bench.py http://127.0.0.1:18890 [rounds] [python|javascript]

Prints medians (ms) of: a new Python session ready to run (create-and-close with an empty
run), `print(1)` in a live session over HTTP, a 5-run workflow in one kept-alive session vs 5
runs in fresh sessions (ratio), and starting `python3 -S -c 'print(1)'` as a process (ratio):
the real interpreter binary (`sys.executable` of `python3` on PATH, not a version manager's
shim, which costs about 100 ms more), without `site`.
"""
import statistics, subprocess, sys, time
import httpx2 as httpx

base = sys.argv[1].rstrip("/")
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 200
language = sys.argv[3] if len(sys.argv) > 3 else "python"
client = httpx.Client(timeout=60)


def run(body):
    r = client.post(base + "/api/v1/run", json={"language": language, **body})
    r.raise_for_status()
    return r.json()["data"]


def median_ms(f, n=rounds):
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples)


run({"code": "1"})  # warm
empty = "pass" if language == "python" else ";"
new_session = median_ms(lambda: run({"code": empty}))
server_session_stage = statistics.median(
    [next(s["ms"] for s in run({"code": empty})["timing"]["stages"] if s["stage"] == "session") for _ in range(rounds)]
)
sid = run({"code": "1", "keep_alive": True})["session_id"]
one_print = "print(1)" if language == "python" else "console.log(1)"
print_live = median_ms(lambda: run({"code": one_print, "session_id": sid, "keep_alive": True}))
if language == "python":
    steps = ["import json", "data = [i * i for i in range(1000)]", "total = sum(data)", "text = json.dumps(total)", "print(text)"]
else:
    steps = ["var n = 1000", "var data = Array.from({length: n}, (_, i) => i * i)", "var total = data.reduce((a, b) => a + b)",
             "var text = JSON.stringify(total)", "console.log(text)"]


def workflow_one_session():
    s = run({"code": steps[0], "keep_alive": True})["session_id"]
    for code in steps[1:]:
        run({"code": code, "session_id": s, "keep_alive": True})
    client.delete(f"{base}/api/v1/run/sessions/{s}")


def workflow_fresh_sessions():
    # Each fresh session must redo the earlier steps to have their state.
    for i in range(len(steps)):
        run({"code": "\n".join(steps[: i + 1])})


one = median_ms(workflow_one_session, max(20, rounds // 10))
fresh = median_ms(workflow_fresh_sessions, max(20, rounds // 10))
real_python = subprocess.run(["python3", "-c", "import sys; print(sys.executable)"], capture_output=True, text=True, check=True).stdout.strip()
process = median_ms(lambda: subprocess.run([real_python, "-S", "-c", "print(1)"], capture_output=True, check=True), 50)
print(f"[{language}] new session ready to run, HTTP round trip incl. close: {new_session:.2f} ms")
print(f"  of which the session stage (instance from warm image + initialize): {server_session_stage:.2f} ms")
print(f"{one_print} in a live session over HTTP: {print_live:.2f} ms")
print(f"5-run workflow: one kept-alive session {one:.2f} ms vs fresh sessions {fresh:.2f} ms (x{fresh / one:.2f})")
print(f"{real_python} -S -c 'print(1)' as a process: {process:.2f} ms; a new Cella session is x{process / new_session:.1f} faster")
