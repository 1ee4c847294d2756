-- Which SLA alert caused each escalation and what it changed, so that a retraction of that
-- alert (casewire.sla.breach_retracted) can undo it while nothing else has changed the case.
CREATE TABLE escalations (
    alert_id text PRIMARY KEY,
    case_id uuid NOT NULL REFERENCES cases (id),
    rule_id text NOT NULL,
    previous_priority text NOT NULL,
    previous_team text NOT NULL,
    previous_assignee text,
    added_tags text[] NOT NULL,
    case_version integer NOT NULL,
    escalated_at timestamptz NOT NULL,
    -- The retraction (its ce_id) that undid it; NULL while it stands.
    undone_by text
);
CREATE INDEX escalations_case ON escalations (case_id);
-- Pruned with the processed markers (CASEWIRE_PROCESSED_RETENTION): a retraction comes minutes
-- after its breach, never days.
CREATE INDEX escalations_age ON escalations (escalated_at);
