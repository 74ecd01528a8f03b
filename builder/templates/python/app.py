"""`{{name}}`: a Cella backend. Build it with `cella build`, run it with
`cella serve --backend build/{{name}}.wasm`."""

from typing import Annotated

from cella_guest import Error, Guest, backend, initialize, tool  # noqa: F401 (Guest: the exports)

backend("{{name}}", "A new Cella backend", "0.1.0")

# Module globals are the session's state: every session has its own instance.
greeted = 0


@initialize
def start(worker_id: str, config: dict) -> dict:
    return {}


@tool("{{name}}:greet")
def greet(name: Annotated[str, "Who to greet."]) -> dict:
    "Greet someone; counts the greetings of this session"
    global greeted
    if not name:
        raise Error.invalid_param("name must not be empty")
    greeted += 1
    return {"greeting": f"Hello, {name}!", "count": greeted}
