"""Speed of a Cella cluster (#35): three real `cella serve` nodes on 127.0.0.1-3 sharing a
store directory, HAProxy (deploy/router/haproxy.cfg, Debian's, unpacked by
scripts/debian-tool.sh) in front. Bounded: every loop has a fixed count; loopback only.

    cargo build --release && target/venvs/e2b/bin/python scripts/cluster_bench.py [N]

Prints, with medians and p95 (ms):
- the router's hop: `execute kv:get` direct to a node and through the router (N sequential
  calls each, the same run), and requests per second with 8 client threads (one Python
  process: the client, not the server, bounds that figure);
- an E2B sandbox through the router: create -> first result (`Sandbox.create` then
  `run_code("1")`), 20 rounds;
- failover: with checkpoint_interval_s 5 and lease_s 15 (the defaults the manifests use),
  kill -9 of a sandbox's node -> the first successful `run_code` through the router;
- drain: SIGTERM of a node holding 1,000 kv and 20 Python sessions -> its exit.
"""
import json, os, signal, socket, statistics, subprocess, sys, tempfile, threading, time

import httpx
from e2b_code_interpreter import Sandbox

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
work = tempfile.mkdtemp(prefix="cella-cluster-bench.")
store = os.path.join(work, "store")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def config(node, checkpoint=5, lease=15):
    return {
        "server": {
            "cache_dir": os.path.join(root, "target", "test-cache"),
            "limits": {"max_instances": 2000, "memory_mb": 64, "call_timeout_s": 30},
            "snapshots": {"dir": store, "keep_on_shutdown": True, "node": node, "checkpoint_interval_s": checkpoint},
            "cluster": {"enabled": True, "lease_s": lease},
        },
        "resources": {
            "kv": {"component": "builtin:kv"},
            "python": {"component": "builtin:python", "config": {"workdir": "/work"},
                       "grants": {"scratch": {"guest": "/work", "quota_mb": 64}}},
            "javascript": {"component": "builtin:javascript"},
        },
    }


def start(node, host, port):
    path = os.path.join(work, f"{node}.json")
    with open(path, "w") as f:
        json.dump(config(node), f)
    log = open(os.path.join(work, f"{node}.log"), "a")
    p = subprocess.Popen([os.path.join(root, "target/release/cella"), "serve", "--host", host, "--port", str(port),
                          "--config", path], stdout=log, stderr=log)
    base = f"http://{host}:{port}"
    for _ in range(600):
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                return p, base
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{node} did not start (see {work}/{node}.log)")


def stats(samples):
    samples = sorted(samples)
    return f"p50 {statistics.median(samples):.3f} ms, p95 {samples[int(len(samples) * 0.95) - 1]:.3f} ms"


def timed(f, n):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        out.append((time.perf_counter() - t) * 1000)
    return out


hosts = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
ports = [free_port() for _ in hosts]
nodes = [start(f"node-{k}", h, p) for k, (h, p) in enumerate(zip(hosts, ports))]
haproxy = subprocess.run(["bash", os.path.join(root, "scripts/debian-tool.sh"), os.path.join(root, "deploy/router/haproxy.debs"),
                          "usr/sbin/haproxy"], check=True, capture_output=True, text=True).stdout.strip()
router_port = free_port()
env = dict(os.environ, ROUTER_BIND=f"127.0.0.1:{router_port}",
           **{f"CELLA_NODE_{k}": f"{h}:{p}" for k, (h, p) in enumerate(zip(hosts, ports))})
