-- What only a cluster needs (runtime/src/database.rs, registry/).

-- Component bytes, by content: any node compiles any version from here
-- into its own compile cache.
CREATE TABLE artifacts (
    sha256      TEXT PRIMARY KEY NOT NULL,
    bytes       BYTEA NOT NULL
);

-- One row: bumped by every registry write, in its transaction. A node whose
-- loaded generation differs reloads (the fallback when a NOTIFY was lost).
CREATE TABLE registry_generation (
    only_row    BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    generation  BIGINT NOT NULL
);
INSERT INTO registry_generation (generation) VALUES (0);

-- The claim query's index: due events without a live lease, by due time.
CREATE INDEX events_claimable ON events(next_attempt_ms) WHERE state IN ('pending', 'retrying');

-- A timer's firings already turned into events: every node runs every
-- timer, and the first to record a firing (trigger, scheduled time)
-- enqueues it; the others find the row and skip.
CREATE TABLE timer_firings (
    trigger_id    TEXT NOT NULL,
    scheduled_ms  BIGINT NOT NULL,
    PRIMARY KEY (trigger_id, scheduled_ms)
);
