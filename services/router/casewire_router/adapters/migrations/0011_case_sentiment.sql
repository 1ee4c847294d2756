-- The sentiment of each case's latest customer message and the most negative one so far
-- (`sentiment` and `worst_sentiment` in every case event's snapshot). Cases opened before
-- this migration have none until their next customer message.
ALTER TABLE cases
    ADD COLUMN sentiment_label text,
    ADD COLUMN sentiment_score real,
    ADD COLUMN worst_sentiment_label text,
    ADD COLUMN worst_sentiment_score real;
