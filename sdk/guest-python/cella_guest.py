"""Cella's guest SDK for Python: write a backend as decorated functions, build it with
componentize-py (`cella build`).

    from typing import Annotated, Any
    from cella_guest import Guest, Error, backend, tool, initialize  # Guest: the exports

    backend("kv", "A key-value store per session", "0.1.0")
    items: dict = {}

    @tool("kv:get")
    def get(key: Annotated[str, "The key."]) -> dict:
        "Read the value stored under a key"
        if key not in items:
            raise Error.not_found(f"no such key: {key}")
        return {"key": key, "value": items[key]}

The parameters' JSON Schema comes from the type hints (`str`, `int`, `float`, `bool`,
`list[...]`, `dict`, `Any`, `Optional[...]`, `Literal[...]`, with `Annotated[T, "doc"]` for a
description); a parameter with a default is optional. Calls are checked against the hints
before the function runs: a missing parameter is 4003, a wrong type 4004. The return value is
any JSON-serialisable value.

Each session has its own instance, so module globals are the session's state. A tool with
`session=False` is stateless and runs in a fresh, warm instance. Lifecycle hooks are
decorated functions: `@warmup` (config) once, before the warm image is taken;
`@initialize` (worker_id, config) -> data; `@cleanup` (); `@shutdown` ().

`Guest` must be imported into the app module: componentize-py looks the exports up there.
"""

import inspect
import json
import sys
import traceback
import types
import typing

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host
from wit_world.imports import types as t

__all__ = [
    "Error", "Guest", "backend", "context", "tool", "warmup", "initialize", "cleanup", "shutdown", "log", "emit",
    "INVALID_INPUT", "BUSINESS_FAILURE", "INVALID_REQUEST_FORMAT", "MISSING_REQUIRED_FIELD",
    "INVALID_PARAMETER_TYPE", "NO_RESULTS_FOUND", "INTERNAL_ERROR",
]

# The result codes backends use most (the table in docs/codes.md).
INVALID_INPUT = 4000
BUSINESS_FAILURE = 4001
INVALID_REQUEST_FORMAT = 4002
MISSING_REQUIRED_FIELD = 4003
INVALID_PARAMETER_TYPE = 4004
NO_RESULTS_FOUND = 4006
INTERNAL_ERROR = 5013


class Error(Exception):
    """An error a tool or hook reports: its code and message become the result envelope's."""

    def __init__(self, code: int, message: str, data=None):
        super().__init__(message)
        self.code, self.message, self.data = code, message, data

    @classmethod
    def invalid_input(cls, message, data=None):
        return cls(INVALID_INPUT, message, data)

    @classmethod
    def business(cls, message, data=None):
        return cls(BUSINESS_FAILURE, message, data)

    @classmethod
    def invalid_param(cls, message, data=None):
        return cls(INVALID_PARAMETER_TYPE, message, data)

    @classmethod
    def not_found(cls, message, data=None):
        return cls(NO_RESULTS_FOUND, message, data)

    @classmethod
    def internal(cls, message, data=None):
        return cls(INTERNAL_ERROR, message, data)

    def _err(self):
        data = None if self.data is None else json.dumps(self.data)
        return Err(t.Error(code=int(self.code), message=str(self.message), data=data))


_LEVELS = {
    "trace": host.Level.TRACE, "debug": host.Level.DEBUG, "info": host.Level.INFO,
    "warn": host.Level.WARN, "error": host.Level.ERROR,
}


def log(level: str, message: str) -> None:
    """Writes a log line through the host (tagged with the worker and session ids)."""
    host.log(_LEVELS.get(level, host.Level.INFO), str(message))


def emit(channel: str, text: str) -> None:
    """Streams output (`stdout` or `stderr`) of the call in progress to a live watcher."""
    host.emit(channel, str(text))


class _Registry:
    def __init__(self):
        self.name = None
        self.description = ""
        self.version = "0.1.0"
        self.tools = {}  # name -> (function, ToolInfo, checks)
        self.hooks = {}


_REGISTRY = _Registry()
_CONTEXT = None


def context():
    """The call in progress: `.worker_id`, `.session_id` (None when stateless), `.trace_id`."""
    return _CONTEXT


def backend(name: str, description: str, version: str = "0.1.0") -> None:
    """Names the backend: `name` is its resource type, the prefix of every tool name."""
    _REGISTRY.name, _REGISTRY.description, _REGISTRY.version = name, description, version


# ---- JSON Schema from type hints -------------------------------------------------------

_NoneType = type(None)


