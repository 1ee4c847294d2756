-- `casewire-router report` filters cases by opening time and inbound messages by sending time.
CREATE INDEX cases_opened_at ON cases (opened_at);
CREATE INDEX messages_inbound_sent_at ON messages (sent_at) WHERE direction = 'inbound';
