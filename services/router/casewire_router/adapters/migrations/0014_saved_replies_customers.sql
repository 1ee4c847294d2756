-- Saved replies written through the API (over the saved-replies file's, while they exist), the
-- uses of saved replies in replies, and a customer's cases by platform and author.

CREATE TABLE saved_replies (
    id text PRIMARY KEY,
    -- title, text (language -> template), teams, tags: domain.saved_replies.SavedReplyContent
    content jsonb NOT NULL,
    updated_by_id text NOT NULL,
    updated_by_role text NOT NULL,
    updated_at timestamptz NOT NULL
);

-- One row per reply recorded through the API with a `saved_reply_id` (the reply's message id):
-- `casewire-router report` counts them under the case's team and owner, by when they were sent.
CREATE TABLE saved_reply_uses (
    message_id uuid PRIMARY KEY,
    case_id uuid NOT NULL REFERENCES cases (id),
    saved_reply_id text NOT NULL,
    used_at timestamptz NOT NULL
);
CREATE INDEX saved_reply_uses_used_at ON saved_reply_uses (used_at);

-- GET /v1/customers/{platform}/{id}: a customer's cases, newest first, across the brand's
-- accounts (cases_customer_recent leads with the account, which the URL does not name).
CREATE INDEX cases_by_customer ON cases (platform, customer_id, opened_at DESC);
