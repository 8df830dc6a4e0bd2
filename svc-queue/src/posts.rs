//! Scheduled posts: scheduling one (quota `scheduled_posts`, idempotent by key), the owner's
//! list, and the scheduler that turns due posts into `publish_post` jobs exactly once however
//! many replicas run it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::quota::Guarded;
use common::{ApiError, Identity};
use deadpool_postgres::Pool;
use serde_json::{Value, json};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::error::QueueError;
use crate::service::{QueueService, idempotency_key, optional_uuid, page, sha256, status_filter};
use crate::store::{self, PostRow};

pub const QUOTA_OPERATION: &str = "scheduled_posts";
/// Consumed by the worker when it publishes a post.
pub const PUBLISHED_QUOTA: &str = "published_posts";
pub const STATUSES: [&str; 5] = ["pending", "publishing", "published", "failed", "cancelled"];
pub const DEFAULT_PLATFORM: &str = "onlyfans";
pub const MAX_CAPTION_CHARS: usize = 10_000;
/// The furthest ahead a post may be scheduled.
pub const MAX_AHEAD_DAYS: i64 = 366;
/// A time this little in the past is taken as "now" (clocks differ); further back is a mistake.
pub const PAST_TOLERANCE_SECS: i64 = 300;
/// Due posts taken per scheduler transaction.
const SCHEDULER_BATCH: i64 = 100;
const MAX_CONFIG_BYTES: usize = 16 * 1024;

/// What a client asks to be published, and when.
#[derive(Debug, Clone, Default)]
pub struct PostRequest {
    pub creator_profile_id: String,
    pub platform: String,
    pub caption: String,
    /// RFC 3339.
    pub scheduled_for: String,
    pub file_id: String,
    pub media_id: String,
    /// A JSON object, or empty.
    pub platform_specific_config_json: String,
    pub idempotency_key: String,
}

/// A request's fields, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedPost {
    pub creator_profile_id: Uuid,
    pub platform: String,
    pub caption: String,
    pub scheduled_for: DateTime<Utc>,
    pub file_id: Option<Uuid>,
    pub media_id: Option<Uuid>,
    pub platform_specific_config: Value,
}

/// Checks a request's shape against `now`.
pub fn check(request: &PostRequest, now: DateTime<Utc>) -> Result<CheckedPost, QueueError> {
    let creator_profile_id = optional_uuid("creator_profile_id", &request.creator_profile_id)?
        .ok_or_else(|| QueueError::missing("creator_profile_id"))?;
    let platform = match request.platform.trim() {
        "" => DEFAULT_PLATFORM.to_owned(),
        platform
            if platform.len() <= 32
                && platform
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') =>
        {
            platform.to_owned()
        }
        _ => {
            return Err(QueueError::invalid(
                "platform",
                "must be a platform's name: lower case letters, digits and _, at most 32",
            ));
        }
    };
    if request.caption.contains('\0') {
        return Err(QueueError::invalid(
            "caption",
            "must not contain the NUL character (\\u0000)",
        ));
    }
    if request.caption.chars().count() > MAX_CAPTION_CHARS {
        return Err(QueueError::invalid(
            "caption",
            format!("must be at most {MAX_CAPTION_CHARS} characters"),
        ));
    }
    let scheduled_for = match request.scheduled_for.trim() {
        "" => return Err(QueueError::missing("scheduled_for")),
        at => DateTime::parse_from_rfc3339(at)
            .map_err(|_| {
                QueueError::invalid(
                    "scheduled_for",
                    "must be an RFC 3339 time with its offset, like 2026-12-24T18:00:00Z",
                )
            })?
            .with_timezone(&Utc),
    };
    if scheduled_for < now - chrono::TimeDelta::seconds(PAST_TOLERANCE_SECS) {
        return Err(QueueError::invalid("scheduled_for", "is in the past"));
    }
    if scheduled_for > now + chrono::TimeDelta::days(MAX_AHEAD_DAYS) {
        return Err(QueueError::invalid(
            "scheduled_for",
            format!("must be at most {MAX_AHEAD_DAYS} days ahead"),
        ));
    }
    let file_id = optional_uuid("file_id", &request.file_id)?;
    let media_id = optional_uuid("media_id", &request.media_id)?;
    if file_id.is_some() && media_id.is_some() {
        return Err(QueueError::invalid(
            "media_id",
            "give file_id or media_id, not both",
        ));
    }
    let platform_specific_config = match request.platform_specific_config_json.trim() {
        "" => json!({}),
        text if text.len() > MAX_CONFIG_BYTES => {
            return Err(QueueError::invalid(
                "platform_specific_config",
                format!("must be at most {MAX_CONFIG_BYTES} bytes of JSON"),
            ));
        }
        text => match serde_json::from_str::<Value>(text) {
            Ok(config @ Value::Object(_)) if !common::sql::holds_nul(&config) => config,
            _ => {
                return Err(QueueError::invalid(
                    "platform_specific_config",
                    "must be a JSON object without the NUL character (\\u0000)",
                ));
            }
        },
    };
    Ok(CheckedPost {
        creator_profile_id,
        platform,
        caption: request.caption.clone(),
        scheduled_for,
        file_id,
        media_id,
        platform_specific_config,
    })
}

