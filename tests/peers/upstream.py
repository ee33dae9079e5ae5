"""An upstream MCP server made with the official Python SDK (PyPI `mcp`), for the integration tests.

Usage: upstream.py                (stdio)
       upstream.py PORT           (Streamable HTTP at http://127.0.0.1:PORT/mcp, stateless, JSON responses)
       upstream.py PORT sessions  (the same with sessions (Mcp-Session-Id) and answers as server-sent events)
Over HTTP it prints the port it listens on as its first line, once bound: with PORT 0 the system picks a free
one, so a test never races another process for a port it picked and let go.
Tools: multiply(a, b) -> a * b, and whoami() -> this process's id (to watch restarts).
"""

import logging
import os
import socket
import sys

import uvicorn

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
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", int(sys.argv[1])))
        listener.listen(128)
        print(listener.getsockname()[1], flush=True)
        http = app.streamable_http_app(stateless_http=plain, json_response=plain, host="127.0.0.1")
        uvicorn.Server(uvicorn.Config(http, log_level="warning")).run(sockets=[listener])
    else:
        app.run(transport="stdio")
