-- The tool-call log: every tool call by the agent (and, later, /mcp and the REST execute route), with who made
-- it, in which conversation, against which server, and its approval. Arguments are stored redacted.
CREATE TABLE tool_calls (
    id TEXT PRIMARY KEY,
    at INTEGER NOT NULL,
    user_id TEXT,
    conversation_id TEXT,
    server TEXT NOT NULL DEFAULT 'builtin',
    tool_name TEXT NOT NULL,
    tool_call_id TEXT,
    arguments TEXT NOT NULL,
    status TEXT NOT NULL,
    duration_ms REAL NOT NULL,
    result TEXT,
    result_length INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    source TEXT NOT NULL,
    approval TEXT,
    approver_id TEXT,
    metadata TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX tool_calls_user ON tool_calls(user_id, at);
CREATE INDEX tool_calls_at ON tool_calls(at);
