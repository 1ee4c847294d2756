-- Additive policies (`additive: true` in the policy file) run their clocks beside the case's
-- contract: a case may have a first_response clock under its contract and another under each
-- additive policy that applies. A clock's identity is therefore (case, clock, slot): `slot` is
-- '' for the contract's clock (whose policy_id changes when the case selects another contract)
-- and the policy id for an additive policy's clock (which never changes policy).

ALTER TABLE clocks ADD COLUMN additive boolean NOT NULL DEFAULT false;
ALTER TABLE clocks ADD COLUMN slot text NOT NULL
    GENERATED ALWAYS AS (CASE WHEN additive THEN policy_id ELSE '' END) STORED;

DROP INDEX clocks_open;
DROP INDEX clocks_cycle;
CREATE UNIQUE INDEX clocks_open ON clocks (case_id, clock, slot)
    WHERE status IN ('running', 'paused');
CREATE UNIQUE INDEX clocks_cycle ON clocks (case_id, clock, slot, started_at);
