//! The queue's domain: enqueue with the quota and the idempotency key, and the owner's jobs.

use std::sync::Arc;

use common::quota::{Guarded, QuotaClient};
use common::{ApiError, Identity};
use deadpool_postgres::Pool;
use serde_json::{Value, json};
use tokio::sync::Notify;
use uuid::Uuid;

use std::time::{Duration, Instant};

use crate::broker;
use crate::error::QueueError;
use crate::files;
use crate::operations::{self, Capabilities, Input, MEDIA_QUEUE, Medium, Operation};
use crate::storage::{self, Storage};
use crate::store::{self, FanRow, FileRow, JobRow, NewJob};
use crate::taxonomy::{CacheStats, Classification, Taxonomy};

pub const QUOTA_OPERATION: &str = "ai_media_ops";
pub const STATUSES: [&str; 5] = ["queued", "active", "completed", "failed", "cancelled"];
pub const DEFAULT_PAGE: i64 = 50;
pub const MAX_PAGE: i64 = 500;
const MAX_KEY_LEN: usize = 255;

/// What a client asks to be done.
#[derive(Debug, Clone, Default)]
pub struct MediaRequest {
    pub operation: String,
    pub input_file_id: String,
    pub input_url: String,
    pub params_json: String,
    pub creator_profile_id: String,
    pub priority: i32,
    pub idempotency_key: String,
}

pub struct QueueService {
    pub(crate) pool: Pool,
    pub(crate) quota: QuotaClient,
    storage: Arc<dyn Storage>,
    max_file_bytes: usize,
    capabilities: Capabilities,
    allow_private_urls: bool,
    max_attempts: i32,
    relay_wake: Arc<Notify>,
    taxonomy: Arc<Taxonomy>,
    depths: broker::Depths,
    /// The last stats and when they were counted: a flood of stats requests counts once a
    /// second, not once a request.
    stats: tokio::sync::Mutex<Option<(Instant, Vec<QueueStats>)>>,
    /// Whether a connector to publish posts through is configured.
    pub(crate) publishing: bool,
}

/// How long counted stats are answered before they are counted again.
const STATS_FRESHNESS: Duration = Duration::from_secs(1);

/// One job queue's jobs by state, from the database, and what the broker holds of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStats {
    pub queue: &'static str,
    /// Queued and due: in the outbox or on the broker, waiting for a worker.
    pub waiting: i64,
    pub active: i64,
    pub completed: i64,
    pub failed: i64,
    /// Queued for a retry that is not due yet.
    pub delayed: i64,
    pub cancelled: i64,
    /// Messages ready on the broker and its consumers, as the relay last saw them; `None`
    /// when it has not seen the broker lately.
    pub broker: Option<broker::Depth>,
}

/// The client's idempotency key, or one made up when it sent none.
pub fn idempotency_key(given: &str) -> Result<String, QueueError> {
    match given.trim() {
        "" => Ok(format!("auto-{}", Uuid::new_v4())),
        key if key.len() > MAX_KEY_LEN => Err(QueueError::invalid(
            "idempotency_key",
            format!("must be at most {MAX_KEY_LEN} bytes"),
        )),
        // The scheduler keys each post's job `publish-<post id>` among the owner's jobs.
        key if key.starts_with(store::PUBLISH_KEY_PREFIX) => Err(QueueError::invalid(
            "idempotency_key",
            format!(
                "keys starting with {} are reserved",
                store::PUBLISH_KEY_PREFIX
            ),
        )),
        key => Ok(key.to_owned()),
    }
}

/// A list's status filter: empty is every status, anything else one of `statuses`.
pub fn status_filter<'a>(
    status: &'a str,
    statuses: &[&str],
) -> Result<Option<&'a str>, QueueError> {
    match status.trim() {
        "" => Ok(None),
        status if statuses.contains(&status) => Ok(Some(status)),
        _ => Err(QueueError::invalid(
            "status",
            format!("must be one of {}", statuses.join(", ")),
        )),
    }
}

