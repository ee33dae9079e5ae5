-- Database connection profiles (issue 10 item 7, seed 004): each user's own PostgreSQL, MySQL/MariaDB and SQLite
-- profiles. The password is never stored in clear: password_sealed is AES-256-GCM under WARDEN_ENCRYPTION_KEY,
-- bound to this table, the row's id and the field (src/seal.rs), or NULL for a profile without one. For SQLite,
-- database_name is the file's path (under CONNECTION_SQLITE_DIR) and host, port and username are empty.
CREATE TABLE connections (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    database_type TEXT NOT NULL,
    host TEXT NOT NULL,
    port INTEGER NOT NULL,
    username TEXT NOT NULL,
    password_sealed TEXT,
    database_name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (user_id, name)
);
CREATE INDEX connections_user ON connections(user_id, created_at);

-- Every signed-in person may keep and use profiles of their own (if the seeded `user` role is still there).
INSERT INTO role_permissions (role, permission)
SELECT name, 'connections:use' FROM roles WHERE name = 'user'
ON CONFLICT DO NOTHING;
