//! What svc-usage does, as plain async methods over the database; the gRPC layer only
//! translates. These methods are the authority on every quota rule.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use common::clock::Clock;
use common::identity::{Identity, Principal};
use deadpool_postgres::{GenericClient, Pool};
use uuid::Uuid;

use crate::cycle::{Cycle, cycle_at};
use crate::error::UsageError;
use crate::store::{self, KeyRecord, StoredAnswer};
use crate::tiers::{Tiers, remaining};

/// The most one request may consume: a guard against a typo becoming a month of quota.
pub const MAX_AMOUNT: i64 = 1000;
const MAX_KEY_LEN: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub granted: bool,
    pub operation: String,
    pub used: i64,
    pub limit: i64,
    pub remaining: i64,
    pub cycle: Cycle,
    pub replayed: bool,
    /// A replay of a key whose consumption was refunded since: nothing is granted.
    pub refunded: bool,
}

impl Answer {
    fn new(granted: bool, operation: &str, used: i64, limit: i64, cycle: Cycle) -> Self {
        Self {
            granted,
            operation: operation.to_owned(),
            used,
            limit,
            remaining: remaining(limit, used),
            cycle,
            replayed: false,
            refunded: false,
        }
    }
}

/// A stored answer, given again to a retry. After a refund it no longer grants: what it granted
/// was given back, and the retry must not be taken for a paid request.
impl From<KeyRecord> for Answer {
    fn from(record: KeyRecord) -> Self {
        let stored = record.answer;
        let cycle = Cycle {
            start: stored.cycle_start,
            end: stored.cycle_end,
        };
        Self {
            replayed: true,
            refunded: record.refunded,
            ..Self::new(
                stored.granted && !record.refunded,
                &stored.operation,
                stored.used,
                stored.limit,
                cycle,
            )
        }
    }
}

/// The digest an idempotency key is bound to: what identifies a consumption request (its
/// operation and amount; the user is the key's namespace, and the tier is the caller's state at
/// the time, not part of the request). Migration V2 and `store::stored_answer` compute the same
/// digest in SQL for keys written without one.
pub fn request_hash(operation: &str, amount: i64) -> Vec<u8> {
    ring::digest::digest(
        &ring::digest::SHA256,
        format!("{operation}\n{amount}").as_bytes(),
    )
    .as_ref()
    .to_vec()
}

impl StoredAnswer {
    fn of(answer: &Answer, amount: i64) -> Self {
        Self {
            operation: answer.operation.clone(),
            amount,
            granted: answer.granted,
            used: answer.used,
            limit: answer.limit,
            cycle_start: answer.cycle.start,
            cycle_end: answer.cycle.end,
        }
    }
}

/// The answer to an acquire of a gauge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GaugeAnswer {
    pub granted: bool,
    pub operation: String,
    /// The standing count (for a replay of a grant: right after the unit was taken).
    pub used: i64,
    pub limit: i64,
    pub remaining: i64,
    pub replayed: bool,
    /// The key's unit was released since (or the key released before it was acquired).
    pub released: bool,
}

impl GaugeAnswer {
    fn new(granted: bool, operation: &str, used: i64, limit: i64) -> Self {
        Self {
            granted,
            operation: operation.to_owned(),
            used,
            limit,
            remaining: remaining(limit, used),
            replayed: false,
            released: false,
        }
    }
}

pub struct GaugeRelease {
    /// Whether this call gave a unit back.
    pub released: bool,
    pub operation: String,
    /// The standing count after it.
    pub used: i64,
}

pub struct Report {
    pub tier: String,
    pub cycle: Cycle,
    /// (operation, used, limit, remaining), in the tier file's order.
    pub operations: Vec<(String, i64, i64, i64)>,
}

pub struct Refund {
    pub refunded: bool,
    pub operation: String,
    pub amount: i64,
}

pub struct UsageService {
    pool: Pool,
    tiers: Tiers,
    clock: Arc<dyn Clock>,
}

fn parse_user(user_id: &str) -> Result<Uuid, UsageError> {
    if user_id.trim().is_empty() {
        return Err(UsageError::missing("user_id"));
    }
    Uuid::parse_str(user_id.trim())
        .map_err(|_| UsageError::invalid("user_id", "user_id must be a uuid"))
}

fn check_amount(amount: i64) -> Result<i64, UsageError> {
    if (1..=MAX_AMOUNT).contains(&amount) {
        Ok(amount)
    } else {
        Err(UsageError::invalid(
            "amount",
            format!("amount must be between 1 and {MAX_AMOUNT}"),
        ))
    }
}

