-- The original's media_jobs (id, job_type, queue_name, status, payload, result, error, created_at,
-- started_at, completed_at; BullMQ's job id is the job's own id here), plus what a queue that
-- loses nothing needs: the owner, attempts, priority, progress and the idempotency key with the
-- digest of the request it was first used with.
CREATE TABLE queue.media_jobs (
    id uuid PRIMARY KEY,
    owner_id uuid NOT NULL,
    creator_profile_id uuid,
    job_type text NOT NULL,
    queue_name text NOT NULL,
    status text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'active', 'completed', 'failed', 'cancelled')),
    priority smallint NOT NULL CHECK (priority BETWEEN 1 AND 20),
    payload jsonb NOT NULL,
    result jsonb,
    error text,
    attempts integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL CHECK (max_attempts > 0),
    progress smallint NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    idempotency_key text NOT NULL,
    request_digest bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    completed_at timestamptz,
    UNIQUE (owner_id, idempotency_key)
);

CREATE INDEX media_jobs_by_owner ON queue.media_jobs (owner_id, created_at DESC, id DESC);
CREATE INDEX media_jobs_by_status ON queue.media_jobs (status);

-- Written in the job's transaction; the relay publishes a row and sets sent_at only after the
-- broker confirmed it.
CREATE TABLE queue.outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id uuid NOT NULL REFERENCES queue.media_jobs (id) ON DELETE CASCADE,
    queue_name text NOT NULL,
    priority smallint NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz
);

CREATE INDEX outbox_unsent ON queue.outbox (priority, id) WHERE sent_at IS NULL;
