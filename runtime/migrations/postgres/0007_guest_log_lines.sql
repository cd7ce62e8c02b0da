-- Guest log lines (stdout, stderr, failure) of every node, so a function's
-- log read through any node shows every node's lines
-- (runtime/src/observability/shared_logs.rs). Written in batches by each
-- node; pruned to the last 10,000 lines per function every minute. SQLite
-- (one node) keeps them in memory only and has no such table.

CREATE TABLE guest_log_lines (
    id          BIGSERIAL PRIMARY KEY,
    function    TEXT NOT NULL,
    time_us     BIGINT NOT NULL,
    request_id  TEXT NOT NULL,
    stream      TEXT NOT NULL,
    level       TEXT NOT NULL,
    text        TEXT NOT NULL,
    -- When the row was written, by the database's clock: what a followed
    -- log polls for.
    stored_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A log read: a function's newest lines at or after a time.
CREATE INDEX guest_log_lines_by_time ON guest_log_lines(function, time_us);
-- A followed log: a function's lines written in the last seconds.
CREATE INDEX guest_log_lines_by_stored_at ON guest_log_lines(function, stored_at);
