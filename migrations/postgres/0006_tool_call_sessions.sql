-- The login session whose credential made each tool call (from a chat, /mcp or the REST execute route), so one
-- session's calls can be traced and revoked together. Rows written before this migration have none.
ALTER TABLE tool_calls ADD COLUMN session_id TEXT;
CREATE INDEX tool_calls_session ON tool_calls(session_id, at);
