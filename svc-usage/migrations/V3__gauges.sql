-- Standing gauges (the `gauges` of tiers.json: `platforms`, the creator profiles connected): what
-- a user holds now, not what they used in a billing cycle, so no cycle resets them. AcquireGauge
-- takes a unit with one conditional upsert on the user's row (the row lock serialises concurrent
-- acquires, so the count never passes the tier's limit); ReleaseGauge gives it back, never below 0.
CREATE TABLE usage.gauges (
    user_id    uuid NOT NULL,
    operation  text NOT NULL,
    used       bigint NOT NULL CHECK (used >= 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, operation)
);

-- Each unit taken, under the key of what holds it (e.g. `creator_profile:<id>`): the answer given
-- when it was taken (for retries) and when it was given back. A release of a key that was never
-- acquired is kept too (not granted, released), so that an acquire arriving after it is not
-- granted. Held rows are the record of what is held and are never swept; released ones are
-- swept with the idempotency keys (USAGE_IDEMPOTENCY_TTL_HOURS).
CREATE TABLE usage.gauge_holds (
    user_id     uuid NOT NULL,
    key         text NOT NULL,
    operation   text NOT NULL,
    granted     boolean NOT NULL,
    -- The standing count right after the unit was taken, and the limit it was taken against;
    -- NULL for a release of a key never acquired.
    used        bigint,
    limit_value bigint,
    acquired_at timestamptz NOT NULL DEFAULT now(),
    released_at timestamptz,
    PRIMARY KEY (user_id, key),
    CHECK (granted OR released_at IS NOT NULL)
);

CREATE INDEX gauge_holds_released_idx ON usage.gauge_holds (released_at)
    WHERE released_at IS NOT NULL;

-- The ledger records gauges' units taken and given back beside consumptions and refunds, in the
-- cycle in which each happened. (Replicas of the previous version write only the first two.)
ALTER TABLE usage.ledger DROP CONSTRAINT ledger_kind_check;
ALTER TABLE usage.ledger ADD CONSTRAINT ledger_kind_check
    CHECK (kind IN ('consume', 'refund', 'acquire', 'release'));
