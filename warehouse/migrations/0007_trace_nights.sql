-- How many nights synthesized a trace: a failed one is tried again on later nights, up to
-- `synthesis.retry_failed` of them, and its row is then replaced by the new attempt.
ALTER TABLE traces ADD COLUMN nights INTEGER DEFAULT 1;