fn check_key(key: &str) -> Result<Option<&str>, UsageError> {
    let key = key.trim();
    if key.is_empty() {
        return Ok(None);
    }
    if key.len() > MAX_KEY_LEN || key.chars().any(char::is_control) {
        return Err(UsageError::invalid(
            "idempotency_key",
            format!("idempotency_key must be at most {MAX_KEY_LEN} printable characters"),
        ));
    }
    Ok(Some(key))
}

/// A user may act on their own quota; administrators and the system principal on anyone's.
/// A user asking about someone else learns nothing, not even that they exist.
fn authorize(identity: &Identity, user_id: Uuid) -> Result<(), UsageError> {
    match &identity.principal {
        Principal::System => Ok(()),
        Principal::User(user) if user.id == user_id || user.is_admin() => Ok(()),
        Principal::User(_) => Err(UsageError::NotFound("user")),
        Principal::Anonymous => Err(UsageError::Forbidden(
            "quota calls need a user or the system",
        )),
    }
}

impl UsageService {
    pub fn new(pool: Pool, tiers: Tiers, clock: Arc<dyn Clock>) -> Self {
        Self { pool, tiers, clock }
    }

    async fn cycle(&self, db: &impl GenericClient, user_id: Uuid) -> Result<Cycle, UsageError> {
        Ok(cycle_at(
            store::anchor(db, user_id).await?,
            self.clock.now(),
        ))
    }

    /// The current cycle and what was used in it (of `operation`, or of every operation).
    async fn cycle_and_use(
        &self,
        db: &impl GenericClient,
        user_id: Uuid,
        operation: Option<&str>,
    ) -> Result<(Cycle, Vec<store::RecentUse>), UsageError> {
        let now = self.clock.now();
        let since = now - chrono::TimeDelta::days(crate::cycle::LONGEST_CYCLE_DAYS + 1);
        let (anchor, mut used) =
            store::anchor_and_recent_use(db, user_id, operation, since).await?;
        let cycle = cycle_at(anchor, now);
        // This cycle's counters, and the gauges' standing counts (which have no cycle); which
        // of the two an operation reads is the tier file's to say.
        used.retain(|recent| {
            let gauge = self.tiers.is_gauge(&recent.operation);
            match recent.cycle_start {
                Some(start) => !gauge && start == cycle.start,
                None => gauge,
            }
        });
        Ok((cycle, used))
    }

    pub async fn check(
        &self,
        identity: &Identity,
        user_id: &str,
        tier: &str,
        operation: &str,
        amount: i64,
    ) -> Result<Answer, UsageError> {
        let user_id = parse_user(user_id)?;
        authorize(identity, user_id)?;
        let amount = check_amount(amount)?;
        // A gauge is checked against its standing count.
        let limit = self.tiers.limit(tier, operation)?;
        let db = self.pool.get().await?;
        let (cycle, used) = self.cycle_and_use(&db, user_id, Some(operation)).await?;
        let used = used.first().map_or(0, |recent| recent.used);
        let fits = limit == crate::tiers::UNLIMITED || used + amount <= limit;
        Ok(Answer::new(fits, operation, used, limit, cycle))
    }

    /// Consumes `amount` if it fits. With a key, the whole decision and its answer are stored in
    /// the same transaction, so a retry gets the first answer and nothing is counted twice. A
    /// gauge is not consumed: `operation_is_a_gauge`, naming `operation`.
    pub async fn consume(
        &self,
        identity: &Identity,
        user_id: &str,
        tier: &str,
        operation: &str,
        amount: i64,
        idempotency_key: &str,
    ) -> Result<Answer, UsageError> {
        let user_id = parse_user(user_id)?;
        authorize(identity, user_id)?;
        let amount = check_amount(amount)?;
        let limit = self.tiers.counter_limit(tier, operation)?;
        let key = check_key(idempotency_key)?;

        let mut db = self.pool.get().await?;
        let Some(key) = key else {
            // One statement consumes and writes the ledger: no transaction needed.
            return self
                .consume_in(&db, user_id, operation, amount, limit, None)
                .await;
        };
        let hash = request_hash(operation, amount);
        // The common case, a new key and a grant, in one statement; a denial (whose answer is
        // stored too) and a key seen before take the transaction below.
        let cycle = self.cycle(&db, user_id).await?;
        match store::consume_with_new_key(
            &db, user_id, operation, &cycle, amount, limit, key, &hash,
        )
        .await?
        {
            store::KeyedConsumption::Granted(used) => {
                return Ok(Answer::new(true, operation, used, limit, cycle));
            }
            store::KeyedConsumption::KeyTaken => {
                return Self::replay(&db, user_id, key, &hash).await;
            }
            store::KeyedConsumption::Denied => {}
        }
        let tx = db.transaction().await?;
        if !store::claim_key(&tx, user_id, key, operation, amount, &hash).await? {
            return Self::replay(&tx, user_id, key, &hash).await;
        }
        let answer = self
            .consume_in(&tx, user_id, operation, amount, limit, Some(key))
            .await?;
        store::store_answer(&tx, user_id, key, &StoredAnswer::of(&answer, amount)).await?;
        tx.commit().await?;
        Ok(answer)
    }

