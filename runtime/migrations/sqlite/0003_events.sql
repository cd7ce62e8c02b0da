-- The durable event queue (runtime/src/events/queue.rs). Times are
-- milliseconds since the Unix epoch (UTC), so due-time comparisons are
-- integer comparisons.

CREATE TABLE events (
    id              TEXT PRIMARY KEY NOT NULL,
    -- `<kind>:<trigger name>`, such as `storage:thumbs`.
    trigger_id      TEXT NOT NULL,
    -- The function it invokes: `name`, `name:3` or `name:alias`.
    target          TEXT NOT NULL,
    -- storage | watch | timer
    kind            TEXT NOT NULL,
    -- CloudEvents attributes, sent as ce-* headers.
    ce_source       TEXT NOT NULL,
    ce_type         TEXT NOT NULL,
    ce_subject      TEXT NOT NULL,
    ce_time         TEXT NOT NULL,
    content_type    TEXT NOT NULL,
    body            BLOB NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'retrying', 'dead', 'done')),
    -- Delivery attempts that ended (acknowledged or failed); an attempt
    -- refused by backpressure (429) is not counted.
    attempts        INTEGER NOT NULL DEFAULT 0,
    -- The trigger's retry policy, copied when the event was enqueued.
    max_retries     INTEGER NOT NULL,
    retry_base_ms   INTEGER NOT NULL,
    max_age_ms      INTEGER NOT NULL,
    -- How many function writes led to this event (loop guard).
    hops            INTEGER NOT NULL DEFAULT 0,
    first_seen_ms   INTEGER NOT NULL,
    next_attempt_ms INTEGER NOT NULL,
    -- Set while a worker delivers it; an expired lease is claimable again.
    lease_until_ms  INTEGER,
    last_error      TEXT,
    updated_ms      INTEGER NOT NULL
);

CREATE INDEX events_due ON events(state, next_attempt_ms);
CREATE INDEX events_by_trigger ON events(trigger_id, state);

-- One row per delivery attempt, for `kumo events` and for tests that check
-- the backoff from the server's own records.
CREATE TABLE event_attempts (
    event_id     TEXT NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    started_ms   INTEGER NOT NULL,
    finished_ms  INTEGER NOT NULL,
    -- ok | failed | throttled
    outcome      TEXT NOT NULL,
    -- The function's HTTP status, when it answered.
    status       INTEGER,
    error        TEXT,
    request_id   TEXT NOT NULL
);

CREATE INDEX event_attempts_by_event ON event_attempts(event_id, started_ms);

-- Files of watched folders already turned into events: a file (path, size,
-- modification time) becomes an event once, across restarts.
CREATE TABLE watched_files (
    trigger_id  TEXT NOT NULL,
    path        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    mtime_ns    INTEGER NOT NULL,
    event_id    TEXT NOT NULL,
    PRIMARY KEY (trigger_id, path, size, mtime_ns)
);
