//! Every SQL statement of svc-queue.

use chrono::{DateTime, Utc};
use common::sql;
use deadpool_postgres::GenericClient;
use serde_json::Value;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::error::QueueError;

/// The row a statement returns, if any, as `T`.
async fn optional<T: for<'row> From<&'row Row>>(
    db: &impl GenericClient,
    sql: &str,
    params: sql::Params<'_>,
) -> Result<Option<T>, QueueError> {
    Ok(sql::query_opt(db, sql, params).await?.as_ref().map(T::from))
}

/// Notified whenever a job starts or ends an attempt: a message left its queue or a worker's slot
/// came free, so the relays (of every replica) may publish more.
pub const WAKE_CHANNEL: &str = "genie_queue_wake";

const JOB_COLUMNS: &str = "id, owner_id, creator_profile_id, job_type, queue_name, status, priority, \
     payload, result, error, attempts, max_attempts, progress, request_digest, created_at, \
     updated_at, started_at, completed_at, next_attempt_at, idempotency_key";

#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub creator_profile_id: Option<Uuid>,
    pub job_type: String,
    pub queue_name: String,
    pub status: String,
    pub priority: i16,
    pub payload: Value,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub attempts: i32,
    pub max_attempts: i32,
    pub progress: i16,
    pub request_digest: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The key its `ai_media_ops` was consumed under (the client's, or one made up).
    pub idempotency_key: String,
}

impl From<&Row> for JobRow {
    fn from(row: &Row) -> Self {
        Self {
            id: row.get(0),
            owner_id: row.get(1),
            creator_profile_id: row.get(2),
            job_type: row.get(3),
            queue_name: row.get(4),
            status: row.get(5),
            priority: row.get(6),
            payload: row.get(7),
            result: row.get(8),
            error: row.get(9),
            attempts: row.get(10),
            max_attempts: row.get(11),
            progress: row.get(12),
            request_digest: row.get(13),
            created_at: row.get(14),
            updated_at: row.get(15),
            started_at: row.get(16),
            completed_at: row.get(17),
            next_attempt_at: row.get(18),
            idempotency_key: row.get(19),
        }
    }
}

impl JobRow {
    /// The key the job's quota is consumed under. A `publish_post` job consumes when it runs
    /// and gives back when it fails for good, so each run after a retry (`run` in its payload)
    /// consumes under a key of its own; every other job consumed once, when it was enqueued.
    pub fn quota_key(&self) -> String {
        match self.payload.get("run").and_then(Value::as_i64) {
            Some(run) if self.job_type == PUBLISH_POST => {
                format!("{}:run-{run}", self.idempotency_key)
            }
            _ => self.idempotency_key.clone(),
        }
    }

    /// The post a `publish_post` job publishes.
    pub fn post_id(&self) -> Option<Uuid> {
        (self.job_type == PUBLISH_POST)
            .then(|| self.payload.get("post_id")?.as_str()?.parse().ok())
            .flatten()
    }
}

/// A job to store, with the message its outbox row will carry.
pub struct NewJob<'a> {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub creator_profile_id: Uuid,
    pub job_type: &'a str,
    pub queue_name: &'a str,
    pub priority: i16,
    pub payload: &'a Value,
    pub max_attempts: i32,
    pub idempotency_key: &'a str,
    pub request_digest: &'a [u8],
    pub message: &'a Value,
}

/// Stores the job and its outbox row in one statement (so in one transaction), unless the owner
/// has a job under this idempotency key already; either way, the job under the key.
pub async fn insert_job_once(
    db: &impl GenericClient,
    job: &NewJob<'_>,
) -> Result<JobRow, QueueError> {
    sql::execute(
        db,
        "WITH job AS (\
           INSERT INTO queue.media_jobs (id, owner_id, creator_profile_id, job_type, queue_name, \
             priority, payload, max_attempts, idempotency_key, request_digest) \
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
           ON CONFLICT (owner_id, idempotency_key) DO NOTHING \
           RETURNING id, queue_name, priority) \
         INSERT INTO queue.outbox (job_id, queue_name, priority, payload) \
         SELECT id, queue_name, priority, $11 FROM job",
        &[
            &job.id,
            &job.owner_id,
            &job.creator_profile_id,
            &job.job_type,
            &job.queue_name,
            &job.priority,
            job.payload,
            &job.max_attempts,
            &job.idempotency_key,
            &job.request_digest,
            job.message,
        ],
    )
    .await?;
    job_by_key(db, job.owner_id, job.idempotency_key)
        .await?
        .ok_or(QueueError::NotFound)
}