    /// The answer stored for a key claimed before, if the request is the one it was claimed
    /// with.
    async fn replay(
        db: &impl GenericClient,
        user_id: Uuid,
        key: &str,
        hash: &[u8],
    ) -> Result<Answer, UsageError> {
        let record = store::stored_answer(db, user_id, key)
            .await?
            .ok_or(UsageError::KeyReused)?;
        if record.request_hash != hash {
            return Err(UsageError::KeyReused);
        }
        Ok(record.into())
    }

    /// The consumption itself, inside whatever transaction `db` is: the cycle, the conditional
    /// consume (with its ledger line), and the total after it.
    async fn consume_in(
        &self,
        db: &impl GenericClient,
        user_id: Uuid,
        operation: &str,
        amount: i64,
        limit: i64,
        key: Option<&str>,
    ) -> Result<Answer, UsageError> {
        let cycle = self.cycle(db, user_id).await?;
        let consumed =
            store::consume(db, user_id, operation, cycle.start, amount, limit, key).await?;
        let used = match consumed {
            Some(total) => total,
            None => store::used(db, user_id, operation, cycle.start).await?,
        };
        Ok(Answer::new(
            consumed.is_some(),
            operation,
            used,
            limit,
            cycle,
        ))
    }

    /// Gives back what the consumption with this key took, once: the key's row is marked in the
    /// same transaction that lowers the counter and writes the ledger.
    pub async fn refund(
        &self,
        identity: &Identity,
        user_id: &str,
        idempotency_key: &str,
    ) -> Result<Refund, UsageError> {
        let user_id = parse_user(user_id)?;
        authorize(identity, user_id)?;
        let key =
            check_key(idempotency_key)?.ok_or_else(|| UsageError::missing("idempotency_key"))?;
        let mut db = self.pool.get().await?;
        let tx = db.transaction().await?;
        let Some((operation, amount, cycle_start)) =
            store::mark_refunded(&tx, user_id, key).await?
        else {
            return if store::key_exists(&tx, user_id, key).await? {
                Ok(Refund {
                    refunded: false,
                    operation: String::new(),
                    amount: 0,
                })
            } else {
                Err(UsageError::NotFound(
                    "consumption with this idempotency key",
                ))
            };
        };
        store::give_back(&tx, user_id, &operation, cycle_start, amount).await?;
        store::append_refund(&tx, user_id, &operation, cycle_start, amount, key).await?;
        tx.commit().await?;
        Ok(Refund {
            refunded: true,
            operation,
            amount,
        })
    }

    /// Takes one unit of a gauge under `idempotency_key` (what holds it) if the standing count
    /// stays within the tier's limit. One transaction: the key is claimed first (a concurrent
    /// acquire of the same key waits for it, then replays its answer), then the unit is taken by
    /// one conditional upsert that also stores the answer and appends the ledger line. A denial
    /// is rolled back whole: it binds nothing, and the key is decided afresh next time (a gauge
    /// frees up as units are released).
    pub async fn acquire_gauge(
        &self,
        identity: &Identity,
        user_id: &str,
        tier: &str,
        operation: &str,
        idempotency_key: &str,
    ) -> Result<GaugeAnswer, UsageError> {
        let user_id = parse_user(user_id)?;
        authorize(identity, user_id)?;
        let limit = self.tiers.gauge_limit(tier, operation)?;
        let key =
            check_key(idempotency_key)?.ok_or_else(|| UsageError::missing("idempotency_key"))?;
        let mut db = self.pool.get().await?;
        let cycle = self.cycle(&db, user_id).await?;
        let tx = db.transaction().await?;
        if !store::claim_hold(&tx, user_id, key, operation).await? {
            let hold = store::hold(&tx, user_id, key).await?;
            return Self::replay_hold(&tx, user_id, operation, limit, hold).await;
        }
        let taken = store::take_unit(&tx, user_id, operation, limit, key, cycle.start).await?;
        let Some(used) = taken else {
            let used = store::gauge_used(&tx, user_id, operation).await?;
            tx.rollback().await?;
            return Ok(GaugeAnswer::new(false, operation, used, limit));
        };
        tx.commit().await?;
        Ok(GaugeAnswer::new(true, operation, used, limit))
    }

