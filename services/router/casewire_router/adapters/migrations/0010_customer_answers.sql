-- A customer's message answering another message (X: a reply to the brand's reply, or to the
-- customer's own tweet), found by the message it answers: a reply chain processed out of order
-- splits into two cases, merged when the answered message gets its case. Partial: only
-- customer messages that answer one are indexed.
CREATE INDEX messages_customer_answers_by_answered
    ON messages (platform, (body->>'in_reply_to'))
    WHERE direction = 'inbound' AND body->>'in_reply_to' IS NOT NULL;