pub async fn job_by_key(
    db: &impl GenericClient,
    owner_id: Uuid,
    idempotency_key: &str,
) -> Result<Option<JobRow>, QueueError> {
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM queue.media_jobs WHERE owner_id = $1 AND idempotency_key = $2"
    );
    optional(db, &sql, &[&owner_id, &idempotency_key]).await
}

/// The owner's job; another owner's is `None`, as if it did not exist.
pub async fn job(
    db: &impl GenericClient,
    owner_id: Uuid,
    id: Uuid,
) -> Result<Option<JobRow>, QueueError> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM queue.media_jobs WHERE id = $1 AND owner_id = $2");
    optional(db, &sql, &[&id, &owner_id]).await
}

/// A page of the owner's jobs, newest first, and how many there are in all.
pub async fn jobs(
    db: &impl GenericClient,
    owner_id: Uuid,
    status: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<JobRow>, i64), QueueError> {
    let sql = format!(
        "SELECT {JOB_COLUMNS}, count(*) OVER () FROM queue.media_jobs \
         WHERE owner_id = $1 AND ($2::text IS NULL OR status = $2) \
         ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4"
    );
    let rows = sql::query(db, &sql, &[&owner_id, &status, &limit, &offset]).await?;
    let total = match rows.first() {
        Some(row) => row.get(20),
        // Past the last page the window has no row to count on.
        None => sql::query_one(
            db,
            "SELECT count(*) FROM queue.media_jobs \
             WHERE owner_id = $1 AND ($2::text IS NULL OR status = $2)",
            &[&owner_id, &status],
        )
        .await?
        .get(0),
    };
    Ok((rows.iter().map(JobRow::from).collect(), total))
}

/// An outbox row the relay publishes.
#[derive(Debug, Clone)]
pub struct Unsent {
    pub id: i64,
    pub job_id: Uuid,
    pub queue_name: String,
    pub priority: i16,
    pub payload: Value,
}

/// Locks up to `limit` due unsent rows of `queue`, skipping rows another relay holds: first
/// priority first, and within a priority the owners in turn. An owner's turn for a row is its
/// place among the owner's unsent rows plus the owner's jobs in flight (published and not
/// finished), so a creator with nothing running goes ahead of one whose burst fills the workers.
/// Which of `queues` have an unsent row due now: the relay looks no further into the others.
pub async fn queues_with_due_rows(
    db: &impl GenericClient,
    queues: &[&str],
) -> Result<Vec<String>, QueueError> {
    let rows = sql::query(
        db,
        "SELECT q FROM unnest($1::text[]) q WHERE EXISTS (SELECT 1 FROM queue.outbox \
           WHERE queue_name = q AND sent_at IS NULL AND publish_after <= now())",
        &[&queues],
    )
    .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

pub async fn lock_unsent(
    db: &impl GenericClient,
    queue: &str,
    limit: i64,
) -> Result<Vec<Unsent>, QueueError> {
    let rows = sql::query(
        db,
        "SELECT o.id, o.job_id, o.queue_name, o.priority, o.payload FROM queue.outbox o \
         JOIN (SELECT u.id, coalesce(flight.jobs, 0) \
                 + row_number() OVER (PARTITION BY j.owner_id, u.priority ORDER BY u.id) AS turn \
               FROM queue.outbox u JOIN queue.media_jobs j ON j.id = u.job_id \
               LEFT JOIN (SELECT m.owner_id, count(*) AS jobs FROM queue.media_jobs m \
                          WHERE m.status = 'active' OR (m.status = 'queued' AND NOT EXISTS (\
                            SELECT 1 FROM queue.outbox w WHERE w.job_id = m.id AND w.sent_at IS NULL)) \
                          GROUP BY m.owner_id) flight ON flight.owner_id = j.owner_id \
               WHERE u.sent_at IS NULL AND u.publish_after <= now() AND u.queue_name = $2) fair \
           ON fair.id = o.id \
         ORDER BY o.priority, fair.turn, o.id LIMIT $1 FOR UPDATE OF o SKIP LOCKED",
        &[&limit, &queue],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|row| Unsent {
            id: row.get(0),
            job_id: row.get(1),
            queue_name: row.get(2),
            priority: row.get(3),
            payload: row.get(4),
        })
        .collect())
}

