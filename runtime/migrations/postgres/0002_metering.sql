-- Hourly metering aggregates (see migrations/sqlite/0002_metering.sql). The
-- per-record `invocations` table of SQLite's first format never existed
-- on PostgreSQL, so there is nothing to upgrade.

CREATE TABLE invocation_hours (
    function            TEXT NOT NULL,
    version             BIGINT NOT NULL,
    hour_start_us       BIGINT NOT NULL,
    invocations         BIGINT NOT NULL,
    ok                  BIGINT NOT NULL,
    error               BIGINT NOT NULL,
    trap                BIGINT NOT NULL,
    timeout             BIGINT NOT NULL,
    out_of_memory       BIGINT NOT NULL,
    rejected            BIGINT NOT NULL,
    cold_starts         BIGINT NOT NULL,
    billed_ms           BIGINT NOT NULL,
    mb_ms               BIGINT NOT NULL,
    duration_us         BIGINT NOT NULL,
    init_duration_us    BIGINT NOT NULL,
    max_duration_us     BIGINT NOT NULL,
    bytes_in            BIGINT NOT NULL,
    bytes_out           BIGINT NOT NULL,
    duration_histogram  TEXT NOT NULL,
    PRIMARY KEY (function, version, hour_start_us)
);

CREATE INDEX invocation_hours_by_time ON invocation_hours(hour_start_us);
