-- Clocks beyond first_response: a case may run the same clock more than once (a
-- next_response per customer turn, clocks started again on reopen), but only one of each
-- at a time; a clock may be paused (resolution in a `pause_on` status).
--
-- Pauses are kept as instants, not as amounts of time, so that a clock can be re-derived
-- exactly under another policy or calendar: pause_starts[i]..pause_ends[i], the last end
-- NULL while the pause lasts. A paused clock has no pending timers; its due_at is the one it
-- had when it paused, until it resumes.

ALTER TABLE clocks DROP CONSTRAINT clocks_case_id_clock_key;
ALTER TABLE clocks DROP CONSTRAINT clocks_status_check;
ALTER TABLE clocks ADD CONSTRAINT clocks_status_check
    CHECK (status IN ('running', 'paused', 'fulfilled'));
ALTER TABLE clocks ADD COLUMN pause_starts timestamptz[] NOT NULL DEFAULT '{}';
ALTER TABLE clocks ADD COLUMN pause_ends timestamptz[] NOT NULL DEFAULT '{}';
ALTER TABLE clocks ADD CONSTRAINT clocks_pauses_paired
    CHECK (cardinality(pause_starts) = cardinality(pause_ends));

CREATE UNIQUE INDEX clocks_open ON clocks (case_id, clock) WHERE status IN ('running', 'paused');
CREATE UNIQUE INDEX clocks_cycle ON clocks (case_id, clock, started_at);
DROP INDEX clocks_running;
CREATE INDEX clocks_open_by_clock ON clocks (clock) WHERE status IN ('running', 'paused');
