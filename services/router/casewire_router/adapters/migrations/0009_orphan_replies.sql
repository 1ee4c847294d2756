-- Brand replies kept without a case (processed before the customer message they answer),
-- found when that message arrives: by the message they name, or by their conversation.
-- Partial: only orphans are indexed, so the lookups cost one index probe per batch.
CREATE INDEX messages_orphan_replies_by_answered
    ON messages ((body->>'in_reply_to')) WHERE case_id IS NULL AND direction = 'outbound';
CREATE INDEX messages_orphan_replies_by_conversation
    ON messages (conversation_id, sent_at) WHERE case_id IS NULL AND direction = 'outbound';
