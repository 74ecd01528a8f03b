"""The kv backend of Cella's components/kv, written as an AgentFlow backend, for
scripts/load.sh's baseline: AgentFlow's own server (github.com/OpenDCAI/AgentFlow, folder
sandbox/) running the same tool, so the two servers answer the same `execute kv:get`.

Each session holds its own dict (returned by `initialize`, kept in the session's data), as
Cella's kv component holds its own map per session.
"""

from sandbox.server.backends.base import Backend
from sandbox.server.backends.response_builder import build_error_response, build_success_response
from sandbox.server.core import tool


class KvBackend(Backend):
    """A key-value map per session: kv:set and kv:get, as Cella's kv."""

    name = "kv"

    async def initialize(self, worker_id: str, config: dict) -> dict:
        return {"items": {}}

    @tool("kv:set")
    async def set(self, key: str, value, session_info: dict) -> dict:
        items = session_info["data"]["items"]
        previous = items.get(key)
        items[key] = value
        return build_success_response({"key": key, "previous": previous}, "kv:set", resource_type="kv")

    @tool("kv:get")
    async def get(self, key: str, session_info: dict) -> dict:
        items = session_info["data"]["items"]
        if key not in items:
            return build_error_response(4004, f"no key '{key}'", "kv:get", resource_type="kv")
        return build_success_response({"key": key, "value": items[key]}, "kv:get", resource_type="kv")
