-- Saved tests (issue 10, seed 004): a user's named tool calls (`mcp`) and read-only queries on their own database
-- connection profiles (`database`), kept to run again. Owned: every read and write names user_id. parameters and
-- last_result are JSON text; last_execution is when the last run started (epoch ms), execution_count how many runs
-- finished (incremented in the UPDATE itself, so concurrent runs are all counted).
CREATE TABLE saved_tests (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    endpoint_path TEXT NOT NULL DEFAULT '',
    method TEXT NOT NULL DEFAULT 'POST',
    parameters TEXT NOT NULL DEFAULT '[]',
    request_type TEXT NOT NULL,
    test_category TEXT NOT NULL DEFAULT 'general',
    server_id TEXT,
    tool_name TEXT,
    last_result TEXT,
    last_status TEXT,
    last_execution BIGINT,
    execution_count BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
CREATE INDEX saved_tests_user_category ON saved_tests(user_id, test_category);

-- The seeded `user` role may keep and run its own tests (admin holds `*`); skipped if an admin removed the role.
INSERT INTO role_permissions (role, permission)
SELECT 'user', 'tests:use' WHERE EXISTS (SELECT 1 FROM roles WHERE name = 'user')
ON CONFLICT DO NOTHING;
