-- Pending `ask` approvals (issue 12): kept in the database so a decision posted to any instance reaches the turn
-- waiting on another. `decision` is NULL while pending, then 'approved', 'refused' or 'withdrawn' (the wait
-- ended or the turn went away), set once by a conditional UPDATE. A step-up call keeps its binding's parts
-- (`tool`, `arguments_sha256`; the approver is `user_id`); a plain one leaves them NULL.
CREATE TABLE tool_approvals (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    tool TEXT,
    arguments_sha256 TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    decision TEXT,
    decided_by TEXT,
    decided_at BIGINT
);
CREATE INDEX tool_approvals_created ON tool_approvals(created_at);
