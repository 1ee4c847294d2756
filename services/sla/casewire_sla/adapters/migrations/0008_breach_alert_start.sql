-- The start a clock had when its breach fired: the breach alert's id derives from it, and a
-- first_response clock answered before its case turned out to have opened earlier moves its
-- start back after that. A retraction names the breach by this id. NULL: not breached, or
-- breached under the start the clock still has.

ALTER TABLE clocks ADD COLUMN breach_started_at timestamptz;
