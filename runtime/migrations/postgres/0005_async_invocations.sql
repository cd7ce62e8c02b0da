-- Asynchronous invocations and destinations (see
-- migrations/sqlite/0005_async_invocations.sql).

ALTER TABLE events ADD COLUMN request_method TEXT;
ALTER TABLE events ADD COLUMN request_uri TEXT;
ALTER TABLE events ADD COLUMN request_headers BYTEA;
ALTER TABLE events ADD COLUMN on_success TEXT;
ALTER TABLE events ADD COLUMN on_failure TEXT;
ALTER TABLE events ADD COLUMN condition TEXT;
ALTER TABLE events ADD COLUMN final_status BIGINT;
ALTER TABLE events ADD COLUMN destination TEXT;
