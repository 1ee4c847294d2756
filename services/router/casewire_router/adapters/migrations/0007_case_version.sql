-- How many events each case has had (`version` in every case event's snapshot), so that a
-- consumer can tell it has all of a case's events in order. Cases opened before this
-- migration count on from 0: their first event after it carries version 1.
ALTER TABLE cases ADD COLUMN version integer NOT NULL DEFAULT 0;
