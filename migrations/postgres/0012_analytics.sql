-- Analytics (issue 10, seed 004): one row per answered request, and the page views browsers report. Written in
-- batches by a background writer, never inline; purged after ANALYTICS_REQUEST_LOG_DAYS / ANALYTICS_PAGE_VIEW_DAYS.
-- No query strings (they can carry tokens), no headers but a cut user agent and a referer without its query.
-- user_id has no foreign key: a log row outlives the account it names, and a late batch must not fail on it.
CREATE TABLE request_logs (
    id TEXT PRIMARY KEY,
    method TEXT NOT NULL,
    route TEXT NOT NULL,
    path TEXT NOT NULL,
    status_code INTEGER NOT NULL,
    response_time_ms DOUBLE PRECISION NOT NULL,
    request_size BIGINT,
    response_size BIGINT,
    ip TEXT NOT NULL,
    user_agent TEXT,
    referer TEXT,
    user_id TEXT,
    error_message TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX request_logs_created ON request_logs(created_at);
CREATE INDEX request_logs_route ON request_logs(route, created_at);

CREATE TABLE page_views (
    id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    title TEXT,
    load_time_ms DOUBLE PRECISION,
    ip TEXT NOT NULL,
    user_agent TEXT,
    user_id TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX page_views_created ON page_views(created_at);
CREATE INDEX page_views_path ON page_views(path, created_at);