/// Deletes up to `limit` outbox rows sent before `before`; how many.
pub async fn prune_sent(
    db: &impl GenericClient,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<u64, QueueError> {
    Ok(sql::execute(
        db,
        "DELETE FROM queue.outbox WHERE id IN (\
           SELECT id FROM queue.outbox WHERE sent_at < $1 ORDER BY sent_at LIMIT $2)",
        &[&before, &limit],
    )
    .await?)
}

pub async fn mark_sent(db: &impl GenericClient, ids: &[i64]) -> Result<(), QueueError> {
    sql::execute(
        db,
        "UPDATE queue.outbox SET sent_at = now() WHERE id = ANY($1)",
        &[&ids],
    )
    .await?;
    Ok(())
}

/// Takes the job for one attempt under `lease`: counts the attempt and marks it active. An
/// active job is taken over only by a redelivery (`take_over`: its worker died or could not
/// record its outcome); a first delivery of an active job is a duplicate of the message its
/// live attempt holds. `None` when the job is not there to run: finished, cancelled, gone, out
/// of attempts (a worker that died during the last one), running (a duplicate), or waiting for
/// a retry that is not due (a duplicate).
pub async fn start_attempt(
    db: &impl GenericClient,
    id: Uuid,
    lease: Uuid,
    take_over: bool,
) -> Result<Option<JobRow>, QueueError> {
    let sql = format!(
        "UPDATE queue.media_jobs SET status = 'active', attempts = attempts + 1, lease = $2, \
           started_at = coalesce(started_at, now()), next_attempt_at = NULL, updated_at = now() \
         WHERE id = $1 AND (status = 'queued' OR ($3 AND status = 'active')) \
           AND attempts < max_attempts \
           AND (next_attempt_at IS NULL OR next_attempt_at <= now()) \
         RETURNING {JOB_COLUMNS}, pg_notify('{WAKE_CHANNEL}', '')"
    );
    optional(db, &sql, &[&id, &lease, &take_over]).await
}

/// The job whatever its owner: for the worker, which acts for the owner.
pub async fn job_by_id(db: &impl GenericClient, id: Uuid) -> Result<Option<JobRow>, QueueError> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM queue.media_jobs WHERE id = $1");
    optional(db, &sql, &[&id]).await
}

/// Whether the attempt still holds the job (it was neither cancelled nor taken by another).
pub async fn holds(db: &impl GenericClient, id: Uuid, lease: Uuid) -> Result<bool, QueueError> {
    Ok(sql::query_one(
        db,
        "SELECT EXISTS (SELECT 1 FROM queue.media_jobs \
           WHERE id = $1 AND lease = $2 AND status = 'active')",
        &[&id, &lease],
    )
    .await?
    .get(0))
}

/// Cancels the owner's job if it is queued or active (a worker holding it sees its lease gone
/// and stops); its unsent outbox rows are deleted with it. `None` when the owner has no such
/// job in either state.
pub async fn cancel(
    db: &impl GenericClient,
    owner_id: Uuid,
    id: Uuid,
) -> Result<Option<JobRow>, QueueError> {
    let sql = format!(
        "WITH cancelled AS (\
           UPDATE queue.media_jobs SET status = 'cancelled', error = 'cancelled by its owner', \
             lease = NULL, next_attempt_at = NULL, completed_at = now(), updated_at = now() \
           WHERE id = $1 AND owner_id = $2 AND status IN ('queued', 'active') \
           RETURNING {JOB_COLUMNS}), \
         unsent AS (\
           DELETE FROM queue.outbox WHERE sent_at IS NULL \
             AND job_id IN (SELECT id FROM cancelled)), \
         post AS (\
           UPDATE queue.scheduled_posts SET status = 'cancelled', \
             error_message = 'cancelled by its owner', updated_at = now() \
           WHERE job_id IN (SELECT id FROM cancelled)) \
         SELECT {JOB_COLUMNS}, pg_notify('{WAKE_CHANNEL}', '') FROM cancelled"
    );
    optional(db, &sql, &[&id, &owner_id]).await
}