/// A page size and offset checked: 0 is the default page.
pub fn page(limit: i64, offset: i64) -> Result<(i64, i64), QueueError> {
    let limit = match limit {
        0 => DEFAULT_PAGE,
        1..=MAX_PAGE => limit,
        _ => {
            return Err(QueueError::invalid(
                "limit",
                format!("must be 1 to {MAX_PAGE}"),
            ));
        }
    };
    if offset < 0 {
        return Err(QueueError::invalid("offset", "must be at least 0"));
    }
    Ok((limit, offset))
}

/// An optional UUID field: empty is none, anything else must parse.
pub fn optional_uuid(field: &'static str, value: &str) -> Result<Option<Uuid>, QueueError> {
    match value.trim() {
        "" => Ok(None),
        id => Uuid::parse_str(id)
            .map(Some)
            .map_err(|_| QueueError::invalid(field, "must be a UUID")),
    }
}

/// A checked request: everything the job row holds.
struct Checked {
    operation: &'static Operation,
    input: Input,
    creator_profile_id: Uuid,
    priority: i16,
    payload: Value,
    digest: Vec<u8>,
}

impl QueueService {
    pub fn new(
        pool: Pool,
        quota: QuotaClient,
        storage: Arc<dyn Storage>,
        config: &crate::Config,
        relay_wake: Arc<Notify>,
        taxonomy: Arc<Taxonomy>,
        depths: broker::Depths,
    ) -> Self {
        Self {
            taxonomy,
            depths,
            stats: tokio::sync::Mutex::new(None),
            publishing: config.publish_webhook.is_some(),
            pool,
            quota,
            storage,
            max_file_bytes: config.max_file_bytes,
            capabilities: config.capabilities,
            allow_private_urls: config.allow_private_urls,
            max_attempts: config.max_attempts,
            relay_wake,
        }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    fn check(&self, request: &MediaRequest) -> Result<Checked, QueueError> {
        let operation = operations::operation(request.operation.trim(), self.capabilities)?;
        let params = operations::params(operation, &request.params_json)?;
        let input = operations::input(
            &request.input_file_id,
            &request.input_url,
            self.allow_private_urls,
        )?;
        let creator_profile_id = match request.creator_profile_id.trim() {
            "" => return Err(QueueError::missing("creator_profile_id")),
            id => Uuid::parse_str(id)
                .map_err(|_| QueueError::invalid("creator_profile_id", "must be a UUID"))?,
        };
        let priority = operations::priority(request.priority)?;
        let payload = match &input {
            Input::File(id) => json!({"input_file_id": id, "params": params}),
            Input::Url(url) => json!({"input_url": url.as_str(), "params": params}),
        };
        // serde_json's maps keep their keys sorted, so equal requests serialise alike.
        let described = json!({
            "operation": operation.name,
            "payload": payload,
            "creator_profile_id": creator_profile_id,
            "priority": priority,
        });
        let digest = sha256(described.to_string().as_bytes());
        Ok(Checked {
            operation,
            input,
            creator_profile_id,
            priority,
            payload,
            digest,
        })
    }

    /// Checks the request, consumes one `ai_media_ops`, stores the job and its outbox row. A
    /// retry with the same key is answered the first job (`true`: replayed) and consumes
    /// nothing; the same key with another request is 409 `idempotency_key_reused`.
    pub async fn enqueue(
        &self,
        identity: &Identity,
        request: &MediaRequest,
    ) -> Result<(JobRow, bool), QueueError> {
        let user = identity.require_user()?;
        let checked = self.check(request)?;
        let key = idempotency_key(&request.idempotency_key)?;
        // A replay is answered from the stored job, before the quota is asked at all.
        if let Some(job) = store::job_by_key(&self.pool.get().await?, user.id, &key).await? {
            return same_request(job, &checked.digest).map(|job| (job, true));
        }
        if let Input::File(file_id) = checked.input {
            self.check_input_file(user.id, file_id, checked.operation, "input_file_id")
                .await?;
        }
        for file_id in joined_files(&checked.payload) {
            self.check_input_file(user.id, file_id, checked.operation, "params.files")
                .await?;
        }
        let id = Uuid::new_v4();
        let message = job_message(id, checked.operation.name);
        let new = NewJob {
            id,
            owner_id: user.id,
            creator_profile_id: checked.creator_profile_id,
            job_type: checked.operation.name,
            queue_name: MEDIA_QUEUE,
            priority: checked.priority,
            payload: &checked.payload,
            max_attempts: self.max_attempts,
            idempotency_key: &key,
            request_digest: &checked.digest,
            message: &message,
        };
        let store = || async { self.store_once(&new).await.map_err(ApiError::from) };
        let job = match self
            .quota
            .guarded(identity, QUOTA_OPERATION, 1, Some(&key), store)
            .await?
        {
            Guarded::Done(job) => job,
            // Consumed under this key before, by a request that stopped before its job was
            // stored (or is storing it now): the job is stored once, under the key.
            Guarded::Replayed(_) => self.store_once(&new).await?,
        };
        let job = same_request(job, &checked.digest)?;
        self.relay_wake.notify_one();
        // Replayed when the job under the key is another request's.
        let replayed = job.id != id;
        Ok((job, replayed))
    }

    /// Stores the job under its key once. An error after the insert committed (its answer
    /// lost, the read after it failed) must not refund a job that exists, so the key is looked
    /// up once more before the error is given.
    async fn store_once(&self, job: &NewJob<'_>) -> Result<JobRow, QueueError> {
        common::db::written_or_found(
            async { store::insert_job_once(&self.pool.get().await?, job).await },
            async {
                store::job_by_key(&self.pool.get().await?, job.owner_id, job.idempotency_key).await
            },
        )
        .await
    }

    /// An input file must be the caller's, and of the operation's medium.
    async fn check_input_file(
        &self,
        owner_id: Uuid,
        file_id: Uuid,
        operation: &Operation,
        field: &'static str,
    ) -> Result<(), QueueError> {
        let file = store::file(&self.pool.get().await?, owner_id, file_id)
            .await?
            .ok_or(QueueError::FileNotFound { field: Some(field) })?;
        let medium = match operation.medium {
            Medium::Image => "image/",
            Medium::Video => "video/",
        };
        if !file.content_type.starts_with(medium) {
            return Err(QueueError::invalid(
                field,
                format!(
                    "{} takes {medium}* input; this file is {}",
                    operation.name, file.content_type
                ),
            ));
        }
        Ok(())
    }

    /// A failed job of the caller's goes again, from its first attempt, as the same job: the
    /// quota was consumed when it was enqueued.
    pub async fn retry(&self, identity: &Identity, id: &str) -> Result<JobRow, QueueError> {
        let user = identity.require_user()?;
        let id = Uuid::parse_str(id.trim()).map_err(|_| QueueError::NotFound)?;
        let db = self.pool.get().await?;
        let job = store::job(&db, user.id, id)
            .await?
            .ok_or(QueueError::NotFound)?;
        let message = job_message(job.id, &job.job_type);
        match store::retry_failed(&db, user.id, id, &message).await? {
            Some(job) => {
                self.relay_wake.notify_one();
                Ok(job)
            }
            None => Err(QueueError::NotRetryable(job.status)),
        }
    }

    /// Cancels a queued or active job of the caller's: a queued one never starts, a running one
    /// is stopped by the worker holding it (which sees its lease gone), and its quota is given
    /// back (`ai_media_ops`; for a publication, its `published_posts` if it got that far, and
    /// the `scheduled_posts` of its post, which is cancelled with it). Cancelling a cancelled job again answers it again and retries a refund
    /// that failed (svc-usage gives back a key's consumption once).
    pub async fn cancel(&self, identity: &Identity, id: &str) -> Result<JobRow, QueueError> {
        let user = identity.require_user()?;
        let id = Uuid::parse_str(id.trim()).map_err(|_| QueueError::NotFound)?;
        let db = self.pool.get().await?;
        let job = match store::cancel(&db, user.id, id).await? {
            Some(job) => job,
            None => {
                let job = store::job(&db, user.id, id)
                    .await?
                    .ok_or(QueueError::NotFound)?;
                if job.status != "cancelled" {
                    return Err(QueueError::NotCancellable(job.status));
                }
                job
            }
        };
        // A cancelled publication cancelled its post, whose `scheduled_posts` goes back too.
        let post_key = match job.post_id() {
            Some(post_id) => store::post(&db, user.id, post_id)
                .await?
                .map(|post| post.idempotency_key),
            None => None,
        };
        drop(db);
        for key in std::iter::once(job.quota_key()).chain(post_key) {
            if let Err(err) = self.quota.refund(identity, &key).await {
                tracing::warn!(reason = %err.reason, job = %job.id, "refund of a cancelled job failed");
                return Err(QueueError::RefundFailed);
            }
        }
        Ok(job)
    }

    /// Stores an input file of the caller's: its type read from its bytes, its bytes durable
    /// before its row is written.
    pub async fn upload(
        &self,
        identity: &Identity,
        filename: &str,
        content: Vec<u8>,
    ) -> Result<FileRow, QueueError> {
        let user = identity.require_user()?;
        if content.is_empty() {
            return Err(QueueError::invalid("file", "the file is empty"));
        }
        if content.len() > self.max_file_bytes {
            return Err(QueueError::FileTooLarge(self.max_file_bytes));
        }
        let content_type = files::sniff(&content).ok_or_else(|| {
            QueueError::UnsupportedMedia(
                "the file is not a PNG, JPEG, WebP, GIF, BMP or TIFF image, nor an MP4, \
                 QuickTime or WebM video"
                    .to_owned(),
            )
        })?;
        let (width, height) = match files::dimensions(&content) {
            Some((width, height)) => (i32::try_from(width).ok(), i32::try_from(height).ok()),
            None => (None, None),
        };
        let id = Uuid::new_v4();
        let row = FileRow {
            id,
            owner_id: user.id,
            content_type: content_type.to_owned(),
            bytes: i64::try_from(content.len()).unwrap_or(i64::MAX),
            sha256: sha256(&content),
            storage_key: storage::key(user.id, id),
            filename: files::display_name(filename),
            width,
            height,
            job_id: None,
            created_at: chrono::Utc::now(),
        };
        store_file(&self.pool, self.storage.as_ref(), &row, content).await
    }

    /// The caller's file and its bytes.
    pub async fn file(
        &self,
        identity: &Identity,
        id: &str,
    ) -> Result<(FileRow, Vec<u8>), QueueError> {
        let user = identity.require_user()?;
        let not_found = QueueError::FileNotFound { field: None };
        let Ok(id) = Uuid::parse_str(id.trim()) else {
            return Err(not_found);
        };
        let file = store::file(&self.pool.get().await?, user.id, id)
            .await?
            .ok_or(not_found)?;
        let bytes = self.storage.get(&file.storage_key).await?;
        Ok((file, bytes))
    }

    pub async fn job(&self, identity: &Identity, id: &str) -> Result<JobRow, QueueError> {
        let user = identity.require_user()?;
        let id = Uuid::parse_str(id.trim()).map_err(|_| QueueError::NotFound)?;
        store::job(&self.pool.get().await?, user.id, id)
            .await?
            .ok_or(QueueError::NotFound)
    }

    pub async fn jobs(
        &self,
        identity: &Identity,
        status: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<JobRow>, i64), QueueError> {
        let user = identity.require_user()?;
        let status = status_filter(status, &STATUSES)?;
        let (limit, offset) = page(limit, offset)?;
        store::jobs(&self.pool.get().await?, user.id, status, limit, offset).await
    }

    /// Every job queue's jobs by state and broker depth, and the taxonomy cache's figures.
    pub async fn stats(
        &self,
        identity: &Identity,
    ) -> Result<(Vec<QueueStats>, CacheStats), QueueError> {
        identity.require_user()?;
        let mut last = self.stats.lock().await;
        let counted = match last.as_ref() {
            Some((at, counted)) if at.elapsed() < STATS_FRESHNESS => counted.clone(),
            _ => {
                let counts = store::job_counts(&self.pool.get().await?).await?;
                let counted = count_by_queue(&counts);
                *last = Some((Instant::now(), counted.clone()));
                counted
            }
        };
        drop(last);
        let with_broker = counted
            .into_iter()
            .map(|stats| QueueStats {
                broker: self.depths.get(stats.queue),
                ..stats
            })
            .collect();
        Ok((with_broker, self.taxonomy.stats().await))
    }

    /// Classifies tags along the six concepts, through the taxonomy cache.
    pub async fn classify(
        &self,
        identity: &Identity,
        tags: &[String],
    ) -> Result<Classification, QueueError> {
        identity.require_user()?;
        if tags.is_empty() {
            return Err(QueueError::missing("tags"));
        }
        self.taxonomy.classify(tags).await
    }

    /// Busts the taxonomy cache of every replica (administrators); the figures after it.
    pub async fn invalidate_taxonomy(&self, identity: &Identity) -> Result<CacheStats, QueueError> {
        identity.require_admin()?;
        self.taxonomy.invalidate().await?;
        Ok(self.taxonomy.stats().await)
    }

    /// A page of the caller's fans, optionally of one creator profile, most engaged first.
    pub async fn fans(
        &self,
        identity: &Identity,
        creator_profile_id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<FanRow>, i64), QueueError> {
        let user = identity.require_user()?;
        let creator_profile_id = optional_uuid("creator_profile_id", creator_profile_id)?;
        let (limit, offset) = page(limit, offset)?;
        store::fans(
            &self.pool.get().await?,
            user.id,
            creator_profile_id,
            limit,
            offset,
        )
        .await
    }
}

/// The counts of every job queue (zero where it has no jobs), from the rows of
/// [`store::job_counts`].
pub fn count_by_queue(counts: &[(String, String, bool, i64)]) -> Vec<QueueStats> {
    operations::QUEUES
        .iter()
        .map(|&queue| {
            let mut stats = QueueStats {
                queue,
                waiting: 0,
                active: 0,
                completed: 0,
                failed: 0,
                delayed: 0,
                cancelled: 0,
                broker: None,
            };
            for (_, status, delayed, count) in counts.iter().filter(|row| row.0 == queue) {
                let slot = match (status.as_str(), delayed) {
                    ("queued", true) => &mut stats.delayed,
                    ("queued", false) => &mut stats.waiting,
                    ("active", _) => &mut stats.active,
                    ("completed", _) => &mut stats.completed,
                    ("failed", _) => &mut stats.failed,
                    _ => &mut stats.cancelled,
                };
                *slot += count;
            }
            stats
        })
        .collect()
}

/// The files `join_videos` appends after its input, from a job's payload.
pub fn joined_files(payload: &Value) -> Vec<Uuid> {
    payload["params"]["files"]
        .as_array()
        .map(|ids| {
            ids.iter()
                .filter_map(|id| id.as_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The message that asks a worker for an attempt of the job.
pub fn job_message(id: Uuid, operation: &str) -> Value {
    json!({"job_id": id, "job_type": operation})
}

pub fn sha256(bytes: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .to_vec()
}

/// Puts the bytes in the storage, then the row in the database; bytes whose row is not there
/// after a failure are deleted again.
pub async fn store_file(
    pool: &Pool,
    storage: &dyn Storage,
    row: &FileRow,
    content: Vec<u8>,
) -> Result<FileRow, QueueError> {
    storage.put(&row.storage_key, content).await?;
    let inserted = async { store::insert_file(&pool.get().await?, row).await }.await;
    let Err(err) = inserted else {
        return inserted;
    };
    // The insert may have committed with its answer lost: bytes a row names stay.
    if let Ok(Some(file)) =
        async { store::file(&pool.get().await?, row.owner_id, row.id).await }.await
    {
        return Ok(file);
    }
    if let Err(err) = storage.delete(&row.storage_key).await {
        tracing::warn!(%err, "a stored file whose row failed could not be deleted");
    }
    Err(err)
}

fn same_request(job: JobRow, digest: &[u8]) -> Result<JobRow, QueueError> {
    if job.request_digest == digest {
        Ok(job)
    } else {
        Err(QueueError::KeyReused)
    }
}
