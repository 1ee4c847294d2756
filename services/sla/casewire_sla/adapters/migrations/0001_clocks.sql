-- SLA clocks and the timers that fire their warnings and breaches. The record of processed
-- case events and the outbox of SLA alerts are the shared unit of work's tables
-- (0006_unit_of_work_tables.py).

CREATE TABLE clocks (
    id bigserial PRIMARY KEY,
    case_id text NOT NULL,
    clock text NOT NULL CHECK (clock IN ('first_response', 'next_response', 'resolution')),
    policy_id text NOT NULL,
    calendar_id text NOT NULL,
    target_seconds integer NOT NULL CHECK (target_seconds > 0),
    started_at timestamptz NOT NULL,
    due_at timestamptz NOT NULL,
    status text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'fulfilled')),
    fulfilled_at timestamptz,
    breached_at timestamptz,
    team text NOT NULL,
    priority text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (case_id, clock)
);

CREATE INDEX clocks_running ON clocks (clock) WHERE status = 'running';

-- One row per warning fraction and one for the breach (fraction 1). A timer fires once:
-- `fired_at` is set in the transaction that writes its alert to the outbox.
CREATE TABLE timers (
    id bigserial PRIMARY KEY,
    clock_id bigint NOT NULL REFERENCES clocks (id) ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN ('warning', 'breach')),
    fraction double precision NOT NULL CHECK (fraction > 0 AND fraction <= 1),
    fire_at timestamptz NOT NULL,
    fired_at timestamptz,
    UNIQUE (clock_id, kind, fraction)
);

CREATE INDEX timers_pending ON timers (fire_at) WHERE fired_at IS NULL;
CREATE INDEX timers_clock ON timers (clock_id);
