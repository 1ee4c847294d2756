-- Bot handover (docs/handover.md). A message sent while a chatbot answered its conversation is
-- the bot's transcript (`bot_phase`): stored without a case until the conversation is handed to
-- humans, then with the case that handover opened; never a brand response. How ingest
-- delivered each message is kept, so that its phase can be decided again when a handover read
-- late says when control changed: read on Meta's standby channel, and the app that sent an echo.
ALTER TABLE messages
    ADD COLUMN bot_phase boolean NOT NULL DEFAULT false,
    ADD COLUMN standby boolean NOT NULL DEFAULT false,
    ADD COLUMN sending_app text;

-- A conversation's transcript still waiting for a case, read when a handover arrives.
CREATE INDEX messages_waiting_transcript
    ON messages (conversation_id, sent_at) WHERE bot_phase AND case_id IS NULL;

-- Who answers each conversation, change by change (event time): a thread-control record of
-- Meta's handover protocol, or the rules file's handoff; a handover to humans names the case
-- it opened or joined once there is one.
CREATE TABLE handovers (
    conversation_id text NOT NULL,
    source_id text NOT NULL,
    at timestamptz NOT NULL,
    owner text NOT NULL CHECK (owner IN ('bot', 'human')),
    reason text NOT NULL,
    app_id text,
    metadata text,
    case_id uuid REFERENCES cases (id),
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, source_id)
);
