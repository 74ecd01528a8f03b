"""`kv` in Python: a key-value store per session, written with the Python guest SDK.

The same backend as `components/kv` (Rust), `tests/programs/guests/kv-js` and `tests/programs/guests/kv-c`;
all four pass the conformance suite in `tests/conformance/`.
"""

from typing import Annotated, Any, Optional

from cella_guest import Error, Guest, backend, cleanup, initialize, log, shutdown, tool, warmup  # noqa: F401

backend("kv", "A key-value store per session", "0.1.0")

# Module globals are the session's state: every session has its own instance.
items: dict = {}
max_keys: Optional[int] = None
label = ""  # a name for this deployment (backend config `label`), shown in the hooks' log lines

Key = Annotated[str, "The key."]


@warmup
def warm(config: dict) -> None:
    global label
    label = config.get("label") if isinstance(config.get("label"), str) else ""
    log("info", f"kv warmup {label}")


@initialize
def start(worker_id: str, config: dict) -> dict:
    global max_keys
    limit = config.get("max_keys")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
        raise Error.invalid_param("max_keys must be a whole number")
    max_keys = limit
    log("info", "kv session opened")
    return {"max_keys": max_keys}


@cleanup
def close() -> None:
    log("info", f"kv session closed with {len(items)} keys")


@shutdown
def stop() -> None:
    log("info", f"kv shutdown {label}")


@tool("kv:set")
def set_(key: Key, value: Annotated[Any, "Any JSON value."]) -> dict:
    "Store a JSON value under a key"
    if max_keys is not None and len(items) >= max_keys and key not in items:
        raise Error.business(f"key limit reached ({len(items)} keys)")
    previous = items.get(key)
    items[key] = value
    return {"key": key, "previous": previous}


@tool("kv:get")
def get(key: Key) -> dict:
    "Read the value stored under a key"
    if key not in items:
        raise Error.not_found(f"no such key: {key}")
    return {"key": key, "value": items[key]}


@tool("kv:incr")
def incr(key: Annotated[str, "The key; a missing key counts as 0."],
         by: Annotated[Optional[int], "How much to add (default 1)."] = None) -> dict:
    "Add `by` (default 1) to an integer value"
    current = items.get(key, 0)
    if not isinstance(current, int) or isinstance(current, bool):
        raise Error.invalid_param(f"value of '{key}' is not an integer")
    value = current + (1 if by is None else by)
    if not -(2**63) <= value < 2**63:
        raise Error.invalid_param("integer overflow")
    set_(key, value)
    return {"key": key, "value": value}


@tool("kv:delete")
def delete(key: Key) -> dict:
    "Remove a key"
    deleted = key in items
    items.pop(key, None)
    return {"deleted": deleted}


@tool("kv:keys")
def keys() -> dict:
    "List the keys in order"
    return {"keys": sorted(items)}
