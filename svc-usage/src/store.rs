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

/// The user's cycle anchor and what they used of each operation (of `operation` only, when
/// given) in the cycles that started after `since`: one round trip where the anchor and then the
/// counters of the cycle it gives would take two. A cycle is at most 31 days long, so `since` a
/// little further back than that holds the current cycle's counters, with at most the previous
/// cycle's beside them.
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
         LEFT JOIN usage.counters c ON c.user_id = $1 AND c.cycle_start > $3 \
         AND ($2::text IS NULL OR c.operation = $2)",
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
    pub cycle_start: DateTime<Utc>,
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
