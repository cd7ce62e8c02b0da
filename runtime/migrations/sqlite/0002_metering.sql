-- Metering: one row per invocation (runtime/src/metering), and hourly
-- aggregates that records older than the retention period are folded into.
-- Times are microseconds since the Unix epoch (UTC); sums are exact integers.

CREATE TABLE invocations (
    request_id          TEXT NOT NULL,
    function            TEXT NOT NULL,
    version             INTEGER NOT NULL,
    trigger_kind        TEXT NOT NULL,      -- http | event | invoke
    started_at_us       INTEGER NOT NULL,
    duration_us         INTEGER NOT NULL,   -- execution, instantiation excluded
    init_duration_us    INTEGER,            -- cold starts only
    billed_ms           INTEGER NOT NULL,
    memory_mb           INTEGER NOT NULL,
    peak_memory_bytes   INTEGER NOT NULL,
    cold_start          INTEGER NOT NULL,   -- 0 | 1
    outcome             TEXT NOT NULL,      -- ok | error | trap | timeout | out_of_memory | rejected
    bytes_in            INTEGER NOT NULL,
    bytes_out           INTEGER NOT NULL
);

-- Reports and the roll-up select by time; one index keeps inserts cheap.
CREATE INDEX invocations_by_time ON invocations(started_at_us);

CREATE TABLE invocation_hours (
    function            TEXT NOT NULL,
    version             INTEGER NOT NULL,
    hour_start_us       INTEGER NOT NULL,   -- the hour's first microsecond
    invocations         INTEGER NOT NULL,
    ok                  INTEGER NOT NULL,
    error               INTEGER NOT NULL,
    trap                INTEGER NOT NULL,
    timeout             INTEGER NOT NULL,
    out_of_memory       INTEGER NOT NULL,
    rejected            INTEGER NOT NULL,
    cold_starts         INTEGER NOT NULL,
    billed_ms           INTEGER NOT NULL,
    mb_ms               INTEGER NOT NULL,   -- sum of memory_mb * billed_ms
    duration_us         INTEGER NOT NULL,   -- sum
    init_duration_us    INTEGER NOT NULL,   -- sum
    max_duration_us     INTEGER NOT NULL,
    bytes_in            INTEGER NOT NULL,
    bytes_out           INTEGER NOT NULL,
    -- Counts per fixed duration bucket, as a JSON array (metering::rollup::BUCKET_BOUNDS_US).
    duration_histogram  TEXT NOT NULL,
    PRIMARY KEY (function, version, hour_start_us)
);

CREATE INDEX invocation_hours_by_time ON invocation_hours(hour_start_us);
