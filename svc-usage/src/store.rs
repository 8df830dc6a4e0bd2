//! Every SQL statement of svc-usage.

use chrono::{DateTime, Utc};
use common::sql;
use deadpool_postgres::GenericClient;
use uuid::Uuid;

use crate::error::UsageError;

pub async fn anchor(
    db: &impl GenericClient,
    user_id: Uuid,
) -> Result<Option<DateTime<Utc>>, UsageError> {
    let row = sql::query_opt(
        db,
        "SELECT anchor FROM usage.cycle_anchors WHERE user_id = $1",
        &[&user_id],
    )
    .await?;
    Ok(row.map(|row| row.get(0)))
}

pub async fn set_anchor(
    db: &impl GenericClient,
    user_id: Uuid,
    anchor: Option<DateTime<Utc>>,
) -> Result<(), UsageError> {
    match anchor {
        Some(anchor) => {
            sql::execute(
                db,
                "INSERT INTO usage.cycle_anchors (user_id, anchor) VALUES ($1, $2) \
                 ON CONFLICT (user_id) DO UPDATE SET anchor = excluded.anchor, updated_at = now()",
                &[&user_id, &anchor],
            )
            .await?
        }
        None => {
            sql::execute(
                db,
                "DELETE FROM usage.cycle_anchors WHERE user_id = $1",
                &[&user_id],
            )
            .await?
        }
    };
    Ok(())
}

/// The user's cycle anchor, what they used of each counted operation (of `operation` only, when
/// given) in the cycles that started after `since`, and the standing count of each gauge: one
/// round trip where the anchor and then the counters of the cycle it gives would take two. A
/// cycle is at most 31 days long, so `since` a little further back than that holds the current
/// cycle's counters, with at most the previous cycle's beside them. Gauges come with no cycle.
pub async fn anchor_and_recent_use(
    db: &impl GenericClient,
    user_id: Uuid,
    operation: Option<&str>,
    since: DateTime<Utc>,
) -> Result<(Option<DateTime<Utc>>, Vec<RecentUse>), UsageError> {
    let rows = sql::query(
        db,
        "SELECT a.anchor, c.operation, c.used, c.cycle_start \
         FROM (SELECT (SELECT anchor FROM usage.cycle_anchors WHERE user_id = $1) AS anchor) a \
         LEFT JOIN ( \
             SELECT operation, used, cycle_start FROM usage.counters \
             WHERE user_id = $1 AND cycle_start > $3 AND ($2::text IS NULL OR operation = $2) \
             UNION ALL \
             SELECT operation, used, NULL::timestamptz FROM usage.gauges \
             WHERE user_id = $1 AND ($2::text IS NULL OR operation = $2) \
         ) c ON true",
        &[&user_id, &operation, &since],
    )
    .await?;
    let anchor = rows.first().and_then(|row| row.get(0));
    let used = rows
        .iter()
        .filter_map(|row| {
            Some(RecentUse {
                operation: row.get::<_, Option<String>>(1)?,
                used: row.get(2),
                cycle_start: row.get(3),
            })
        })
        .collect();
    Ok((anchor, used))
}

pub struct RecentUse {
    pub operation: String,
    pub used: i64,
    /// The counter's cycle; `None` for a gauge's standing count.
    pub cycle_start: Option<DateTime<Utc>>,
}

pub async fn used(
    db: &impl GenericClient,
    user_id: Uuid,
    operation: &str,
    cycle_start: DateTime<Utc>,
) -> Result<i64, UsageError> {
    let row = sql::query_opt(db,
            "SELECT used FROM usage.counters WHERE user_id = $1 AND operation = $2 AND cycle_start = $3",
            &[&user_id, &operation, &cycle_start],
        )
        .await?;
    Ok(row.map_or(0, |row| row.get(0)))
}

