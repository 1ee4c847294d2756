-- A conversation's handover stops mattering once a later one of the same conversation (in the
-- order the router reads them: time, then source id) took over: a message sent after that
-- later one is decided by it or a later one, never by this one. `superseded_at` is that later
-- handover's time; NULL for a conversation's latest handover, which says who answers it now
-- and is kept. Pruned with the processed markers (CASEWIRE_PROCESSED_RETENTION) by
-- `superseded_at`: a message read later than that after it was sent is decided without the
-- handovers pruned, as a redelivery that late is applied again.
ALTER TABLE handovers ADD COLUMN superseded_at timestamptz;
UPDATE handovers h SET superseded_at = n.next_at
    FROM (
        SELECT conversation_id, source_id,
            lead(at) OVER (PARTITION BY conversation_id ORDER BY at, source_id) AS next_at
        FROM handovers
    ) n
    WHERE h.conversation_id = n.conversation_id AND h.source_id = n.source_id
        AND n.next_at IS NOT NULL;
CREATE INDEX handovers_superseded_at ON handovers (superseded_at) WHERE superseded_at IS NOT NULL;
