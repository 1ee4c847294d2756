-- What the case looked like when its clock last changed, beyond team and priority: the
-- platform and channel label the response-time metrics, and with visibility and tags they
-- let `casewire-sla recompute` select a policy again without the case events. NULL on clocks
-- written before this migration (labelled "unknown").

ALTER TABLE clocks ADD COLUMN platform text;
ALTER TABLE clocks ADD COLUMN channel text;
ALTER TABLE clocks ADD COLUMN visibility text;
ALTER TABLE clocks ADD COLUMN tags text[];