/// The CTEs `consumed` (the counter's conditional upsert, `RETURNING used`) and `logged` (its
/// ledger line) that [`consume`] and [`consume_with_new_key`] share: $1 user, $2 operation, $3
/// cycle start, $4 amount, $5 limit (`-1`: none), $6 key. A macro so that each statement stays
/// one literal (`concat!`), built at compile time rather than on every call.
macro_rules! consumed_and_logged {
    () => {
        "WITH consumed AS ( \
                 INSERT INTO usage.counters AS c (user_id, operation, cycle_start, used) \
                 SELECT $1::uuid, $2::text, $3::timestamptz, $4::bigint WHERE $5::bigint = -1 OR $4 <= $5 \
                 ON CONFLICT (user_id, operation, cycle_start) \
                 DO UPDATE SET used = c.used + excluded.used, updated_at = now() \
                 WHERE $5 = -1 OR c.used + excluded.used <= $5 \
                 RETURNING used \
             ), logged AS ( \
                 INSERT INTO usage.ledger (user_id, operation, cycle_start, kind, amount, idempotency_key) \
                 SELECT $1, $2, $3, 'consume', $4, $6::text FROM consumed \
             )"
    };
}

/// Adds `amount` to the counter if the result stays within `limit` (`-1`: no limit) and, when it
/// does, appends the consumption to the ledger, in one statement (so one atomic step even outside
/// a transaction). The row lock taken by the upsert serialises concurrent consumers, and each sees
/// the total the previous one left. Returns the new total, or `None` when it would not fit. (The
/// casts type the parameters of `INSERT … SELECT`, which Postgres would otherwise read as text.)
pub async fn consume(
    db: &impl GenericClient,
    user_id: Uuid,
    operation: &str,
    cycle_start: DateTime<Utc>,
    amount: i64,
    limit: i64,
    idempotency_key: Option<&str>,
) -> Result<Option<i64>, UsageError> {
    let row = sql::query_opt(
        db,
        concat!(consumed_and_logged!(), " SELECT used FROM consumed"),
        &[
            &user_id,
            &operation,
            &cycle_start,
            &amount,
            &limit,
            &idempotency_key,
        ],
    )
    .await?;
    Ok(row.map(|row| row.get(0)))
}

/// What a keyed consumption in one statement came to.
pub enum KeyedConsumption {
    /// Consumed, and the key stored with this answer: the new total.
    Granted(i64),
    /// It would not fit: nothing was written, not even the key.
    Denied,
    /// The key was claimed before (by an earlier or a concurrent request, which has committed):
    /// nothing was written.
    KeyTaken,
}

/// [`consume`] and the key's claim with its granted answer, in one statement (so without a
/// transaction around it, and in one round trip): the key's insert fails on a key claimed before,
/// which undoes the whole statement. A concurrent request holding the key uncommitted makes the
/// insert wait for its outcome.
#[allow(clippy::too_many_arguments)]
pub async fn consume_with_new_key(
    db: &impl GenericClient,
    user_id: Uuid,
    operation: &str,
    cycle: &crate::cycle::Cycle,
    amount: i64,
    limit: i64,
    key: &str,
    request_hash: &[u8],
) -> Result<KeyedConsumption, UsageError> {
    let consumed = sql::query_opt(db,
            concat!(consumed_and_logged!(), ", keyed AS ( \
                 INSERT INTO usage.idempotency_keys (user_id, key, operation, amount, request_hash, \
                     granted, used, limit_value, cycle_start, cycle_end) \
                 SELECT $1, $6, $2, $4, $7::bytea, true, used, $5, $3, $8::timestamptz FROM consumed \
             ) \
             SELECT used FROM consumed"),
            &[&user_id, &operation, &cycle.start, &amount, &limit, &key, &request_hash, &cycle.end],
        )
        .await;
    match consumed {
        Ok(Some(row)) => Ok(KeyedConsumption::Granted(row.get(0))),
        Ok(None) => Ok(KeyedConsumption::Denied),
        Err(err) if err.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
            Ok(KeyedConsumption::KeyTaken)
        }
        Err(err) => Err(err.into()),
    }
}