/// Whether the attempt still holds the job.
pub async fn set_progress(
    db: &impl GenericClient,
    id: Uuid,
    lease: Uuid,
    progress: i16,
) -> Result<bool, QueueError> {
    Ok(sql::execute(
        db,
        "UPDATE queue.media_jobs SET progress = $3, updated_at = now() \
         WHERE id = $1 AND lease = $2 AND status = 'active'",
        &[&id, &lease, &progress],
    )
    .await?
        == 1)
}

/// Finishes the attempt's job with its result; false (nothing written) when the attempt no
/// longer holds it.
pub async fn complete(
    db: &impl GenericClient,
    id: Uuid,
    lease: Uuid,
    result: &Value,
) -> Result<bool, QueueError> {
    let sql = format!(
        "UPDATE queue.media_jobs SET status = 'completed', result = $3, error = NULL, \
           progress = 100, completed_at = now(), updated_at = now(), lease = NULL \
         WHERE id = $1 AND lease = $2 AND status = 'active' \
         RETURNING pg_notify('{WAKE_CHANNEL}', '')"
    );
    Ok(sql::execute(db, &sql, &[&id, &lease, result]).await? == 1)
}

/// The job is `failed` with its error; false when the attempt no longer holds it. Without a
/// lease, whichever attempt holds it (one whose worker died during the last attempt).
pub async fn fail(
    db: &impl GenericClient,
    id: Uuid,
    lease: Option<Uuid>,
    error: &str,
) -> Result<bool, QueueError> {
    let sql = format!(
        "WITH job AS (\
           UPDATE queue.media_jobs SET status = 'failed', error = $3, completed_at = now(), \
             updated_at = now(), lease = NULL \
           WHERE id = $1 AND ($2::uuid IS NULL OR lease = $2) AND status = 'active' \
           RETURNING id), \
         post AS (\
           UPDATE queue.scheduled_posts SET status = 'failed', error_message = $3, \
             updated_at = now() \
           WHERE job_id IN (SELECT id FROM job)) \
         SELECT pg_notify('{WAKE_CHANNEL}', '') FROM job"
    );
    Ok(sql::execute(db, &sql, &[&id, &lease, &error]).await? == 1)
}

/// Puts the job back to `queued` after a failed attempt, due at `due`, with the message of its
/// next attempt in the outbox: one statement, so both or neither. False when the attempt no
/// longer holds the job.
pub async fn schedule_retry(
    db: &impl GenericClient,
    id: Uuid,
    lease: Uuid,
    error: &str,
    due: DateTime<Utc>,
    message: &Value,
) -> Result<bool, QueueError> {
    let sql = format!(
        "WITH job AS (\
           UPDATE queue.media_jobs SET status = 'queued', error = $3, next_attempt_at = $4, \
             progress = 0, updated_at = now(), lease = NULL \
           WHERE id = $1 AND lease = $2 AND status = 'active' \
           RETURNING id, queue_name, priority) \
         INSERT INTO queue.outbox (job_id, queue_name, priority, payload, publish_after) \
         SELECT id, queue_name, priority, $5, $4 FROM job \
         RETURNING pg_notify('{WAKE_CHANNEL}', '')"
    );
    Ok(sql::execute(db, &sql, &[&id, &lease, &error, &due, message]).await? == 1)
}

