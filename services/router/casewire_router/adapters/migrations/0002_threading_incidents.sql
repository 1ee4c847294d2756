-- Threading across conversations, repeat-contact lookups, crisis-topic bursts and incidents.

-- Every conversation a case answers for: its own, and a DM or public thread of the same
-- customer merged into it. Follow-ups in any of them attach to the case.
CREATE TABLE case_conversations (
    conversation_id text NOT NULL,
    case_id uuid NOT NULL REFERENCES cases (id),
    PRIMARY KEY (conversation_id, case_id)
);
CREATE INDEX case_conversations_case ON case_conversations (case_id);
INSERT INTO case_conversations (conversation_id, case_id) SELECT conversation_id, id FROM cases;

-- A customer's open cases (public post and DM merging) and their recent contacts.
CREATE INDEX cases_open_by_customer ON cases (platform, account_id, customer_id)
    WHERE status NOT IN ('resolved', 'no_action');
CREATE INDEX cases_customer_recent ON cases (platform, account_id, customer_id, opened_at);
-- The last resolved case of a conversation (reopen window).
CREATE INDEX cases_resolved_by_conversation ON cases (conversation_id, resolved_at)
    WHERE status = 'resolved';

-- Cases whose message was about a crisis topic, for bursts and incidents.
CREATE TABLE topic_hits (
    topic text NOT NULL,
    case_id uuid NOT NULL REFERENCES cases (id),
    at timestamptz NOT NULL
);
CREATE INDEX topic_hits_recent ON topic_hits (topic, at);

CREATE TABLE incidents (
    id uuid PRIMARY KEY,
    topic text NOT NULL,
    status text NOT NULL DEFAULT 'open',
    opened_at timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL
);
CREATE UNIQUE INDEX incidents_one_open_per_topic ON incidents (topic) WHERE status = 'open';

CREATE TABLE incident_cases (
    incident_id uuid NOT NULL REFERENCES incidents (id),
    case_id uuid NOT NULL REFERENCES cases (id),
    PRIMARY KEY (incident_id, case_id)
);
