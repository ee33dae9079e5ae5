-- Upstream MCP servers added by admins at run time (MCP_SERVERS_FILE and MCP_SERVER_URL are not stored).
-- `config` is the server's entry in the mcpServers form: {"command","args","env"} or {"url","headers"}.
CREATE TABLE mcp_servers (
    name TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    created_by TEXT,
    created_at INTEGER NOT NULL
);
