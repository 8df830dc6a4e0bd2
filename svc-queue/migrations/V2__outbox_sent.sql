-- The pruning of sent outbox rows finds them by when they were sent.
CREATE INDEX outbox_sent ON queue.outbox (sent_at) WHERE sent_at IS NOT NULL;