/// A failed job of the owner's goes again: attempts from zero, its message in the outbox.
/// `None` when the owner has no such job or it has not failed.
pub async fn retry_failed(
    db: &impl GenericClient,
    owner_id: Uuid,
    id: Uuid,
    message: &Value,
) -> Result<Option<JobRow>, QueueError> {
    let sql = format!(
        "WITH job AS (\
           UPDATE queue.media_jobs SET status = 'queued', attempts = 0, error = NULL, \
             result = NULL, progress = 0, started_at = NULL, completed_at = NULL, \
             next_attempt_at = NULL, updated_at = now(), \
             payload = CASE WHEN job_type = '{PUBLISH_POST}' THEN jsonb_set(payload, '{{run}}', \
               to_jsonb(COALESCE((payload->>'run')::int, 0) + 1)) ELSE payload END \
           WHERE id = $1 AND owner_id = $2 AND status = 'failed' \
           RETURNING {JOB_COLUMNS}), \
         queued AS (\
           INSERT INTO queue.outbox (job_id, queue_name, priority, payload) \
           SELECT id, queue_name, priority, $3 FROM job), \
         post AS (\
           UPDATE queue.scheduled_posts SET status = 'publishing', error_message = NULL, \
             updated_at = now() \
           WHERE job_id IN (SELECT id FROM job)) \
         SELECT {JOB_COLUMNS} FROM job"
    );
    optional(db, &sql, &[&id, &owner_id, message]).await
}

const FILE_COLUMNS: &str = "id, owner_id, content_type, bytes, sha256, storage_key, filename, width, height, job_id, \
     created_at";

