-- Ingest's schema: which platform messages were already published (across restarts and replicas).

CREATE TABLE seen_messages (
    key text PRIMARY KEY,            -- CanonicalMessage.delivery_key
    claimed_at timestamptz NOT NULL,
    published_at timestamptz         -- NULL while a request is publishing it
);
CREATE INDEX seen_messages_claimed_at ON seen_messages (claimed_at);
