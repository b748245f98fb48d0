"""A real MCP client (the official Python SDK) driven line by line.

The Rust tests (tests/mcp.rs) start it, then write one JSON command per
line on its stdin and read one JSON answer per line on its stdout:

    {"op": "list_tools"}
    {"op": "call", "name": "search_audit_logs", "args": {...}}
    {"op": "list_resources"}
    {"op": "read_resource", "uri": "audit-export://filters"}

Transport, from argv:
    mcp_bridge.py stdio COMMAND ARG...      (env passes through; AUDIT_EXPORT_TOKEN included)
    mcp_bridge.py http URL                  (bearer token from MCP_BEARER)

The first line it prints is the server's initialize answer. A protocol
error answers {"protocol_error": "..."}; a failure to connect exits 1
with the reason on stderr.
"""

import asyncio
import json
import os
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def dump(model):
    return model.model_dump(mode="json", by_alias=False, exclude_none=True)


async def serve(session):
    init = await session.initialize()
    out({"initialize": dump(init)})
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        cmd = json.loads(line)
        try:
            op = cmd["op"]
            if op == "list_tools":
                r = await session.list_tools()
                out({"tools": [dump(t) for t in r.tools]})
            elif op == "call":
                r = await session.call_tool(cmd["name"], cmd.get("args"))
                out(
                    {
                        "is_error": bool(r.is_error),
                        "structured": r.structured_content,
                        "text": [c.text for c in r.content if getattr(c, "type", "") == "text"],
                    }
                )
            elif op == "list_resources":
                r = await session.list_resources()
                out({"resources": [dump(x) for x in r.resources]})
            elif op == "read_resource":
                r = await session.read_resource(cmd["uri"])
                out({"contents": [dump(c) for c in r.contents]})
            else:
                out({"protocol_error": f"bridge: unknown op {op!r}"})
        except MCPError as e:
            out({"protocol_error": str(e)})


async def main():
    kind = sys.argv[1]
    if kind == "stdio":
        params = StdioServerParameters(command=sys.argv[2], args=sys.argv[3:], env=dict(os.environ))
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                await serve(session)
    elif kind == "http":
        token = os.environ["MCP_BEARER"]
        client = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
        async with client:
            async with streamable_http_client(sys.argv[2], http_client=client) as streams:
                read, write = streams[0], streams[1]
                async with ClientSession(read, write) as session:
                    await serve(session)
    else:
        sys.exit(f"mcp_bridge: unknown transport {kind!r}")


if __name__ == "__main__":
    asyncio.run(main())
