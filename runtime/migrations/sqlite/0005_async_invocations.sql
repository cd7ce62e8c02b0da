-- Asynchronous invocations and their destinations go through the event
-- queue (runtime/src/events/invocation.rs and destination.rs). Every new
-- column is NULL for the events of triggers, so an existing queue upgrades
-- in place.

-- kind = 'invocation': the request replayed to the function on each
-- attempt (its body is `body`); headers in HTTP/1 form, `name: value` lines
-- ending in CRLF, bytes kept as they came.
ALTER TABLE events ADD COLUMN request_method TEXT;
ALTER TABLE events ADD COLUMN request_uri TEXT;
ALTER TABLE events ADD COLUMN request_headers BLOB;
-- kind = 'invocation': the function's destinations when it was called
-- (stored destinations, as JSON tables), copied like its retry policy.
ALTER TABLE events ADD COLUMN on_success TEXT;
ALTER TABLE events ADD COLUMN on_failure TEXT;
-- kind = 'invocation': how it ended (Success, RetriesExhausted,
-- EventAgeExceeded, FunctionNotFound) and the function's last HTTP status.
ALTER TABLE events ADD COLUMN condition TEXT;
ALTER TABLE events ADD COLUMN final_status INTEGER;
-- kind = 'destination': where its record goes (a stored destination); the
-- record is `body`.
ALTER TABLE events ADD COLUMN destination TEXT;
