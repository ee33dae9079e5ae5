"""An MCP client made with the official Python SDK (PyPI `mcp`), for the integration tests.

Usage: mcp_client.py URL TOKEN [TOOL JSON_ARGS]
Connects over Streamable HTTP with `Authorization: Bearer TOKEN`, lists the tools, optionally calls one, and
prints one JSON object: {"tools": [...], "call": {...}} or {"error": "..."} (exit code 1).
"""

import asyncio
import json
import sys

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


async def main() -> None:
    url, token = sys.argv[1], sys.argv[2]
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(headers=headers, timeout=10) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            tools = await client.list_tools()
            out = {"tools": sorted(t.name for t in tools.tools)}
            if len(sys.argv) > 4:
                result = await client.call_tool(sys.argv[3], json.loads(sys.argv[4]))
                out["call"] = {
                    "is_error": bool(result.is_error),
                    "text": [c.text for c in result.content if getattr(c, "text", None) is not None],
                    "structured": result.structured_content,
                }
            print(json.dumps(out))


def leaves(e: BaseException) -> list[BaseException]:
    """The innermost errors of an exception group (anyio wraps transport errors in them)."""
    if isinstance(e, BaseExceptionGroup):
        return [leaf for inner in e.exceptions for leaf in leaves(inner)]
    return [e]


try:
    asyncio.run(main())
except BaseException as e:  # noqa: BLE001 - report whatever went wrong to the Rust test
    print(json.dumps({"error": "; ".join(f"{type(x).__name__}: {x}" for x in leaves(e))}))
    sys.exit(1)
