-- svc-usage owns the `usage` schema (created by common::db::migrate before this runs).

-- A user whose billing cycle does not follow the calendar month: cycles start on the anchor's
-- day and time of day, every month.
CREATE TABLE usage.cycle_anchors (
    user_id    uuid PRIMARY KEY,
    anchor     timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- What each user used of each operation in each billing cycle. Consumption is one conditional
-- upsert on this row, so concurrent requests can never take more than the limit.
CREATE TABLE usage.counters (
    user_id     uuid NOT NULL,
    operation   text NOT NULL,
    cycle_start timestamptz NOT NULL,
    used        bigint NOT NULL CHECK (used >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, operation, cycle_start)
);

-- Every consumption and refund, for audit and billing disputes. Never rewritten.
CREATE TABLE usage.ledger (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         uuid NOT NULL,
    operation       text NOT NULL,
    cycle_start     timestamptz NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('consume', 'refund')),
    amount          bigint NOT NULL CHECK (amount > 0),
    idempotency_key text,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX ledger_user_idx ON usage.ledger (user_id, created_at);

CREATE FUNCTION usage.ledger_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'usage.ledger is append-only';
END
$$;

CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON usage.ledger
    FOR EACH ROW EXECUTE FUNCTION usage.ledger_is_append_only();

-- The first answer given for each (user, key), given again to retries. Kept at least 24 hours.
CREATE TABLE usage.idempotency_keys (
    user_id     uuid NOT NULL,
    key         text NOT NULL,
    operation   text NOT NULL,
    amount      bigint NOT NULL,
    granted     boolean,
    used        bigint,
    limit_value bigint,
    cycle_start timestamptz,
    cycle_end   timestamptz,
    refunded_at timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);

CREATE INDEX idempotency_keys_created_idx ON usage.idempotency_keys (created_at);
