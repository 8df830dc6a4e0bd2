-- Files: what an owner uploaded as a job's input, and what a job produced. The bytes live in the
-- storage (a local directory by default) under storage_key; the row is written only after the
-- bytes are durable there.
CREATE TABLE queue.files (
    id uuid PRIMARY KEY,
    owner_id uuid NOT NULL,
    content_type text NOT NULL,
    bytes bigint NOT NULL CHECK (bytes >= 0),
    sha256 bytea NOT NULL,
    storage_key text NOT NULL UNIQUE,
    filename text,
    width integer,
    height integer,
    -- The job that produced it; null for an upload.
    job_id uuid REFERENCES queue.media_jobs (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX files_by_owner ON queue.files (owner_id, created_at DESC);

-- The attempt that holds a job: a worker's writes count only while the job carries its lease,
-- so a job delivered twice (a relay that crashed between the confirm and its commit, a worker
-- that stalled past its redelivery) is finished once.
ALTER TABLE queue.media_jobs ADD COLUMN lease uuid;
-- When a job waiting for its next attempt is due (a delayed retry); null otherwise.
ALTER TABLE queue.media_jobs ADD COLUMN next_attempt_at timestamptz;

-- A retry's message is written to the outbox in the transaction that records the failed
-- attempt, due after its backoff; the relay publishes only rows that are due.
ALTER TABLE queue.outbox ADD COLUMN publish_after timestamptz NOT NULL DEFAULT now();
