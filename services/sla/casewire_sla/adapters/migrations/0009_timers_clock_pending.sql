-- A clock's pending timers, found by clock and instant: a reply, pause, resume or policy change
-- drops or fires the timers of one clock (`clock_id = $1 AND fired_at IS NULL AND fire_at ...`).
-- With only `timers_clock (clock_id)` and `timers_pending (fire_at) WHERE fired_at IS NULL`, a
-- planner without statistics (tables just loaded, not analyzed yet) ANDed both bitmaps and
-- read every pending timer's entry for each of those statements: 25-80 ms each at 1,000,000
-- open clocks, and the case-event consumer (and with it the watermark every alert waits for)
-- fell behind. This index answers them alone, statistics or not.

CREATE INDEX timers_clock_pending ON timers (clock_id, fire_at) WHERE fired_at IS NULL;
