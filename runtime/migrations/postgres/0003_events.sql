-- The durable event queue (see migrations/sqlite/0003_events.sql). `rowid`
-- is an explicit column here: SQLite has it implicitly, and the queue's
-- listings break ties on it in both dialects.

CREATE TABLE events (
    rowid           BIGSERIAL NOT NULL,
    id              TEXT PRIMARY KEY NOT NULL,
    trigger_id      TEXT NOT NULL,
    target          TEXT NOT NULL,
    kind            TEXT NOT NULL,
    ce_source       TEXT NOT NULL,
    ce_type         TEXT NOT NULL,
    ce_subject      TEXT NOT NULL,
    ce_time         TEXT NOT NULL,
    content_type    TEXT NOT NULL,
    body            BYTEA NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'retrying', 'dead', 'done')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    max_retries     BIGINT NOT NULL,
    retry_base_ms   BIGINT NOT NULL,
    max_age_ms      BIGINT NOT NULL,
    hops            BIGINT NOT NULL DEFAULT 0,
    first_seen_ms   BIGINT NOT NULL,
    next_attempt_ms BIGINT NOT NULL,
    lease_until_ms  BIGINT,
    last_error      TEXT,
    updated_ms      BIGINT NOT NULL
);

CREATE INDEX events_due ON events(state, next_attempt_ms);
CREATE INDEX events_by_trigger ON events(trigger_id, state);

CREATE TABLE event_attempts (
    rowid        BIGSERIAL NOT NULL,
    event_id     TEXT NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    started_ms   BIGINT NOT NULL,
    finished_ms  BIGINT NOT NULL,
    outcome      TEXT NOT NULL,
    status       BIGINT,
    error        TEXT,
    request_id   TEXT NOT NULL
);

CREATE INDEX event_attempts_by_event ON event_attempts(event_id, started_ms);

CREATE TABLE watched_files (
    trigger_id  TEXT NOT NULL,
    path        TEXT NOT NULL,
    size        BIGINT NOT NULL,
    mtime_ns    BIGINT NOT NULL,
    event_id    TEXT NOT NULL,
    PRIMARY KEY (trigger_id, path, size, mtime_ns)
);