impl CheckedPost {
    /// What makes two requests the same request (for a replayed idempotency key).
    fn digest(&self) -> Vec<u8> {
        let described = json!({
            "creator_profile_id": self.creator_profile_id,
            "platform": self.platform,
            "caption": self.caption,
            "scheduled_for": self.scheduled_for.timestamp_micros(),
            "file_id": self.file_id,
            "media_id": self.media_id,
            "platform_specific_config": self.platform_specific_config,
        });
        sha256(described.to_string().as_bytes())
    }
}

impl QueueService {
    /// Schedules a post: checked, one `scheduled_posts` consumed, stored. A retry with the same
    /// key is answered the first post (`true`: replayed) and consumes nothing.
    pub async fn schedule_post(
        &self,
        identity: &Identity,
        request: &PostRequest,
    ) -> Result<(PostRow, bool), QueueError> {
        let user = identity.require_user()?;
        let checked = check(request, Utc::now())?;
        if !self.publishing {
            return Err(QueueError::PublishingUnavailable);
        }
        let key = idempotency_key(&request.idempotency_key)?;
        let digest = checked.digest();
        let db = self.pool.get().await?;
        if let Some(post) = store::post_by_key(&db, user.id, &key).await? {
            return same_request(post, &digest).map(|post| (post, true));
        }
        if let Some(file_id) = checked.file_id {
            store::file(&db, user.id, file_id)
                .await?
                .ok_or(QueueError::FileNotFound {
                    field: Some("file_id"),
                })?;
        }
        if let Some(media_id) = checked.media_id
            && !store::owns_media(&db, user.id, media_id).await?
        {
            return Err(QueueError::MediaNotFound);
        }
        drop(db);
        let id = Uuid::new_v4();
        let now = Utc::now();
        let row = PostRow {
            id,
            owner_id: user.id,
            owner_tier: user.tier.clone(),
            creator_profile_id: checked.creator_profile_id,
            platform: checked.platform,
            file_id: checked.file_id,
            media_id: checked.media_id,
            scheduled_for: checked.scheduled_for,
            status: "pending".to_owned(),
            caption: checked.caption,
            platform_specific_config: checked.platform_specific_config,
            published_at: None,
            error_message: None,
            job_id: None,
            idempotency_key: key.clone(),
            request_digest: digest.clone(),
            created_at: now,
            updated_at: now,
        };
        let store = || async { self.store_post_once(&row).await.map_err(ApiError::from) };
        let post = match self
            .quota
            .guarded(identity, QUOTA_OPERATION, 1, Some(&key), store)
            .await?
        {
            Guarded::Done(post) => post,
            Guarded::Replayed(_) => self.store_post_once(&row).await?,
        };
        let post = same_request(post, &digest)?;
        let replayed = post.id != id;
        Ok((post, replayed))
    }

    /// Stores the post under its key once; an error whose insert may have committed looks the
    /// key up again, so that a stored post is not refunded.
    async fn store_post_once(&self, post: &PostRow) -> Result<PostRow, QueueError> {
        common::db::written_or_found(
            async { store::insert_post_once(&self.pool.get().await?, post).await },
            async {
                let db = self.pool.get().await?;
                store::post_by_key(&db, post.owner_id, &post.idempotency_key).await
            },
        )
        .await
    }

    /// A page of the caller's posts, latest scheduled first, optionally of one status.
    pub async fn posts(
        &self,
        identity: &Identity,
        status: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<PostRow>, i64), QueueError> {
        let user = identity.require_user()?;
        let status = status_filter(status, &STATUSES)?;
        let (limit, offset) = page(limit, offset)?;
        store::posts(&self.pool.get().await?, user.id, status, limit, offset).await
    }
}