pub async fn give_back(
    db: &impl GenericClient,
    user_id: Uuid,
    operation: &str,
    cycle_start: DateTime<Utc>,
    amount: i64,
) -> Result<(), UsageError> {
    sql::execute(
        db,
        "UPDATE usage.counters SET used = greatest(used - $4, 0), updated_at = now() \
         WHERE user_id = $1 AND operation = $2 AND cycle_start = $3",
        &[&user_id, &operation, &cycle_start, &amount],
    )
    .await?;
    Ok(())
}

/// A refund's line in the ledger (consumptions are written by [`consume`] itself).
pub async fn append_refund(
    db: &impl GenericClient,
    user_id: Uuid,
    operation: &str,
    cycle_start: DateTime<Utc>,
    amount: i64,
    idempotency_key: &str,
) -> Result<(), UsageError> {
    sql::execute(
        db,
        "INSERT INTO usage.ledger (user_id, operation, cycle_start, kind, amount, idempotency_key) \
         VALUES ($1, $2, $3, 'refund', $4, $5)",
        &[
            &user_id,
            &operation,
            &cycle_start,
            &amount,
            &idempotency_key,
        ],
    )
    .await?;
    Ok(())
}

/// Claims the key for this request, bound to the request's digest. `false` when it was claimed
/// before: a concurrent request with the same key waits here until the first one commits, then
/// finds its answer.
pub async fn claim_key(
    db: &impl GenericClient,
    user_id: Uuid,
    key: &str,
    operation: &str,
    amount: i64,
    request_hash: &[u8],
) -> Result<bool, UsageError> {
    let inserted = sql::execute(
        db,
        "INSERT INTO usage.idempotency_keys (user_id, key, operation, amount, request_hash) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, key) DO NOTHING",
        &[&user_id, &key, &operation, &amount, &request_hash],
    )
    .await?;
    Ok(inserted == 1)
}

/// The answer stored for a key: (operation, amount, granted, used, limit, cycle start, cycle end).
pub struct StoredAnswer {
    pub operation: String,
    pub amount: i64,
    pub granted: bool,
    pub used: i64,
    pub limit: i64,
    pub cycle_start: DateTime<Utc>,
    pub cycle_end: DateTime<Utc>,
}

/// What a key holds: the digest of the request that claimed it, its answer, and whether its
/// consumption was refunded since.
pub struct KeyRecord {
    pub request_hash: Vec<u8>,
    pub answer: StoredAnswer,
    pub refunded: bool,
}

/// The key's record once its answer is stored. A key written by a replica that predates the
/// digest column (NULL) is read with the digest of its own operation and amount, the same one
/// `service::request_hash` makes and migration V2 filled in.
pub async fn stored_answer(
    db: &impl GenericClient,
    user_id: Uuid,
    key: &str,
) -> Result<Option<KeyRecord>, UsageError> {
    let row = sql::query_opt(db,
            "SELECT operation, amount, granted, used, limit_value, cycle_start, cycle_end, \
             coalesce(request_hash, sha256(convert_to(operation || E'\\n' || amount::text, 'UTF8'))), \
             refunded_at IS NOT NULL \
             FROM usage.idempotency_keys WHERE user_id = $1 AND key = $2 AND granted IS NOT NULL",
            &[&user_id, &key],
        )
        .await?;
    Ok(row.map(|row| KeyRecord {
        answer: StoredAnswer {
            operation: row.get(0),
            amount: row.get(1),
            granted: row.get(2),
            used: row.get(3),
            limit: row.get(4),
            cycle_start: row.get(5),
            cycle_end: row.get(6),
        },
        request_hash: row.get(7),
        refunded: row.get(8),
    }))
}

pub async fn store_answer(
    db: &impl GenericClient,
    user_id: Uuid,
    key: &str,
    answer: &StoredAnswer,
) -> Result<(), UsageError> {
    sql::execute(db,
        "UPDATE usage.idempotency_keys SET granted = $3, used = $4, limit_value = $5, cycle_start = $6, cycle_end = $7 \
         WHERE user_id = $1 AND key = $2",
        &[&user_id, &key, &answer.granted, &answer.used, &answer.limit, &answer.cycle_start, &answer.cycle_end],
    )
    .await?;
    Ok(())
}

