"""An upstream MCP server (official Python SDK, PyPI `mcp`) whose tool list changes while it runs, and with a slow
tool, for the integration tests of `notifications/tools/list_changed` and of an upstream killed mid-call.

Usage: changing_upstream.py            (stdio)
       changing_upstream.py PORT       (Streamable HTTP at http://127.0.0.1:PORT/mcp, stateless, JSON responses)
Tools: whoami() -> this process's id (over stdio a reconnect is a new process); add_tool(name) registers a tool `name` (returning its own name) and sends
`notifications/tools/list_changed`; slow(seconds) answers after that many seconds.
"""

import asyncio
import logging
import os
import sys

from mcp.server.mcpserver import Context, MCPServer

app = MCPServer("changing", log_level="WARNING")


@app.tool()
def whoami() -> int:
    """The process id of this server."""
    return os.getpid()


@app.tool()
async def add_tool(name: str, ctx: Context) -> str:
    """Register a tool `name` at run time and tell the client the tool list changed."""

    def added() -> str:
        return name

    app.add_tool(added, name=name, description=f"added at run time as {name}")
    await ctx.session.send_tool_list_changed()
    return f"added {name}"


@app.tool()
async def slow(seconds: float) -> str:
    """Answer after `seconds`."""
    await asyncio.sleep(seconds)
    return f"slept {seconds}"


if __name__ == "__main__":
    if len(sys.argv) > 1:
        logging.getLogger("uvicorn.access").disabled = True
        app.run(transport="streamable-http", host="127.0.0.1", port=int(sys.argv[1]), stateless_http=True, json_response=True)
    else:
        app.run(transport="stdio")
