-- Analytics rollups (issue 10): the dashboards read these, never the raw rows, so they stay fast over months.
-- Each kind has a minute table and an hour table (a long window reads only the small hour table, its rows
-- together on disk), kept up to date by additive upserts (several instances may add to one bucket).
-- bucket_start is epoch milliseconds.

-- Requests by route and status. lat_00..lat_14 count the requests whose response time fell in each latency
-- bucket (upper bounds in ms: 0.5 1 2.5 5 10 25 50 100 250 500 1000 2500 5000 10000, then everything above).
CREATE TABLE request_rollups_minute (
    bucket_start BIGINT NOT NULL,
    method TEXT NOT NULL,
    route TEXT NOT NULL,
    status_code INTEGER NOT NULL,
    requests BIGINT NOT NULL,
    total_ms DOUBLE PRECISION NOT NULL,
    max_ms DOUBLE PRECISION NOT NULL,
    request_bytes BIGINT NOT NULL,
    response_bytes BIGINT NOT NULL,
    lat_00 BIGINT NOT NULL, lat_01 BIGINT NOT NULL, lat_02 BIGINT NOT NULL, lat_03 BIGINT NOT NULL, lat_04 BIGINT NOT NULL,
    lat_05 BIGINT NOT NULL, lat_06 BIGINT NOT NULL, lat_07 BIGINT NOT NULL, lat_08 BIGINT NOT NULL, lat_09 BIGINT NOT NULL,
    lat_10 BIGINT NOT NULL, lat_11 BIGINT NOT NULL, lat_12 BIGINT NOT NULL, lat_13 BIGINT NOT NULL, lat_14 BIGINT NOT NULL,
    PRIMARY KEY (bucket_start, method, route, status_code)
);

-- Signed-in users seen per bucket: active users over a window are the distinct user ids of its buckets.
CREATE TABLE active_user_rollups_minute (
    bucket_start BIGINT NOT NULL,
    user_id TEXT NOT NULL,
    requests BIGINT NOT NULL,
    PRIMARY KEY (bucket_start, user_id)
);

CREATE TABLE page_view_rollups_minute (
    bucket_start BIGINT NOT NULL,
    path TEXT NOT NULL,
    views BIGINT NOT NULL,
    load_samples BIGINT NOT NULL,
    total_load_ms DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (bucket_start, path)
);

-- Counted events of other services: kind 'tool_call' (subject tool, detail status), 'llm' (subject user id,
-- detail model; amount = tokens), 'sms' (subject type, detail outcome).
CREATE TABLE event_rollups_minute (
    bucket_start BIGINT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL,
    events BIGINT NOT NULL,
    amount BIGINT NOT NULL,
    PRIMARY KEY (bucket_start, kind, subject, detail)
);

-- Requests by route and status. lat_00..lat_14 count the requests whose response time fell in each latency
-- bucket (upper bounds in ms: 0.5 1 2.5 5 10 25 50 100 250 500 1000 2500 5000 10000, then everything above).
CREATE TABLE request_rollups_hour (
    bucket_start BIGINT NOT NULL,
    method TEXT NOT NULL,
    route TEXT NOT NULL,
    status_code INTEGER NOT NULL,
    requests BIGINT NOT NULL,
    total_ms DOUBLE PRECISION NOT NULL,
    max_ms DOUBLE PRECISION NOT NULL,
    request_bytes BIGINT NOT NULL,
    response_bytes BIGINT NOT NULL,
    lat_00 BIGINT NOT NULL, lat_01 BIGINT NOT NULL, lat_02 BIGINT NOT NULL, lat_03 BIGINT NOT NULL, lat_04 BIGINT NOT NULL,
    lat_05 BIGINT NOT NULL, lat_06 BIGINT NOT NULL, lat_07 BIGINT NOT NULL, lat_08 BIGINT NOT NULL, lat_09 BIGINT NOT NULL,
    lat_10 BIGINT NOT NULL, lat_11 BIGINT NOT NULL, lat_12 BIGINT NOT NULL, lat_13 BIGINT NOT NULL, lat_14 BIGINT NOT NULL,
    PRIMARY KEY (bucket_start, method, route, status_code)
);

-- Signed-in users seen per bucket: active users over a window are the distinct user ids of its buckets.
CREATE TABLE active_user_rollups_hour (
    bucket_start BIGINT NOT NULL,
    user_id TEXT NOT NULL,
    requests BIGINT NOT NULL,
    PRIMARY KEY (bucket_start, user_id)
);

CREATE TABLE page_view_rollups_hour (
    bucket_start BIGINT NOT NULL,
    path TEXT NOT NULL,
    views BIGINT NOT NULL,
    load_samples BIGINT NOT NULL,
    total_load_ms DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (bucket_start, path)
);

-- Counted events of other services: kind 'tool_call' (subject tool, detail status), 'llm' (subject user id,
-- detail model; amount = tokens), 'sms' (subject type, detail outcome).
CREATE TABLE event_rollups_hour (
    bucket_start BIGINT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL,
    events BIGINT NOT NULL,
    amount BIGINT NOT NULL,
    PRIMARY KEY (bucket_start, kind, subject, detail)
);

-- The process's own figures, sampled about once a minute; purged after ANALYTICS_METRICS_DAYS.
CREATE TABLE system_metrics (
    id TEXT PRIMARY KEY,
    instance TEXT NOT NULL,
    cpu_percent DOUBLE PRECISION NOT NULL,
    memory_bytes BIGINT NOT NULL,
    open_files BIGINT NOT NULL,
    db_pool_size BIGINT NOT NULL,
    db_pool_idle BIGINT NOT NULL,
    request_log_queue BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX system_metrics_created ON system_metrics(created_at);

-- Routes are answered from the rollups now; recent server errors are listed from the raw rows.
DROP INDEX request_logs_route;
CREATE INDEX request_logs_errors ON request_logs(created_at) WHERE status_code >= 500;
