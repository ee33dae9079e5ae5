-- Analytics rollups (issue 10): the dashboards read these, never the raw rows, so they stay fast over months.
-- Each kind has a minute table and an hour table (a long window reads only the small hour table, its rows
-- together on disk), kept up to date by additive upserts (several instances may add to one bucket).
-- bucket_start is epoch milliseconds.

-- Requests by route and status. lat_00..lat_14 count the requests whose response time fell in each latency
-- bucket (upper bounds in ms: 0.5 1 2.5 5 10 25 50 100 250 500 1000 2500 5000 10000, then everything above).
CREATE TABLE request_rollups_minute (
    bucket_start INTEGER NOT NULL,
    method TEXT NOT NULL,
    route TEXT NOT NULL,
    status_code INTEGER NOT NULL,
    requests INTEGER NOT NULL,
    total_ms REAL NOT NULL,
    max_ms REAL NOT NULL,
    request_bytes INTEGER NOT NULL,
    response_bytes INTEGER NOT NULL,
    lat_00 INTEGER NOT NULL, lat_01 INTEGER NOT NULL, lat_02 INTEGER NOT NULL, lat_03 INTEGER NOT NULL, lat_04 INTEGER NOT NULL,
    lat_05 INTEGER NOT NULL, lat_06 INTEGER NOT NULL, lat_07 INTEGER NOT NULL, lat_08 INTEGER NOT NULL, lat_09 INTEGER NOT NULL,
    lat_10 INTEGER NOT NULL, lat_11 INTEGER NOT NULL, lat_12 INTEGER NOT NULL, lat_13 INTEGER NOT NULL, lat_14 INTEGER NOT NULL,
    PRIMARY KEY (bucket_start, method, route, status_code)
);

-- Signed-in users seen per bucket: active users over a window are the distinct user ids of its buckets.
CREATE TABLE active_user_rollups_minute (
    bucket_start INTEGER NOT NULL,
    user_id TEXT NOT NULL,
    requests INTEGER NOT NULL,
    PRIMARY KEY (bucket_start, user_id)
);

CREATE TABLE page_view_rollups_minute (
    bucket_start INTEGER NOT NULL,
    path TEXT NOT NULL,
    views INTEGER NOT NULL,
    load_samples INTEGER NOT NULL,
    total_load_ms REAL NOT NULL,
    PRIMARY KEY (bucket_start, path)
);

-- Counted events of other services: kind 'tool_call' (subject tool, detail status), 'llm' (subject user id,
-- detail model; amount = tokens), 'sms' (subject type, detail outcome).
CREATE TABLE event_rollups_minute (
    bucket_start INTEGER NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL,
    events INTEGER NOT NULL,
    amount INTEGER NOT NULL,
    PRIMARY KEY (bucket_start, kind, subject, detail)
);

-- Requests by route and status. lat_00..lat_14 count the requests whose response time fell in each latency
-- bucket (upper bounds in ms: 0.5 1 2.5 5 10 25 50 100 250 500 1000 2500 5000 10000, then everything above).
CREATE TABLE request_rollups_hour (
    bucket_start INTEGER NOT NULL,
    method TEXT NOT NULL,
    route TEXT NOT NULL,
    status_code INTEGER NOT NULL,
    requests INTEGER NOT NULL,
    total_ms REAL NOT NULL,
    max_ms REAL NOT NULL,
    request_bytes INTEGER NOT NULL,
    response_bytes INTEGER NOT NULL,
    lat_00 INTEGER NOT NULL, lat_01 INTEGER NOT NULL, lat_02 INTEGER NOT NULL, lat_03 INTEGER NOT NULL, lat_04 INTEGER NOT NULL,
    lat_05 INTEGER NOT NULL, lat_06 INTEGER NOT NULL, lat_07 INTEGER NOT NULL, lat_08 INTEGER NOT NULL, lat_09 INTEGER NOT NULL,
    lat_10 INTEGER NOT NULL, lat_11 INTEGER NOT NULL, lat_12 INTEGER NOT NULL, lat_13 INTEGER NOT NULL, lat_14 INTEGER NOT NULL,
    PRIMARY KEY (bucket_start, method, route, status_code)
);

-- Signed-in users seen per bucket: active users over a window are the distinct user ids of its buckets.
CREATE TABLE active_user_rollups_hour (
    bucket_start INTEGER NOT NULL,
    user_id TEXT NOT NULL,
    requests INTEGER NOT NULL,
    PRIMARY KEY (bucket_start, user_id)
);

CREATE TABLE page_view_rollups_hour (
    bucket_start INTEGER NOT NULL,
    path TEXT NOT NULL,
    views INTEGER NOT NULL,
    load_samples INTEGER NOT NULL,
    total_load_ms REAL NOT NULL,
    PRIMARY KEY (bucket_start, path)
);

-- Counted events of other services: kind 'tool_call' (subject tool, detail status), 'llm' (subject user id,
-- detail model; amount = tokens), 'sms' (subject type, detail outcome).
CREATE TABLE event_rollups_hour (
    bucket_start INTEGER NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL,
    events INTEGER NOT NULL,
    amount INTEGER NOT NULL,
    PRIMARY KEY (bucket_start, kind, subject, detail)
);

-- The process's own figures, sampled about once a minute; purged after ANALYTICS_METRICS_DAYS.
CREATE TABLE system_metrics (
    id TEXT PRIMARY KEY,
    instance TEXT NOT NULL,
    cpu_percent REAL NOT NULL,
    memory_bytes INTEGER NOT NULL,
    open_files INTEGER NOT NULL,
    db_pool_size INTEGER NOT NULL,
    db_pool_idle INTEGER NOT NULL,
    request_log_queue INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX system_metrics_created ON system_metrics(created_at);

-- Routes are answered from the rollups now; recent server errors are listed from the raw rows.
DROP INDEX request_logs_route;
CREATE INDEX request_logs_errors ON request_logs(created_at) WHERE status_code >= 500;
