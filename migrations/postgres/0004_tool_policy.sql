-- Per role and tool (exact name or a prefix ending in *): allow, ask (a person approves each call) or deny.
CREATE TABLE tool_policies (
    role TEXT NOT NULL REFERENCES roles(name) ON DELETE CASCADE,
    tool_pattern TEXT NOT NULL,
    decision TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (role, tool_pattern)
);