    /// The answer to an acquire whose key is known: the first grant again, or, once released,
    /// no grant and the standing count now.
    async fn replay_hold(
        db: &impl GenericClient,
        user_id: Uuid,
        operation: &str,
        limit: i64,
        hold: Option<store::Hold>,
    ) -> Result<GaugeAnswer, UsageError> {
        let answer = match hold {
            Some(hold) if hold.operation != operation => return Err(UsageError::KeyReused),
            Some(store::Hold {
                released: false,
                used: Some(used),
                limit: Some(held_limit),
                ..
            }) => GaugeAnswer::new(true, operation, used, held_limit),
            // Released (or released and swept since, which only a row released long ago is).
            _ => GaugeAnswer {
                released: true,
                ..GaugeAnswer::new(
                    false,
                    operation,
                    store::gauge_used(db, user_id, operation).await?,
                    limit,
                )
            },
        };
        Ok(GaugeAnswer {
            replayed: true,
            ..answer
        })
    }

    /// Gives back the unit held under `idempotency_key`, once; never below 0. A key never
    /// acquired is remembered as released, so that an acquire arriving after this release (a
    /// request whose answer was lost, say) takes nothing.
    pub async fn release_gauge(
        &self,
        identity: &Identity,
        user_id: &str,
        operation: &str,
        idempotency_key: &str,
    ) -> Result<GaugeRelease, UsageError> {
        let user_id = parse_user(user_id)?;
        authorize(identity, user_id)?;
        self.tiers.check_gauge(operation)?;
        let key =
            check_key(idempotency_key)?.ok_or_else(|| UsageError::missing("idempotency_key"))?;
        let mut db = self.pool.get().await?;
        let cycle = self.cycle(&db, user_id).await?;
        let tx = db.transaction().await?;
        let released = if store::release_unknown(&tx, user_id, key, operation).await? {
            false
        } else if store::give_unit_back(&tx, user_id, key, operation, cycle.start).await? {
            true
        } else {
            match store::hold(&tx, user_id, key).await? {
                Some(hold) if hold.operation != operation => return Err(UsageError::KeyReused),
                _ => false,
            }
        };
        let used = store::gauge_used(&tx, user_id, operation).await?;
        tx.commit().await?;
        Ok(GaugeRelease {
            released,
            operation: operation.to_owned(),
            used,
        })
    }

    pub async fn report(
        &self,
        identity: &Identity,
        user_id: &str,
        tier: &str,
    ) -> Result<Report, UsageError> {
        let user_id = parse_user(user_id)?;
        authorize(identity, user_id)?;
        let limits = &self.tiers.tier(tier)?.limits;
        let db = self.pool.get().await?;
        let (cycle, used) = self.cycle_and_use(&db, user_id, None).await?;
        let operations = self
            .tiers
            .operations
            .iter()
            .map(|operation| {
                let used = used
                    .iter()
                    .find(|recent| &recent.operation == operation)
                    .map_or(0, |recent| recent.used);
                let limit = limits[operation];
                (operation.clone(), used, limit, remaining(limit, used))
            })
            .collect();
        Ok(Report {
            tier: tier.to_owned(),
            cycle,
            operations,
        })
    }

    pub async fn set_cycle_anchor(
        &self,
        identity: &Identity,
        user_id: &str,
        anchor: &str,
    ) -> Result<(Option<DateTime<Utc>>, Cycle), UsageError> {
        let user_id = parse_user(user_id)?;
        let allowed = match &identity.principal {
            Principal::System => true,
            Principal::User(user) => user.is_admin(),
            Principal::Anonymous => false,
        };
        if !allowed {
            return Err(UsageError::Forbidden(
                "only administrators set billing cycles",
            ));
        }
        let anchor = match anchor.trim() {
            "" => None,
            text => Some(
                DateTime::parse_from_rfc3339(text)
                    .map_err(|_| {
                        UsageError::invalid("anchor", "anchor must be an RFC 3339 date-time")
                    })?
                    .with_timezone(&Utc),
            ),
        };
        let db = self.pool.get().await?;
        store::set_anchor(&db, user_id, anchor).await?;
        Ok((anchor, cycle_at(anchor, self.clock.now())))
    }

    /// Idempotency keys, and released holds of gauges, older than `ttl`.
    pub async fn delete_old_keys(&self, ttl: std::time::Duration) -> Result<u64, UsageError> {
        let db = self.pool.get().await?;
        Ok(store::delete_old_keys(&db, ttl).await? + store::delete_old_releases(&db, ttl).await?)
    }
}
