-- Issue 12 (push between instances): a counter per topic whose rows have no watermark of their own (a deleted
-- policy rule or upstream server leaves no updated_at behind). Bumped after every change; each instance compares
-- it with the last value it applied, on a push and on every poll.
CREATE TABLE change_versions (
    topic TEXT PRIMARY KEY,
    version INTEGER NOT NULL
);
INSERT INTO change_versions (topic, version) VALUES ('policy', 0), ('upstreams', 0);