impl QueueService {
    /// Cancels a post of the caller's that is not published yet and gives back its
    /// `scheduled_posts`. A pending post is cancelled in place; one the scheduler has taken has
    /// its `publish_post` job cancelled, which cancels the post (and gives back its
    /// `published_posts` if its attempt had taken them). A cancelled post is answered again, and
    /// a refund that failed before is tried again.
    pub async fn cancel_post(&self, identity: &Identity, id: &str) -> Result<PostRow, QueueError> {
        let user = identity.require_user()?;
        let id = Uuid::parse_str(id.trim()).map_err(|_| QueueError::PostNotFound)?;
        let db = self.pool.get().await?;
        let mut post = store::post(&db, user.id, id)
            .await?
            .ok_or(QueueError::PostNotFound)?;
        if post.status == "pending" {
            match store::cancel_pending_post(&db, user.id, id).await? {
                Some(cancelled) => post = cancelled,
                // The scheduler took it meanwhile: it is publishing now.
                None => {
                    post = store::post(&db, user.id, id)
                        .await?
                        .ok_or(QueueError::PostNotFound)?;
                }
            }
        }
        drop(db);
        match (post.status.as_str(), post.job_id) {
            ("cancelled", _) => {}
            ("publishing", Some(job_id)) => {
                self.cancel(identity, &job_id.to_string())
                    .await
                    .map_err(|err| match err {
                        QueueError::NotCancellable(_) => {
                            QueueError::PostFinished("published or failed".to_owned())
                        }
                        err => err,
                    })?;
            }
            (status, _) => return Err(QueueError::PostFinished(status.to_owned())),
        }
        if let Err(err) = self.quota.refund(identity, &post.idempotency_key).await {
            tracing::warn!(reason = %err.reason, post = %post.id, "refund of a cancelled post failed");
            return Err(QueueError::RefundFailed);
        }
        store::post(&self.pool.get().await?, user.id, id)
            .await?
            .ok_or(QueueError::PostNotFound)
    }
}

fn same_request(post: PostRow, digest: &[u8]) -> Result<PostRow, QueueError> {
    if post.request_digest == digest {
        Ok(post)
    } else {
        Err(QueueError::KeyReused)
    }
}

/// Turns every due post into its `publish_post` job, a batch per transaction; how many.
pub async fn enqueue_due(pool: &Pool, max_attempts: i32) -> Result<u64, QueueError> {
    let mut taken = 0;
    loop {
        let batch =
            store::enqueue_due_posts(&pool.get().await?, SCHEDULER_BATCH, max_attempts).await?;
        taken += batch;
        if batch < SCHEDULER_BATCH.unsigned_abs() {
            return Ok(taken);
        }
    }
}

/// Runs until dropped: every `interval`, the due posts become jobs, and the relay is woken to
/// publish them.
pub async fn run_scheduler(pool: Pool, interval: Duration, max_attempts: i32, relay: Arc<Notify>) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match enqueue_due(&pool, max_attempts).await {
            Ok(0) => {}
            Ok(taken) => {
                tracing::info!(posts = taken, "due posts queued for publishing");
                relay.notify_one();
            }
            Err(err) => tracing::warn!(error = %err, "the scheduler could not queue due posts"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> PostRequest {
        PostRequest {
            creator_profile_id: Uuid::new_v4().to_string(),
            scheduled_for: "2026-12-24T18:00:00+01:00".to_owned(),
            ..PostRequest::default()
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-12-07T12:00:00Z".parse().unwrap()
    }

    fn field_of(err: QueueError) -> Option<String> {
        ApiError::from(err).field
    }

    #[test]
    fn a_post_needs_a_profile_and_a_time_and_defaults_the_rest() {
        let post = check(&request(), now()).unwrap();
        assert_eq!(post.platform, DEFAULT_PLATFORM);
        assert_eq!(post.scheduled_for.to_rfc3339(), "2026-12-24T17:00:00+00:00");
        assert_eq!(post.platform_specific_config, json!({}));
        for (field, change) in [
            (
                "creator_profile_id",
                PostRequest {
                    creator_profile_id: String::new(),
                    ..request()
                },
            ),
            (
                "creator_profile_id",
                PostRequest {
                    creator_profile_id: "x".to_owned(),
                    ..request()
                },
            ),
            (
                "scheduled_for",
                PostRequest {
                    scheduled_for: String::new(),
                    ..request()
                },
            ),
            (
                "scheduled_for",
                PostRequest {
                    scheduled_for: "2026-12-24 18:00".to_owned(),
                    ..request()
                },
            ),
            (
                "scheduled_for",
                PostRequest {
                    scheduled_for: "2026-12-07T11:50:00Z".to_owned(),
                    ..request()
                },
            ),
            (
                "scheduled_for",
                PostRequest {
                    scheduled_for: "2028-12-07T11:50:00Z".to_owned(),
                    ..request()
                },
            ),
            (
                "platform",
                PostRequest {
                    platform: "Only Fans".to_owned(),
                    ..request()
                },
            ),
            (
                "caption",
                PostRequest {
                    caption: "x".repeat(MAX_CAPTION_CHARS + 1),
                    ..request()
                },
            ),
            (
                "platform_specific_config",
                PostRequest {
                    platform_specific_config_json: "[1]".to_owned(),
                    ..request()
                },
            ),
            (
                "media_id",
                PostRequest {
                    file_id: Uuid::new_v4().to_string(),
                    media_id: Uuid::new_v4().to_string(),
                    ..request()
                },
            ),
        ] {
            let err = check(&change, now()).unwrap_err();
            assert_eq!(field_of(err).as_deref(), Some(field), "{change:?}");
        }
        // A few minutes late is taken as now.
        let late = PostRequest {
            scheduled_for: "2026-12-07T11:58:00Z".to_owned(),
            ..request()
        };
        assert!(check(&late, now()).is_ok());
    }
}