/// Marks the granted consumption of this key refunded; `None` when there is nothing to give back
/// (never granted, or refunded before).
pub async fn mark_refunded(
    db: &impl GenericClient,
    user_id: Uuid,
    key: &str,
) -> Result<Option<(String, i64, DateTime<Utc>)>, UsageError> {
    let row = sql::query_opt(
        db,
        "UPDATE usage.idempotency_keys SET refunded_at = now() \
             WHERE user_id = $1 AND key = $2 AND granted AND refunded_at IS NULL \
             RETURNING operation, amount, cycle_start",
        &[&user_id, &key],
    )
    .await?;
    Ok(row.map(|row| (row.get(0), row.get(1), row.get(2))))
}

pub async fn key_exists(
    db: &impl GenericClient,
    user_id: Uuid,
    key: &str,
) -> Result<bool, UsageError> {
    Ok(sql::query_opt(
        db,
        "SELECT 1 FROM usage.idempotency_keys WHERE user_id = $1 AND key = $2",
        &[&user_id, &key],
    )
    .await?
    .is_some())
}

pub async fn delete_old_keys(
    db: &impl GenericClient,
    ttl: std::time::Duration,
) -> Result<u64, UsageError> {
    let secs = ttl.as_secs_f64();
    Ok(sql::execute(
        db,
        "DELETE FROM usage.idempotency_keys WHERE created_at < now() - make_interval(secs => $1)",
        &[&secs],
    )
    .await?)
}

/// The standing count of a gauge (0 before its first unit).
pub async fn gauge_used(
    db: &impl GenericClient,
    user_id: Uuid,
    operation: &str,
) -> Result<i64, UsageError> {
    let row = sql::query_opt(
        db,
        "SELECT used FROM usage.gauges WHERE user_id = $1 AND operation = $2",
        &[&user_id, &operation],
    )
    .await?;
    Ok(row.map_or(0, |row| row.get(0)))
}

/// Claims `key` for a unit of `operation`, inside the acquire's transaction. `false` when the key
/// is known already (held, released, or released before it was acquired): a concurrent acquire
/// of the same key waits here until the first one commits or rolls back.
pub async fn claim_hold(
    db: &impl GenericClient,
    user_id: Uuid,
    key: &str,
    operation: &str,
) -> Result<bool, UsageError> {
    let inserted = sql::execute(
        db,
        "INSERT INTO usage.gauge_holds (user_id, key, operation, granted) \
         VALUES ($1, $2, $3, true) ON CONFLICT (user_id, key) DO NOTHING",
        &[&user_id, &key, &operation],
    )
    .await?;
    Ok(inserted == 1)
}

/// Takes one unit of the gauge if the standing count stays within `limit` (`-1`: none), and, when
/// it does, stores the answer on the key's claimed row and appends the ledger line, in one
/// statement. The row lock of the upsert serialises concurrent acquires of the user's gauge;
/// each sees the count the previous one committed. The new count, or `None` when it would not fit.
pub async fn take_unit(
    db: &impl GenericClient,
    user_id: Uuid,
    operation: &str,
    limit: i64,
    key: &str,
    cycle_start: DateTime<Utc>,
) -> Result<Option<i64>, UsageError> {
    let row = sql::query_opt(
        db,
        "WITH taken AS ( \
             INSERT INTO usage.gauges AS g (user_id, operation, used) \
             SELECT $1::uuid, $2::text, 1 WHERE $3::bigint = -1 OR 1 <= $3 \
             ON CONFLICT (user_id, operation) \
             DO UPDATE SET used = g.used + 1, updated_at = now() \
             WHERE $3 = -1 OR g.used + 1 <= $3 \
             RETURNING used \
         ), held AS ( \
             UPDATE usage.gauge_holds h SET used = taken.used, limit_value = $3 FROM taken \
             WHERE h.user_id = $1 AND h.key = $4::text \
         ), logged AS ( \
             INSERT INTO usage.ledger (user_id, operation, cycle_start, kind, amount, idempotency_key) \
             SELECT $1, $2, $5::timestamptz, 'acquire', 1, $4 FROM taken \
         ) \
         SELECT used FROM taken",
        &[&user_id, &operation, &limit, &key, &cycle_start],
    )
    .await?;
    Ok(row.map(|row| row.get(0)))
}

