"""Cella's Python interpreter backend, built with componentize-py (CPython inside).

Tools (each runs in the session's instance, so state persists between calls):
  python:run      {code, env?}    run code like a notebook cell: stdout, stderr, the value of a
                                  final expression, and a structured error; `env` adds
                                  environment variables (os.environ) for this cell only
  python:install  {packages}      add pure-Python wheels from the operator's wheelhouse
  python:packages {}              what the wheelhouse offers and what this session installed

Backend config (server configuration, `resources.python.config`; a session's config may
override `workdir`):
  workdir    the session's working directory (its scratch grant), default "/work"
  wheelhouse the read-only directory of wheels (a `grants.dirs` entry), default "/wheels"
"""

# The standard library offered at run time. componentize-py keeps only the modules imported
# while the component is built, so everything a user may import is imported here (the README
# lists it). Modules that need threads, sockets or subprocesses are left out: the sandbox has
# none of them.
import ast, gc, importlib, io, json, os, re, sys, traceback

STDLIB = """abc argparse array base64 binascii bisect calendar cmath codecs collections
collections.abc colorsys contextlib copy csv dataclasses datetime decimal difflib dis email
email.message email.utils enum errno fnmatch fractions functools gc getopt glob graphlib gzip
hashlib heapq hmac html html.parser importlib.metadata importlib.resources importlib.util
inspect ipaddress itertools keyword linecache locale logging math mimetypes numbers operator
os.path pathlib pickle pkgutil platform pprint queue random reprlib sched secrets shlex shutil
statistics string stringprep struct tarfile tempfile textwrap time timeit tokenize tomllib
types typing unicodedata unittest urllib.parse uuid warnings weakref xml.dom.minidom
xml.etree.ElementTree zipfile zipimport zlib zoneinfo bz2 lzma sqlite3""".split()
STDLIB_MISSING = []
for _module in STDLIB:
    try:
        importlib.import_module(_module)
    except ImportError:
        STDLIB_MISSING.append(_module)

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host
from wit_world.imports import types as t

VERSION = "0.1.0"

# Module globals, not attributes of `Guest`: componentize-py may make a new `Guest` per call.
CONFIG = {"workdir": "/work", "wheelhouse": "/wheels"}
NAMESPACE: dict = {}
INSTALLED: dict = {}  # normalised name -> wheel path


def schema(properties, required):
    return json.dumps({"type": "object", "properties": properties, "required": required})


TOOLS = [
    t.ToolInfo(
        name="python:run",
        description="Run Python code in this session (variables, imports and files persist); "
        "returns stdout, stderr, the value of a final expression and a structured error",
        params_schema=schema(
            {
                "code": {"type": "string", "description": "The code to run."},
                "env": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "description": "Environment variables for this cell only.",
                },
            },
            ["code"],
        ),
        needs_session=True,
    ),
    t.ToolInfo(
        name="python:install",
        description="Install pure-Python packages from the server's wheelhouse into this session",
        params_schema=schema(
            {"packages": {"type": "array", "items": {"type": "string"}, "description": "Names, optionally name==version."}},
            ["packages"],
        ),
        needs_session=True,
    ),
    t.ToolInfo(
        name="python:packages",
        description="List the wheelhouse's packages and the ones this session installed",
        params_schema=schema({}, []),
        needs_session=True,
    ),
]


def fail(code, message, data=None):
    return Err(t.Error(code=code, message=message, data=None if data is None else json.dumps(data)))


def normalise(name):
    return re.sub(r"[-_.]+", "_", name).lower()


def wheels():
    """The wheelhouse: normalised name -> [(version, path)]."""
    found = {}
    try:
        entries = os.listdir(CONFIG["wheelhouse"])
    except OSError:
        return found
    for entry in sorted(entries):
        if entry.endswith(".whl"):
            parts = entry[:-4].split("-")
            if len(parts) >= 5:
                found.setdefault(normalise(parts[0]), []).append((parts[1], entry))
    return found


class Stream(io.TextIOBase):
    """A stdout/stderr that keeps everything and streams each write to the host."""

    def __init__(self, channel):
        self.channel = channel
        self.parts = []

    def writable(self):
        return True

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if text:
            self.parts.append(text)
            host.emit(self.channel, text)
        return len(text)

    def value(self):
        return "".join(self.parts)


def error_of(exc, skip_frames):
    tb = exc.__traceback__
    for _ in range(skip_frames):
        if tb is not None:
            tb = tb.tb_next
    return {
        "name": type(exc).__name__,
        "value": str(exc),
        "traceback": "".join(traceback.format_exception(type(exc), exc, tb)),
    }


def run(code, env=None):
    saved_env = None
    if env:
        saved_env = dict(os.environ)
        os.environ.update(env)
    try:
        return run_cell(code)
    finally:
        if saved_env is not None:
            os.environ.clear()
            os.environ.update(saved_env)


