-- The registry on PostgreSQL: the same tables as migrations/sqlite, with
-- PostgreSQL's types (BIGINT for SQLite's 64-bit INTEGER). Component bytes
-- are in `artifacts` (0006), since every node must reach every version.

CREATE TABLE functions (
    name        TEXT PRIMARY KEY NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE versions (
    function    TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
    number      BIGINT NOT NULL,
    sha256      TEXT NOT NULL,
    wasm_bytes  BIGINT NOT NULL,
    config      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (function, number)
);

CREATE TABLE aliases (
    function    TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    routing     TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (function, name)
);

CREATE TABLE triggers (
    id          TEXT PRIMARY KEY NOT NULL,
    kind        TEXT NOT NULL,
    target      TEXT NOT NULL,
    config      TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE INDEX triggers_by_kind ON triggers(kind);
