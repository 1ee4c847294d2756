-- The router's low watermark, as read on each partition of the case-events topic: for each
-- partition of the router's input topic, every message the broker received before
-- `watermark` has been processed and its case events were read before the mark.
CREATE TABLE watermarks (
    case_partition integer NOT NULL,
    topic text NOT NULL,
    source_partition integer NOT NULL,
    partitions integer NOT NULL CHECK (partitions > 0),
    watermark timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, case_partition, source_partition)
);

-- Clocks ended by what they waited for, by final outcome (a breach withdrawn by a reply sent
-- in time counts as met): the attainment gauge, whatever replica or restart counted it.
CREATE TABLE attainment (
    clock text NOT NULL,
    policy_id text NOT NULL,
    outcome text NOT NULL CHECK (outcome IN ('met', 'breached')),
    clocks bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (clock, policy_id, outcome)
);
