-- The registry: functions, their immutable versions, aliases and triggers.
-- Component files live on disk under <data-dir>/artifacts/<sha256>.wasm.

CREATE TABLE functions (
    name        TEXT PRIMARY KEY NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE versions (
    function    TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
    number      INTEGER NOT NULL,
    sha256      TEXT NOT NULL,
    wasm_bytes  INTEGER NOT NULL,
    -- The full configuration as canonical JSON (registry::FunctionConfig).
    config      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (function, number)
);

CREATE TABLE aliases (
    function    TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    -- [{"version":1,"weight":90},{"version":2,"weight":10}]: one or two entries.
    routing     TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (function, name)
);

CREATE TABLE triggers (
    id          TEXT PRIMARY KEY NOT NULL,
    kind        TEXT NOT NULL,
    -- The function it invokes: `name`, `name:3` (a version) or `name:alias`.
    target      TEXT NOT NULL,
    -- The kind's settings as JSON (http: {"route": "/hello"}).
    config      TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE INDEX triggers_by_kind ON triggers(kind);