def compiled(code):
    """A cell as (its statements, its last expression, whose value is the result), each
    compiled or None. Raises SyntaxError."""
    if code[:1] not in (" ", "\t"):
        try:
            # One expression (`print(1)`, `df.head()`): compiled once, without a syntax tree
            # of Python objects that is compiled in turn (half the time of a small cell).
            return None, compile(code, "<cell>", "eval")
        except SyntaxError:
            pass
    tree = ast.parse(code, "<cell>", "exec")
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = compile(ast.Expression(tree.body.pop().value), "<cell>", "eval")
    return compile(tree, "<cell>", "exec"), last


def run_cell(code):
    out, err = Stream("stdout"), Stream("stderr")
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    result, error = None, None
    try:
        try:
            statements, last = compiled(code)
        except SyntaxError as e:
            error = error_of(e, 99)
        else:
            try:
                if statements is not None:
                    exec(statements, NAMESPACE)
                if last is not None:
                    value = eval(last, NAMESPACE)
                    if value is not None:
                        result = repr(value)
            except BaseException as e:  # SystemExit too: a cell cannot end the session
                error = error_of(e, 1)
        sys.stdout.flush()
    finally:
        sys.stdout, sys.stderr = saved
    return {"stdout": out.value(), "stderr": err.value(), "result": result, "error": error}


def install(packages):
    if not isinstance(packages, list) or not all(isinstance(p, str) for p in packages):
        return fail(4004, "packages must be a list of strings")
    available = wheels()
    installed, cached = [], []
    for spec in packages:
        name, _, version = spec.partition("==")
        key = normalise(name.strip())
        if key in INSTALLED:
            cached.append(spec)
            continue
        candidates = [c for c in available.get(key, []) if not version or c[0] == version.strip()]
        if not candidates:
            offered = sorted(f"{n}=={v}" for n, vs in available.items() for v, _ in vs)
            return fail(
                4006,
                f"package '{spec}' is not in the wheelhouse (no network inside the sandbox); available: {offered}",
                {"package": spec, "available": offered},
            )
        wheel = candidates[-1][1]
        if not wheel.endswith("-none-any.whl"):
            return fail(4000, f"'{wheel}' is not a pure-Python wheel; only pure-Python wheels can be installed")
        path = os.path.join(CONFIG["wheelhouse"], wheel)
        sys.path.insert(0, path)  # a pure wheel is a zip that zipimport reads directly
        importlib.invalidate_caches()
        INSTALLED[key] = path
        installed.append(spec)
    return {"installed": installed, "cached": cached}


class Guest(exports.Guest):
    def describe(self):
        return t.Manifest(
            name="python",
            description="Python " + sys.version.split()[0] + " interpreter (CPython in WebAssembly)",
            version=VERSION,
            tools=TOOLS,
        )

    def warmup(self, backend_config):
        try:
            config = json.loads(backend_config or "{}")
        except ValueError as e:
            raise fail(4002, f"invalid backend config: {e}")
        for key in ("workdir", "wheelhouse"):
            if isinstance(config.get(key), str):
                CONFIG[key] = config[key]
        # Warm the compiler and the traceback machinery once, for the snapshot.
        run("x = [i * i for i in range(10)]\nsum(x)")
        run("1/0")
        # Every object made so far goes into the warm image, which sessions share copy-on-write:
        # a garbage collection walking them would write to all their pages in every session.
        gc.collect()
        gc.freeze()

    def shutdown(self):
        pass

    def initialize(self, worker_id, session_config):
        NAMESPACE.clear()
        NAMESPACE.update({"__name__": "__main__", "__builtins__": __builtins__})
        INSTALLED.clear()
        try:
            config = json.loads(session_config or "{}")
        except ValueError:
            config = {}
        workdir = config.get("workdir") if isinstance(config.get("workdir"), str) else CONFIG["workdir"]
        try:
            os.chdir(workdir)
            cwd = workdir
        except OSError:
            cwd = os.getcwd()
        return json.dumps({"python": sys.version.split()[0], "cwd": cwd})

    def cleanup(self):
        NAMESPACE.clear()

    def call(self, tool, params, context):
        try:
            args = json.loads(params)
        except ValueError as e:
            raise fail(4002, f"params are not JSON: {e}")
        if tool == "python:run":
            code = args.get("code")
            if code is None:
                raise fail(4003, "missing required parameter 'code'")
            if not isinstance(code, str):
                raise fail(4004, "code must be a string")
            env = args.get("env") or {}
            if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
                raise fail(4004, "env must be an object of strings")
            return json.dumps(run(code, env))
        if tool == "python:install":
            if "packages" not in args:
                raise fail(4003, "missing required parameter 'packages'")
            answer = install(args["packages"])
            if isinstance(answer, Err):
                raise answer
            return json.dumps(answer)
        if tool == "python:packages":
            offered = sorted(f"{n}=={v}" for n, vs in wheels().items() for v, _ in vs)
            stdlib = [m for m in STDLIB if m not in STDLIB_MISSING]
            return json.dumps({"wheelhouse": offered, "installed": sorted(INSTALLED), "stdlib": stdlib})
        raise fail(4002, f"unknown tool {tool}")