def _schema(hint):
    """(JSON Schema, check) for a type hint; check(value) -> bool."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Annotated:
        schema, check = _schema(args[0])
        docs = [a for a in args[1:] if isinstance(a, str)]
        if docs:
            schema = dict(schema, description=docs[0])
        return schema, check
    if hint is inspect.Parameter.empty or hint is typing.Any or hint is object:
        return {}, lambda v: True
    if hint is str:
        return {"type": "string"}, lambda v: isinstance(v, str)
    if hint is bool:
        return {"type": "boolean"}, lambda v: isinstance(v, bool)
    if hint is int:
        return {"type": "integer"}, lambda v: isinstance(v, int) and not isinstance(v, bool)
    if hint is float:
        return {"type": "number"}, lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
    if hint is _NoneType:
        return {"type": "null"}, lambda v: v is None
    if hint is dict or origin is dict:
        return {"type": "object"}, lambda v: isinstance(v, dict)
    if hint is list or origin is list:
        if args:
            item_schema, item_check = _schema(args[0])
            return {"type": "array", "items": item_schema}, lambda v: isinstance(v, list) and all(map(item_check, v))
        return {"type": "array"}, lambda v: isinstance(v, list)
    if origin is typing.Literal:
        return {"enum": list(args)}, lambda v: v in args
    if origin is typing.Union or origin is types.UnionType:
        parts = [_schema(a) for a in args]
        return {"anyOf": [p[0] for p in parts]}, lambda v: any(p[1](v) for p in parts)
    raise TypeError(f"cella_guest: unsupported parameter type {hint!r}")


def _describe_parameters(function):
    signature = inspect.signature(function)
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except Exception:
        hints = {}
    properties, required, checks = {}, [], []
    for name, parameter in signature.parameters.items():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        schema, check = _schema(hints.get(name, parameter.annotation))
        optional = parameter.default is not inspect.Parameter.empty
        if optional and parameter.default is not None:
            try:
                json.dumps(parameter.default)
                schema = dict(schema, default=parameter.default)
            except TypeError:
                pass
        properties[name] = schema
        if not optional:
            required.append(name)
        checks.append((name, optional, parameter.default, check, schema))
    schema = {"type": "object", "properties": properties, "required": required}
    return schema, checks


def tool(name: str, description: str = None, session: bool = True):
    """Registers a function as the tool `name` (`type:action`). Its docstring is the
    description unless `description` is given. `session=False` makes it stateless."""

    def register(function):
        text = description or inspect.cleandoc(function.__doc__ or "").split("\n\n")[0].replace("\n", " ")
        schema, checks = _describe_parameters(function)
        info = t.ToolInfo(name=name, description=text or name, params_schema=json.dumps(schema), needs_session=session)
        _REGISTRY.tools[name] = (function, info, checks)
        return function

    return register


def _hook(name):
    def register(function):
        _REGISTRY.hooks[name] = function
        return function

    register.__name__ = name
    register.__doc__ = f"Registers the `{name}` lifecycle hook."
    return register


warmup = _hook("warmup")
initialize = _hook("initialize")
cleanup = _hook("cleanup")
shutdown = _hook("shutdown")


# ---- The exports -------------------------------------------------------------------------

def _as_err(exception):
    if isinstance(exception, Error):
        return exception._err()
    if isinstance(exception, Err):
        return exception
    log("error", "".join(traceback.format_exception(exception)))
    return Error.internal(f"{type(exception).__name__}: {exception}")._err()


def _config(text):
    try:
        value = json.loads(text or "{}")
    except ValueError as e:
        raise Error(INVALID_REQUEST_FORMAT, f"config is not JSON: {e}")._err()
    return {} if value is None else value


def _arguments(params, checks):
    try:
        args = json.loads(params or "{}")
    except ValueError as e:
        raise Error(INVALID_REQUEST_FORMAT, f"params are not JSON: {e}")
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise Error(INVALID_PARAMETER_TYPE, "params must be a JSON object")
    kwargs = {}
    for name, optional, default, check, schema in checks:
        if name not in args or (args[name] is None and optional):
            if not optional:
                raise Error(MISSING_REQUIRED_FIELD, f"missing required parameter '{name}'")
            kwargs[name] = default
            continue
        if not check(args[name]):
            wanted = schema.get("type") or schema.get("enum") or schema.get("anyOf")
            raise Error(INVALID_PARAMETER_TYPE, f"parameter '{name}' must be {wanted}, got {json.dumps(args[name])}")
        kwargs[name] = args[name]
    return kwargs


class Guest(exports.Guest):
    """The component's exports, driven by what the decorators registered."""

    def describe(self):
        name = _REGISTRY.name or next(iter(_REGISTRY.tools), "backend:").split(":")[0]
        tools = [info for (_, info, _) in _REGISTRY.tools.values()]
        return t.Manifest(name=name, description=_REGISTRY.description, version=_REGISTRY.version, tools=tools)

    def warmup(self, backend_config):
        hook = _REGISTRY.hooks.get("warmup")
        if hook is not None:
            config = _config(backend_config)
            try:
                hook(config)
            except BaseException as e:
                raise _as_err(e)

    def shutdown(self):
        hook = _REGISTRY.hooks.get("shutdown")
        if hook is not None:
            try:
                hook()
            except BaseException as e:
                log("error", f"shutdown failed: {e}")

    def initialize(self, worker_id, session_config):
        hook = _REGISTRY.hooks.get("initialize")
        if hook is None:
            return "{}"
        config = _config(session_config)
        try:
            data = hook(worker_id, config)
        except BaseException as e:
            raise _as_err(e)
        return json.dumps({} if data is None else data)

    def cleanup(self):
        hook = _REGISTRY.hooks.get("cleanup")
        if hook is not None:
            try:
                hook()
            except BaseException as e:
                raise _as_err(e)

    def call(self, tool, params, context):
        entry = _REGISTRY.tools.get(tool)
        if entry is None:
            raise Error(INVALID_REQUEST_FORMAT, f"Tool not found: {tool}")._err()
        function, _, checks = entry
        global _CONTEXT
        _CONTEXT = context
        try:
            result = function(**_arguments(params, checks))
            return json.dumps(result)
        except BaseException as e:
            raise _as_err(e)
        finally:
            _CONTEXT = None
