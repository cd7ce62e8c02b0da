-- Invocation records, a writer batch per row (see
-- migrations/sqlite/0004_invocation_batches.sql); every node writes its own
-- batches, so reports through any node count every node's invocations.

CREATE TABLE invocation_batches (
    id                  BIGSERIAL PRIMARY KEY,
    format              BIGINT NOT NULL,
    first_started_at_us BIGINT NOT NULL,
    last_started_at_us  BIGINT NOT NULL,
    records             BIGINT NOT NULL,
    functions           TEXT NOT NULL,
    data                BYTEA NOT NULL
);

CREATE INDEX invocation_batches_by_last_start ON invocation_batches(last_started_at_us);
