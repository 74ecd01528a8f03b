"""Drives Cella's MCP front door with the official MCP Python SDK (PyPI `mcp`), which this
project did not write. The Rust tests run it and assert on the JSON it prints.

    client.py http URL [--key KEY] SCENARIO
    client.py stdio SCENARIO -- COMMAND ARGS...

Scenarios:
  tour    list tools, a stateless call, a stateful sequence in one MCP session, a second
          MCP session that must not see the first one's state, a tool error, an unknown tool.
          Both sessions are closed (HTTP DELETE) at the end.
  abandon open an MCP session, set a key, and leave without closing it.
  calls   one MCP session making N calls to kv.get (for quotas): --count N.
"""

import argparse
import asyncio
import json
import sys
from contextlib import asynccontextmanager

from mcp import ClientSession, MCPError
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def result(r):
    return r.model_dump(mode="json", by_alias=True, exclude_none=True)


async def call(session, name, arguments):
    try:
        return result(await session.call_tool(name, arguments))
    except MCPError as e:
        return {"jsonrpc_error": {"code": e.code, "message": e.message, "data": e.data}}


@asynccontextmanager
async def open_session(args, close=True):
    if args.transport == "http":
        headers = {"Authorization": f"Bearer {args.key}"} if args.key else None
        async with create_mcp_http_client(headers=headers) as http:
            async with streamable_http_client(args.url, http_client=http, terminate_on_close=close) as (r, w):
                async with ClientSession(r, w) as s:
                    yield s, await s.initialize()
    else:
        params = StdioServerParameters(command=args.command[0], args=args.command[1:])
        async with stdio_client(params) as (r, w):
            async with ClientSession(r, w) as s:
                yield s, await s.initialize()


async def tour(args):
    out = {}
    async with open_session(args) as (a, init):
        out["initialize"] = result(init)
        out["tools"] = result(await a.list_tools())["tools"]
        out["stateless"] = await call(a, "rag.search", {"query": "component model", "top_k": 2})
        out["set"] = await call(a, "kv.set", {"key": "colour", "value": "teal"})
        out["get"] = await call(a, "kv.get", {"key": "colour"})
        out["tool_error"] = await call(a, "kv.set", {"key": 5, "value": "x"})
        out["unknown_tool"] = await call(a, "kv.nope", {})
        if args.transport == "http":
            async with open_session(args) as (b, _):
                out["other_get"] = await call(b, "kv.get", {"key": "colour"})
                out["other_set"] = await call(b, "kv.set", {"key": "colour", "value": "plum"})
            out["get_after_other"] = await call(a, "kv.get", {"key": "colour"})
    return out


async def abandon(args):
    async with open_session(args, close=False) as (a, _):
        return {"set": await call(a, "kv.set", {"key": "left", "value": "behind"})}


async def calls(args):
    out = []
    async with open_session(args) as (a, _):
        for _ in range(args.count):
            out.append(await call(a, "kv.get", {"key": "k"}))
    return {"calls": out}


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="transport", required=True)
    h = sub.add_parser("http")
    h.add_argument("url")
    h.add_argument("--key")
    h.add_argument("scenario", choices=["tour", "abandon", "calls"])
    h.add_argument("--count", type=int, default=3)
    s = sub.add_parser("stdio")
    s.add_argument("scenario", choices=["tour", "calls"])
    s.add_argument("--count", type=int, default=3)
    s.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args()
    if args.transport == "stdio" and args.command[:1] == ["--"]:
        args.command = args.command[1:]
    out = asyncio.run({"tour": tour, "abandon": abandon, "calls": calls}[args.scenario](args))
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
