-- What several nodes sharing a database need, kept in SQLite too so both
-- dialects run the same statements (see migrations/postgres/0006_cluster.sql).

-- One row: bumped by every registry write, in its transaction.
CREATE TABLE registry_generation (
    only_row    BOOLEAN PRIMARY KEY NOT NULL DEFAULT TRUE CHECK (only_row),
    generation  INTEGER NOT NULL
);
INSERT INTO registry_generation (generation) VALUES (0);

-- A timer's firings already turned into events: every node runs every
-- timer, and the first to record a firing (trigger, scheduled time)
-- enqueues it.
CREATE TABLE timer_firings (
    trigger_id    TEXT NOT NULL,
    scheduled_ms  INTEGER NOT NULL,
    PRIMARY KEY (trigger_id, scheduled_ms)
);