/// What a key of a gauge holds.
pub struct Hold {
    pub operation: String,
    /// The standing count right after the unit was taken, and the limit it was taken against
    /// (`None` for a key released before it was ever acquired).
    pub used: Option<i64>,
    pub limit: Option<i64>,
    pub released: bool,
}

pub async fn hold(
    db: &impl GenericClient,
    user_id: Uuid,
    key: &str,
) -> Result<Option<Hold>, UsageError> {
    let row = sql::query_opt(
        db,
        "SELECT operation, used, limit_value, released_at IS NOT NULL \
         FROM usage.gauge_holds WHERE user_id = $1 AND key = $2",
        &[&user_id, &key],
    )
    .await?;
    Ok(row.map(|row| Hold {
        operation: row.get(0),
        used: row.get(1),
        limit: row.get(2),
        released: row.get(3),
    }))
}

/// Remembers `key` as released before it was ever acquired, inside the release's transaction.
/// `false` when the key is known already; a concurrent acquire of the key that has not committed
/// yet is waited for, so its unit is then found and given back.
pub async fn release_unknown(
    db: &impl GenericClient,
    user_id: Uuid,
    key: &str,
    operation: &str,
) -> Result<bool, UsageError> {
    let inserted = sql::execute(
        db,
        "INSERT INTO usage.gauge_holds (user_id, key, operation, granted, released_at) \
         VALUES ($1, $2, $3, false, now()) ON CONFLICT (user_id, key) DO NOTHING",
        &[&user_id, &key, &operation],
    )
    .await?;
    Ok(inserted == 1)
}

/// Gives back the unit held under `key`, once: marks the hold released, lowers the gauge (never
/// below 0) and appends the ledger line, in one statement. The row lock of the hold serialises
/// concurrent releases; only the first finds it held. Whether a unit was given back.
pub async fn give_unit_back(
    db: &impl GenericClient,
    user_id: Uuid,
    key: &str,
    operation: &str,
    cycle_start: DateTime<Utc>,
) -> Result<bool, UsageError> {
    let row = sql::query_one(
        db,
        "WITH freed AS ( \
             UPDATE usage.gauge_holds SET released_at = now() \
             WHERE user_id = $1 AND key = $2 AND operation = $3 AND granted AND released_at IS NULL \
             RETURNING operation \
         ), lowered AS ( \
             UPDATE usage.gauges g SET used = greatest(g.used - 1, 0), updated_at = now() \
             FROM freed WHERE g.user_id = $1 AND g.operation = freed.operation \
         ), logged AS ( \
             INSERT INTO usage.ledger (user_id, operation, cycle_start, kind, amount, idempotency_key) \
             SELECT $1, operation, $4, 'release', 1, $2 FROM freed \
         ) \
         SELECT count(*) FROM freed",
        &[&user_id, &key, &operation, &cycle_start],
    )
    .await?;
    Ok(row.get::<_, i64>(0) > 0)
}

/// Released holds past their time (held ones are never swept: they are what is held).
pub async fn delete_old_releases(
    db: &impl GenericClient,
    ttl: std::time::Duration,
) -> Result<u64, UsageError> {
    let secs = ttl.as_secs_f64();
    Ok(sql::execute(
        db,
        "DELETE FROM usage.gauge_holds WHERE released_at < now() - make_interval(secs => $1)",
        &[&secs],
    )
    .await?)
}