router = subprocess.Popen([haproxy, "-db", "-f", os.path.join(root, "deploy/router/haproxy.cfg")], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
routed = f"http://127.0.0.1:{router_port}"
time.sleep(1.5)
try:
    # 1. The router's hop, on one worker (hashed to one node): direct to that node vs routed.
    c = httpx.Client(timeout=30)
    body = {"worker_id": "bench-w", "resource_type": "kv"}
    c.post(routed + "/api/v1/session/create", json=body).raise_for_status()
    owner = next(b for _, b in nodes if httpx.get(b + "/ready").json()["total_sessions"] > 0)
    call = {"worker_id": "bench-w", "action": "kv:get", "params": {"key": "k"}}
    for base in (owner, routed):
        c.post(base + "/api/v1/execute", json=call)
    direct = timed(lambda: c.post(owner + "/api/v1/execute", json=call), N)
    via = timed(lambda: c.post(routed + "/api/v1/execute", json=call), N)
    print(f"execute kv:get direct: {stats(direct)}")
    print(f"execute kv:get via the router: {stats(via)}; ratio of medians {statistics.median(via) / statistics.median(direct):.2f}")

    def rate(base, threads=8, per=N // 4):
        def work():
            cl = httpx.Client(timeout=30)
            for _ in range(per):
                cl.post(base + "/api/v1/execute", json=call)
        t = time.perf_counter()
        ts = [threading.Thread(target=work) for _ in range(threads)]
        [x.start() for x in ts]
        [x.join() for x in ts]
        return threads * per / (time.perf_counter() - t)
    d, r = rate(owner), rate(routed)
    print(f"req/s, 8 threads: direct {d:.0f}, via the router {r:.0f} ({r / d:.2f})")

    # 1b. A new worker through the router (its first session records its node in the store),
    # and a worker's call that reaches another node (forwarded there to its owner).
    fresh = iter(range(10**6))

    def new_worker():
        w = f"bench-new-{next(fresh)}"
        c.post(routed + "/api/v1/session/create", json={"worker_id": w, "resource_type": "kv"}).raise_for_status()
        c.post(routed + "/api/v1/execute", json={"worker_id": w, "action": "kv:set", "params": {"key": "k", "value": 1}}).raise_for_status()
    print(f"new worker (session/create + first call) via the router: {stats(timed(new_worker, 200))}")
    other = next(b for _, b in nodes if b != owner)
    forwarded = timed(lambda: c.post(other + "/api/v1/execute", json=call), N)
    print(f"execute kv:get at another node (forwarded to the worker's node): {stats(forwarded)}")

    # 2. E2B create -> first result through the router.
    os.environ.update(E2B_API_KEY="any-key", E2B_API_URL=routed, E2B_SANDBOX_URL=routed)
    made = []

    def create_and_run():
        s = Sandbox.create()
        s.run_code("1")
        made.append(s)
    create_and_run()
    print(f"E2B create -> first result via the router: {stats(timed(create_and_run, 20))}")
    for s in made:
        s.kill()

    # 3. Failover: kill -9 of a sandbox's node -> the first successful call.
    sbx = Sandbox.create(timeout=600)
    sbx.run_code("x = 41")
    time.sleep(6)  # one checkpoint round (5 s) has run
    with open(os.path.join(store, "cluster", "sandboxes", sbx.sandbox_id, "owner.json")) as f:
        k = int(json.load(f)["node"].split("-")[1])
    proc, _ = nodes[k]
    t = time.perf_counter()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    value = None
    for _ in range(600):
        try:
            value = Sandbox.connect(sbx.sandbox_id).run_code("x + 1").text
            break
        except Exception:
            time.sleep(0.1)
    print(f"failover (lease_s 15, checkpoint_interval_s 5): kill -9 -> first result {time.perf_counter() - t:.2f} s (x + 1 = {value})")
    nodes[k] = start(f"node-{k}", hosts[k], ports[k])

    # 4. Drain of 1,000 kv and 20 Python sessions on one node.
    _, base = nodes[(k + 1) % 3]
    proc = nodes[(k + 1) % 3][0]
    for i in range(1000):
        c.post(base + "/api/v1/session/create", json={"worker_id": f"drain-{i}", "resource_type": "kv"})
        c.post(base + "/api/v1/execute", json={"worker_id": f"drain-{i}", "action": "kv:set", "params": {"key": "k", "value": i}})
    for i in range(20):
        c.post(base + "/api/v1/session/create", json={"worker_id": f"drain-py-{i}", "resource_type": "python"})
        c.post(base + "/api/v1/execute", json={"worker_id": f"drain-py-{i}", "action": "python:run", "params": {"code": "x = list(range(1000))"}})
    held = httpx.get(base + "/ready").json()["total_sessions"]
    t = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    proc.wait()
    print(f"drain of {held} sessions (1,000 kv + 20 Python + any before): SIGTERM -> exit {time.perf_counter() - t:.2f} s")
finally:
    router.kill()
    for p, _ in nodes:
        p.kill()
