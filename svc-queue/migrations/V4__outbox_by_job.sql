-- The relay's turn per owner counts each owner's jobs in flight (published, not finished), which
-- looks up a job's unsent outbox rows; cancelling a job deletes them.
CREATE INDEX outbox_unsent_by_job ON queue.outbox (job_id) WHERE sent_at IS NULL;
