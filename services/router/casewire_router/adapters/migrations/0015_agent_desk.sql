-- Issue 13: an agent's own work (the desks' feed, offline returns) and collision avoidance
-- (reply leases, platform echoes waiting for their author). docs/agent-desk.md explains them.

-- The desks' feed: every case event the router commits (message path, API and background
-- duties alike) and every reply-lease change, written in the same transaction as the change
-- and its outbox rows (adapters/case_feed.py). Ids are handed out in commit order (one writer
-- at a time holds the feed's advisory lock from its insert to its commit), so a reader that
-- has seen id N has seen every row below N: `id` is the SSE `id:` of GET /v1/me/stream and
-- `Last-Event-ID` resumes after it. Who sees a row is decided from where the case stood
-- before and after the change (team, owner, waiting in the queue). Pruned by age
-- (CASEWIRE_ROUTER_STREAM_RETENTION).
CREATE TABLE case_feed (
    id bigserial PRIMARY KEY,
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    case_id uuid NOT NULL,
    type text NOT NULL,
    team text NOT NULL,
    owner text,
    waiting boolean NOT NULL,
    previous_team text,
    previous_owner text,
    was_waiting boolean NOT NULL,
    -- The event's data as published (JSON), sent as the SSE `data:` line.
    data bytea NOT NULL
);
CREATE INDEX case_feed_recorded_at ON case_feed (recorded_at);

-- Reply leases: who is answering a case right now. One row per case; a row whose expires_at
-- has passed is no lease (it is taken over in place, and pruned with the feed).
CREATE TABLE reply_leases (
    case_id uuid PRIMARY KEY REFERENCES cases (id),
    agent_id text NOT NULL,
    taken_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX reply_leases_expires_at ON reply_leases (expires_at);

-- Brand replies seen on a platform (echoes) while someone's reply lease was live: the holder
-- may still record the reply as theirs (POST /v1/cases/{id}/replies with its
-- platform_message_id) until decide_at; after that it is a collision (casewire.case.collision)
-- and `collided` says so, so that a late record does not count it twice. Pruned by decide_at
-- with the feed.
CREATE TABLE lease_echoes (
    message_id uuid PRIMARY KEY,
    case_id uuid NOT NULL REFERENCES cases (id),
    lease_holder text NOT NULL,
    sent_at timestamptz NOT NULL,
    decide_at timestamptz NOT NULL,
    collided boolean NOT NULL DEFAULT false
);
CREATE INDEX lease_echoes_due ON lease_echoes (decide_at) WHERE NOT collided;
CREATE INDEX lease_echoes_decide_at ON lease_echoes (decide_at);

-- Since when an agent has been offline (NULL while online): their open cases return to the
-- queue once CASEWIRE_ROUTER_OFFLINE_GRACE has passed. Kept by triggers, so every way an
-- agent goes offline or online (the API, the agents file) sets it alike.
ALTER TABLE agents ADD COLUMN offline_since timestamptz;
UPDATE agents SET offline_since = now() WHERE NOT online;

CREATE FUNCTION agents_offline_since() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.offline_since := CASE WHEN NEW.online THEN NULL ELSE now() END;
    RETURN NEW;
END
$$;
CREATE TRIGGER agents_presence_changed BEFORE UPDATE OF online ON agents
    FOR EACH ROW WHEN (OLD.online IS DISTINCT FROM NEW.online)
    EXECUTE FUNCTION agents_offline_since();
CREATE TRIGGER agents_created BEFORE INSERT ON agents
    FOR EACH ROW EXECUTE FUNCTION agents_offline_since();
