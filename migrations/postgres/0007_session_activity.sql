-- Idle timeout (SESSION_IDLE_MINUTES): a session's last activity, written about once a minute by the
-- instance that saw it. NULL: none since the login (created_at).
ALTER TABLE sessions ADD COLUMN last_seen_at BIGINT;
