-- Invocation records, a writer batch per row (runtime/src/metering/store.rs):
-- `data` holds the batch's records, encoded one after another with postcard,
-- each naming its function by its index in `functions`. This
-- replaces the row per record of `invocations`, which cost over 10% of the
-- request rate on one core; kumo moves that table's rows here at start-up
-- and drops it.

CREATE TABLE invocation_batches (
    id                  INTEGER PRIMARY KEY,
    format              INTEGER NOT NULL,   -- the encoding of `data` (1)
    first_started_at_us INTEGER NOT NULL,   -- the earliest start in the batch (µs since the epoch, UTC)
    last_started_at_us  INTEGER NOT NULL,   -- the latest start
    records             INTEGER NOT NULL,
    functions           TEXT NOT NULL,      -- the function names in the batch, a JSON array
    data                BLOB NOT NULL
);

-- Reports select by time, the roll-up by age, recent-invocation lists walk
-- it from the newest start down.
CREATE INDEX invocation_batches_by_last_start ON invocation_batches(last_started_at_us);
