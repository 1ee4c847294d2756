-- The router's schema: cases, their messages, agents. The processed-message markers and the
-- outbox are the shared unit of work's tables (0006_unit_of_work_tables.py).

CREATE TABLE cases (
    id uuid PRIMARY KEY,
    conversation_id text NOT NULL,
    customer_id text NOT NULL,
    account_id text NOT NULL,
    platform text NOT NULL,
    channel text NOT NULL,
    visibility text NOT NULL,
    status text NOT NULL,
    priority text NOT NULL,
    urgency_score integer NOT NULL,
    team text NOT NULL,
    assignee text,
    tags text[] NOT NULL DEFAULT '{}',
    language text,
    opened_at timestamptz NOT NULL,
    first_response_at timestamptz,
    resolved_at timestamptz,
    decision jsonb,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One open case per conversation, whatever the number of router replicas.
CREATE UNIQUE INDEX cases_one_open_per_conversation
    ON cases (conversation_id) WHERE status NOT IN ('resolved', 'no_action');
CREATE INDEX cases_team_queue ON cases (team, priority, opened_at) WHERE status = 'queued';
CREATE INDEX cases_assignee ON cases (assignee) WHERE assignee IS NOT NULL;

CREATE TABLE messages (
    id uuid PRIMARY KEY,
    case_id uuid REFERENCES cases (id),
    conversation_id text NOT NULL,
    platform text NOT NULL,
    platform_message_id text NOT NULL,
    direction text NOT NULL,
    author_id text NOT NULL,
    text text NOT NULL,
    language text,
    sent_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    edited_at timestamptz,
    deleted_at timestamptz,
    body jsonb NOT NULL
);
CREATE INDEX messages_case ON messages (case_id, sent_at);
CREATE INDEX messages_conversation ON messages (conversation_id, sent_at);

CREATE TABLE agents (
    id text PRIMARY KEY,
    teams text[] NOT NULL,
    languages text[] NOT NULL DEFAULT '{}',
    capacity integer NOT NULL CHECK (capacity >= 0),
    online boolean NOT NULL DEFAULT false,
    load integer NOT NULL DEFAULT 0 CHECK (load >= 0),
    last_assigned_at timestamptz
);
