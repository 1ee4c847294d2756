-- The outcome a clock was counted with in `attainment` when it ended by what it waited for
-- (NULL: open, ended without it, or ended before this migration): a first reply sent earlier
-- and read later moves the clock's end, and its count moves with it.
--
-- A clock of a case absorbed into another ends 'absorbed': no outcome, in no count.

ALTER TABLE clocks ADD COLUMN outcome text CHECK (outcome IN ('met', 'breached'));
ALTER TABLE clocks DROP CONSTRAINT clocks_status_check;
ALTER TABLE clocks ADD CONSTRAINT clocks_status_check
    CHECK (status IN ('running', 'paused', 'fulfilled', 'absorbed'));
