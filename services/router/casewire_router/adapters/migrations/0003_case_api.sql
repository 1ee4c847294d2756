-- The case API: when a case went back to its team queue, and the queue in drain order.

-- Set when a case returns to the queue (reopened); NULL: waiting since opened_at.
ALTER TABLE cases ADD COLUMN queued_at timestamptz;

-- The team queue: open cases nobody owns (queued, or reopened without owner).
CREATE INDEX cases_waiting ON cases (team, priority, (COALESCE(queued_at, opened_at)))
    WHERE assignee IS NULL AND status NOT IN ('resolved', 'no_action');