#[derive(Debug, Clone)]
pub struct FileRow {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub content_type: String,
    pub bytes: i64,
    pub sha256: Vec<u8>,
    pub storage_key: String,
    pub filename: Option<String>,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub job_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

impl From<&Row> for FileRow {
    fn from(row: &Row) -> Self {
        Self {
            id: row.get(0),
            owner_id: row.get(1),
            content_type: row.get(2),
            bytes: row.get(3),
            sha256: row.get(4),
            storage_key: row.get(5),
            filename: row.get(6),
            width: row.get(7),
            height: row.get(8),
            job_id: row.get(9),
            created_at: row.get(10),
        }
    }
}

/// Records a file whose bytes are stored; the row as written.
pub async fn insert_file(db: &impl GenericClient, file: &FileRow) -> Result<FileRow, QueueError> {
    let sql = format!(
        "INSERT INTO queue.files (id, owner_id, content_type, bytes, sha256, storage_key, \
           filename, width, height, job_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {FILE_COLUMNS}"
    );
    let row = sql::query_one(
        db,
        &sql,
        &[
            &file.id,
            &file.owner_id,
            &file.content_type,
            &file.bytes,
            &file.sha256,
            &file.storage_key,
            &file.filename,
            &file.width,
            &file.height,
            &file.job_id,
        ],
    )
    .await?;
    Ok(FileRow::from(&row))
}

/// The owner's file; another owner's is `None`, as if it did not exist.
pub async fn file(
    db: &impl GenericClient,
    owner_id: Uuid,
    id: Uuid,
) -> Result<Option<FileRow>, QueueError> {
    let sql = format!("SELECT {FILE_COLUMNS} FROM queue.files WHERE id = $1 AND owner_id = $2");
    optional(db, &sql, &[&id, &owner_id]).await
}

/// Notified when an administrator busts the taxonomy cache, so that every replica drops its own.
pub const TAXONOMY_CHANNEL: &str = "genie_taxonomy_invalidate";

/// Jobs per queue and status, the queued ones split into due (`false`) and waiting for a
/// delayed retry (`true`).
pub async fn job_counts(
    db: &impl GenericClient,
) -> Result<Vec<(String, String, bool, i64)>, QueueError> {
    let rows = sql::query(
        db,
        "SELECT queue_name, status, coalesce(next_attempt_at > now(), false), count(*) \
         FROM queue.media_jobs GROUP BY 1, 2, 3",
        &[],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect())
}

/// The concepts a tag (or one of its aliases) belongs to, with their weights.
pub async fn tag_concepts(
    db: &impl GenericClient,
    tag: &str,
) -> Result<Vec<(String, f32)>, QueueError> {
    let rows = sql::query(
        db,
        "SELECT d.concept_name, max(m.weight) FROM queue.taxonomy_mapping m \
         JOIN queue.taxonomy_dimensions d ON d.id = m.dimension_id \
         WHERE m.tag = $1 OR m.aliases ? $1 \
         GROUP BY d.concept_name, d.display_order ORDER BY d.display_order",
        &[&tag],
    )
    .await?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}

/// The six concepts, in display order.
pub async fn concepts(db: &impl GenericClient) -> Result<Vec<String>, QueueError> {
    let rows = sql::query(
        db,
        "SELECT concept_name FROM queue.taxonomy_dimensions ORDER BY display_order",
        &[],
    )
    .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

pub async fn notify_taxonomy_changed(db: &impl GenericClient) -> Result<(), QueueError> {
    sql::execute(db, &format!("NOTIFY {TAXONOMY_CHANNEL}"), &[]).await?;
    Ok(())
}

#[derive(Debug, Clone)]
pub struct FanRow {
    pub id: Uuid,
    pub creator_profile_id: Uuid,
    pub platform_fan_id: String,
    pub username: Option<String>,
    pub engagement_score: i32,
    /// Exact, as Postgres prints the numeric (`12.50`).
    pub total_spent: String,
    pub last_interaction: Option<DateTime<Utc>>,
    pub notes: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A page of the owner's fans (of one creator profile, or of all), most engaged first, and how
/// many pass the filter.
pub async fn fans(
    db: &impl GenericClient,
    owner_id: Uuid,
    creator_profile_id: Option<Uuid>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<FanRow>, i64), QueueError> {
    let filter = "owner_id = $1 AND ($2::uuid IS NULL OR creator_profile_id = $2)";
    let rows = sql::query(
        db,
        &format!(
            "SELECT id, creator_profile_id, platform_fan_id, username, engagement_score, \
               total_spent::text, last_interaction, notes, created_at, updated_at \
             FROM queue.fan_profiles WHERE {filter} \
             ORDER BY engagement_score DESC, id LIMIT $3 OFFSET $4"
        ),
        &[&owner_id, &creator_profile_id, &limit, &offset],
    )
    .await?;
    let total = sql::query_one(
        db,
        &format!("SELECT count(*) FROM queue.fan_profiles WHERE {filter}"),
        &[&owner_id, &creator_profile_id],
    )
    .await?
    .get(0);
    let fans = rows
        .iter()
        .map(|row| FanRow {
            id: row.get(0),
            creator_profile_id: row.get(1),
            platform_fan_id: row.get(2),
            username: row.get(3),
            engagement_score: row.get(4),
            total_spent: row.get(5),
            last_interaction: row.get(6),
            notes: row.get(7),
            created_at: row.get(8),
            updated_at: row.get(9),
        })
        .collect();
    Ok((fans, total))
}

/// Whether the owner has this content library item.
pub async fn owns_media(
    db: &impl GenericClient,
    owner_id: Uuid,
    id: Uuid,
) -> Result<bool, QueueError> {
    Ok(sql::query_one(
        db,
        "SELECT EXISTS (SELECT 1 FROM queue.scraped_media WHERE id = $1 AND owner_id = $2)",
        &[&id, &owner_id],
    )
    .await?
    .get(0))
}

const POST_COLUMNS: &str = "id, owner_id, owner_tier, creator_profile_id, platform, file_id, media_id, \
     scheduled_for, status, caption, platform_specific_config, published_at, error_message, job_id, \
     idempotency_key, request_digest, created_at, updated_at";

#[derive(Debug, Clone)]
pub struct PostRow {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub owner_tier: String,
    pub creator_profile_id: Uuid,
    pub platform: String,
    pub file_id: Option<Uuid>,
    pub media_id: Option<Uuid>,
    pub scheduled_for: DateTime<Utc>,
    pub status: String,
    pub caption: String,
    pub platform_specific_config: Value,
    pub published_at: Option<DateTime<Utc>>,
    pub error_message: Option<String>,
    pub job_id: Option<Uuid>,
    pub idempotency_key: String,
    pub request_digest: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&Row> for PostRow {
    fn from(row: &Row) -> Self {
        Self {
            id: row.get(0),
            owner_id: row.get(1),
            owner_tier: row.get(2),
            creator_profile_id: row.get(3),
            platform: row.get(4),
            file_id: row.get(5),
            media_id: row.get(6),
            scheduled_for: row.get(7),
            status: row.get(8),
            caption: row.get(9),
            platform_specific_config: row.get(10),
            published_at: row.get(11),
            error_message: row.get(12),
            job_id: row.get(13),
            idempotency_key: row.get(14),
            request_digest: row.get(15),
            created_at: row.get(16),
            updated_at: row.get(17),
        }
    }
}

/// Stores the post unless the owner has one under its idempotency key already; either way, the
/// post under the key.
pub async fn insert_post_once(
    db: &impl GenericClient,
    post: &PostRow,
) -> Result<PostRow, QueueError> {
    sql::execute(
        db,
        "INSERT INTO queue.scheduled_posts (id, owner_id, owner_tier, creator_profile_id, \
           platform, file_id, media_id, scheduled_for, caption, platform_specific_config, \
           idempotency_key, request_digest) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT (owner_id, idempotency_key) DO NOTHING",
        &[
            &post.id,
            &post.owner_id,
            &post.owner_tier,
            &post.creator_profile_id,
            &post.platform,
            &post.file_id,
            &post.media_id,
            &post.scheduled_for,
            &post.caption,
            &post.platform_specific_config,
            &post.idempotency_key,
            &post.request_digest,
        ],
    )
    .await?;
    post_by_key(db, post.owner_id, &post.idempotency_key)
        .await?
        .ok_or(QueueError::PostNotFound)
}

pub async fn post_by_key(
    db: &impl GenericClient,
    owner_id: Uuid,
    idempotency_key: &str,
) -> Result<Option<PostRow>, QueueError> {
    let sql = format!(
        "SELECT {POST_COLUMNS} FROM queue.scheduled_posts \
         WHERE owner_id = $1 AND idempotency_key = $2"
    );
    optional(db, &sql, &[&owner_id, &idempotency_key]).await
}

/// The owner's post.
pub async fn post(
    db: &impl GenericClient,
    owner_id: Uuid,
    id: Uuid,
) -> Result<Option<PostRow>, QueueError> {
    let sql =
        format!("SELECT {POST_COLUMNS} FROM queue.scheduled_posts WHERE id = $1 AND owner_id = $2");
    optional(db, &sql, &[&id, &owner_id]).await
}

/// Cancels the owner's post if it is still `pending` (the scheduler has not taken it); the post
/// then, or none.
pub async fn cancel_pending_post(
    db: &impl GenericClient,
    owner_id: Uuid,
    id: Uuid,
) -> Result<Option<PostRow>, QueueError> {
    let sql = format!(
        "UPDATE queue.scheduled_posts SET status = 'cancelled', \
           error_message = 'cancelled by its owner', updated_at = now() \
         WHERE id = $1 AND owner_id = $2 AND status = 'pending' RETURNING {POST_COLUMNS}"
    );
    optional(db, &sql, &[&id, &owner_id]).await
}

/// The post whatever its owner: for the worker publishing it.
pub async fn post_by_id(db: &impl GenericClient, id: Uuid) -> Result<Option<PostRow>, QueueError> {
    let sql = format!("SELECT {POST_COLUMNS} FROM queue.scheduled_posts WHERE id = $1");
    optional(db, &sql, &[&id]).await
}

/// A page of the owner's posts, latest scheduled first, and how many pass the filter.
pub async fn posts(
    db: &impl GenericClient,
    owner_id: Uuid,
    status: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<PostRow>, i64), QueueError> {
    let filter = "owner_id = $1 AND ($2::text IS NULL OR status = $2)";
    let sql = format!(
        "SELECT {POST_COLUMNS} FROM queue.scheduled_posts WHERE {filter} \
         ORDER BY scheduled_for DESC, id DESC LIMIT $3 OFFSET $4"
    );
    let rows = sql::query(db, &sql, &[&owner_id, &status, &limit, &offset]).await?;
    let total = sql::query_one(
        db,
        &format!("SELECT count(*) FROM queue.scheduled_posts WHERE {filter}"),
        &[&owner_id, &status],
    )
    .await?
    .get(0);
    Ok((rows.iter().map(PostRow::from).collect(), total))
}

/// The job type of a post's publication.
pub const PUBLISH_POST: &str = "publish_post";
/// Publishing on time goes before media work waiting in the same queue.
pub const PUBLISH_PRIORITY: i16 = 1;

/// Turns up to `limit` due posts into `publish_post` jobs, in one statement: the posts are taken
/// `FOR UPDATE SKIP LOCKED` (another scheduler running at the same time takes others), each
/// gets its job (keyed `publish-<post id>`, unique per owner) with its outbox row, and moves to
/// `publishing`. How many posts were taken.
/// The start of the key of a post's `publish_post` job (`publish-<post id>`), which clients'
/// keys may not take.
pub const PUBLISH_KEY_PREFIX: &str = "publish-";

pub async fn enqueue_due_posts(
    db: &impl GenericClient,
    limit: i64,
    max_attempts: i32,
) -> Result<u64, QueueError> {
    // The message is the one `service::job_message` writes for every job.
    let sql = format!(
        "WITH due AS (\
           SELECT id, owner_id, creator_profile_id, '{PUBLISH_KEY_PREFIX}' || id AS key \
           FROM queue.scheduled_posts WHERE status = 'pending' AND scheduled_for <= now() \
           ORDER BY scheduled_for, id LIMIT $1 FOR UPDATE SKIP LOCKED), \
         job AS (\
           INSERT INTO queue.media_jobs (id, owner_id, creator_profile_id, job_type, queue_name, \
             priority, payload, max_attempts, idempotency_key, request_digest) \
           SELECT gen_random_uuid(), owner_id, creator_profile_id, '{PUBLISH_POST}', $2, $3, \
             jsonb_build_object('post_id', id), $4, key, sha256(convert_to(key, 'UTF8')) \
           FROM due ON CONFLICT (owner_id, idempotency_key) DO NOTHING \
           RETURNING id, owner_id, idempotency_key, queue_name, priority), \
         queued AS (\
           INSERT INTO queue.outbox (job_id, queue_name, priority, payload) \
           SELECT id, queue_name, priority, \
             jsonb_build_object('job_id', id, 'job_type', '{PUBLISH_POST}') FROM job) \
         UPDATE queue.scheduled_posts p SET status = 'publishing', updated_at = now(), \
           job_id = coalesce(\
             (SELECT job.id FROM job WHERE job.owner_id = p.owner_id AND job.idempotency_key = due.key), \
             (SELECT m.id FROM queue.media_jobs m WHERE m.owner_id = p.owner_id AND m.idempotency_key = due.key)) \
         FROM due WHERE p.id = due.id"
    );
    Ok(sql::execute(
        db,
        &sql,
        &[
            &limit,
            &crate::operations::MEDIA_QUEUE,
            &PUBLISH_PRIORITY,
            &max_attempts,
        ],
    )
    .await?)
}

/// Finishes the attempt's publication: the job completed with its result and its post
/// `published`, together. False (nothing written) when the attempt no longer holds the job.
pub async fn complete_publication(
    db: &impl GenericClient,
    id: Uuid,
    lease: Uuid,
    result: &Value,
) -> Result<bool, QueueError> {
    let sql = format!(
        "WITH job AS (\
           UPDATE queue.media_jobs SET status = 'completed', result = $3, error = NULL, \
             progress = 100, completed_at = now(), updated_at = now(), lease = NULL \
           WHERE id = $1 AND lease = $2 AND status = 'active' RETURNING id), \
         post AS (\
           UPDATE queue.scheduled_posts SET status = 'published', published_at = now(), \
             error_message = NULL, updated_at = now() \
           WHERE job_id IN (SELECT id FROM job)) \
         SELECT pg_notify('{WAKE_CHANNEL}', '') FROM job"
    );
    Ok(sql::execute(db, &sql, &[&id, &lease, result]).await? == 1)
}
