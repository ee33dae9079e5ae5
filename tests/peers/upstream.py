"""An upstream MCP server made with the official Python SDK (PyPI `mcp`), for the integration tests.

Usage: upstream.py                (stdio)
       upstream.py PORT           (Streamable HTTP at http://127.0.0.1:PORT/mcp, stateless, JSON responses)
       upstream.py PORT sessions  (the same with sessions (Mcp-Session-Id) and answers as server-sent events)
Tools: multiply(a, b) -> a * b, and whoami() -> this process's id (to watch restarts).
"""

import logging
import os
import sys

from mcp.server.mcpserver import MCPServer

app = MCPServer("upstream", log_level="WARNING")


@app.tool()
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


@app.tool()
def whoami() -> int:
    """The process id of this server."""
    return os.getpid()


if __name__ == "__main__":
    if len(sys.argv) > 1:
        logging.getLogger("uvicorn.access").disabled = True
        plain = sys.argv[2:] != ["sessions"]
        app.run(transport="streamable-http", host="127.0.0.1", port=int(sys.argv[1]), stateless_http=plain, json_response=plain)
    else:
        app.run(transport="stdio")
