//! The worker (`genie serve queue-worker`): consumes `media-jobs` with a bounded prefetch, runs
//! each job's operation, and settles a message only after what it decided is committed.
//!
//! - An attempt takes the job under a fresh lease (counting the attempt); every later write
//!   checks the lease, so a job delivered twice is finished once, and a delivery of a job already
//!   finished is acked without doing anything.
//! - Done: the output's bytes are stored, then its file row and the job's result are committed
//!   together, then the message is acked.
//! - Failed, with attempts left and a cause that may pass (a fetch, the storage, the time
//!   limit): the job goes back to `queued` with the message of its next attempt in the outbox,
//!   due after an exponential backoff, in one statement; then the message is acked. The relay
//!   publishes it when it is due, so the delay survives any restart.
//! - Failed for good (the last attempt, or input that will never work): the job is `failed`
//!   with its error, then the message is rejected into the dead-letter queue.
//! - The database unreachable: nothing could be recorded, so the message goes back to the
//!   queue after a pause, and the broker's delivery limit bounds how often.
//! - The worker dies: the broker delivers its unacked messages again.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use futures_util::StreamExt as _;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
    BasicRejectOptions,
};
use lapin::types::FieldTable;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinSet;
use uuid::Uuid;

use common::Identity;
use common::identity::UserIdentity;
use common::quota::QuotaClient;

use crate::broker::{self, BROKER_TIMEOUT, MAX_BACKOFF, MIN_BACKOFF, Topology};
use crate::connector::{Connector, ConnectorError, Media, Publication};
use crate::error::QueueError;
use crate::fetch::{FetchError, Fetcher};
use crate::operations::{MEDIA_QUEUE, Medium, medium_of};
use crate::service::{job_message, joined_files, sha256};
use crate::storage::{self, Storage, StorageError};
use crate::store::{self, FileRow, JobRow};
use crate::{media, video};

/// The health service name that is SERVING while the worker consumes (readiness); the whole
/// server (`""`) is SERVING while the process runs (liveness), since a broker outage is waited
/// out, not cured by a restart.
pub const CONSUMING: &str = "genie.queue.v1.Worker";

/// Before a message whose outcome could not be recorded goes back to the queue.
const REQUEUE_PAUSE: Duration = Duration::from_secs(1);
/// The longest wait between two attempts of a job.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(3600);

pub struct Worker {
    pub pool: Pool,
    pub storage: Arc<dyn Storage>,
    pub fetcher: Fetcher,
    pub amqp_url: String,
    pub topology: Topology,
    pub concurrency: u16,
    pub limits: media::Limits,
    pub video_limits: video::VideoLimits,
    pub scratch_dir: std::path::PathBuf,
    pub operation_timeout: Duration,
    pub retry_base: Duration,
    pub max_file_bytes: usize,
    pub cancel_poll: Duration,
    /// [`CONSUMING`] is SERVING while the worker consumes.
    pub health: tonic_health::server::HealthReporter,
    /// Where `publish_post` jobs publish; none configured, they fail.
    pub publisher: Option<Arc<dyn Connector>>,
    /// A publication consumes `published_posts` of its owner.
    pub quota: QuotaClient,
}

/// How a connection's consuming ended.
enum Ended {
    /// Asked to stop, and the attempts under way are finished.
    Stopped,
    Failed(lapin::Error),
}

/// What becomes of a delivered message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settle {
    Ack,
    DeadLetter,
    Requeue,
}

/// Why an attempt produced no output.
#[derive(Debug)]
enum Failure {
    /// Another attempt would fail the same way.
    Permanent(String),
    /// Another attempt may succeed.
    Transient(String),
    /// Nothing could be recorded (the database).
    Unrecorded(QueueError),
}

impl From<QueueError> for Failure {
    fn from(err: QueueError) -> Self {
        Self::Unrecorded(err)
    }
}

impl From<deadpool_postgres::PoolError> for Failure {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        Self::Unrecorded(err.into())
    }
}

impl From<tokio_postgres::Error> for Failure {
    fn from(err: tokio_postgres::Error) -> Self {
        Self::Unrecorded(err.into())
    }
}

fn input_gone() -> Failure {
    Failure::Permanent("an input file no longer exists".to_owned())
}

/// The wait before the attempt after `attempts`: the base, doubled for each attempt since the
/// first, at most an hour.
pub fn retry_delay(base: Duration, attempts: i32) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(20);
    base.saturating_mul(1 << doublings).min(MAX_RETRY_DELAY)
}

impl Worker {
    /// Connects (and reconnects, backing off) and consumes until `stop` turns true; then stops
    /// taking messages, lets the attempts under way finish, and returns. Dropped instead, it drops
    /// the connection, and the broker delivers the unacked messages again.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut backoff = MIN_BACKOFF;
        loop {
            let ended = Arc::clone(&self).consume(&mut backoff, &mut stop).await;
            self.set_consuming(false).await;
            match ended {
                Ended::Stopped => return,
                Ended::Failed(err) => {
                    tracing::warn!(error = %err, retry_in = ?backoff, "queue worker stopped consuming");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn consume(
        self: Arc<Self>,
        backoff: &mut Duration,
        stop: &mut watch::Receiver<bool>,
    ) -> Ended {
        let queue = self.topology.queue(MEDIA_QUEUE);
        let setup = async {
            let (connection, channel) =
                broker::open(&self.amqp_url, "svc-queue worker", &self.topology).await?;
            channel
                .basic_qos(self.concurrency, BasicQosOptions::default())
                .await?;
            let consumer = channel
                .basic_consume(
                    queue.as_str().into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            Ok::<_, lapin::Error>((connection, channel, consumer))
        };
        let (_connection, channel, mut consumer) =
            match tokio::time::timeout(BROKER_TIMEOUT, setup).await {
                Ok(Ok(connected)) => connected,
                Ok(Err(err)) => return Ended::Failed(err),
                Err(_) => {
                    return Ended::Failed(std::io::Error::other("connecting timed out").into());
                }
            };
        tracing::info!(%queue, prefetch = self.concurrency, "queue worker consuming");
        self.set_consuming(true).await;
        *backoff = MIN_BACKOFF;
        let mut running = JoinSet::new();
        loop {
            let delivery = tokio::select! {
                delivery = consumer.next() => delivery,
                _ = stop.wait_for(|stop| *stop) => break,
            };
            let delivery = match delivery {
                Some(Ok(delivery)) => delivery,
                Some(Err(err)) => return Ended::Failed(err),
                None => {
                    return Ended::Failed(
                        std::io::Error::other("the broker cancelled the consumer").into(),
                    );
                }
            };
            let worker = Arc::clone(&self);
            running.spawn(async move { worker.handle(delivery).await });
            while running.try_join_next().is_some() {}
        }
        // Stopping: nothing more is delivered; what was delivered and not started goes back to
        // the queue with the connection.
        let tag = consumer.tag();
        if let Err(err) = channel
            .basic_cancel(tag, BasicCancelOptions::default())
            .await
        {
            tracing::warn!(error = %err, "could not cancel the consumer");
        }
        tracing::info!(
            running = running.len(),
            "queue worker stopping: finishing the attempts under way"
        );
        while running.join_next().await.is_some() {}
        Ended::Stopped
    }

    async fn set_consuming(&self, consuming: bool) {
        let status = if consuming {
            tonic_health::ServingStatus::Serving
        } else {
            tonic_health::ServingStatus::NotServing
        };
        self.health.set_service_status(CONSUMING, status).await;
    }

    async fn handle(&self, delivery: Delivery) {
        let settle = self.settle(&delivery.data, delivery.redelivered).await;
        let settled = match settle {
            Settle::Ack => delivery.ack(BasicAckOptions::default()).await,
            Settle::DeadLetter => delivery.reject(BasicRejectOptions { requeue: false }).await,
            Settle::Requeue => {
                tokio::time::sleep(REQUEUE_PAUSE).await;
                delivery
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..BasicNackOptions::default()
                    })
                    .await
            }
        };
        if let Err(err) = settled {
            // The channel is gone; the broker delivers the message again, and the job's state
            // (already committed) tells the next delivery what to do.
            tracing::warn!(error = %err, ?settle, "a job message could not be settled");
        }
    }

    /// Runs one delivery and records what happened; how to settle its message.
    async fn settle(&self, message: &[u8], redelivered: bool) -> Settle {
        let Some(job_id) = serde_json::from_slice::<Value>(message)
            .ok()
            .and_then(|message| message.get("job_id")?.as_str()?.parse::<Uuid>().ok())
        else {
            tracing::error!("a job message without a job id; dead-lettered");
            return Settle::DeadLetter;
        };
        let lease = Uuid::new_v4();
        let started = async {
            store::start_attempt(&self.pool.get().await?, job_id, lease, redelivered).await
        };
        let job = match started.await {
            Ok(Some(job)) => job,
            Ok(None) => return self.not_runnable(job_id, redelivered).await,
            Err(err) => {
                tracing::warn!(error = %err, job = %job_id, "could not start a job");
                return Settle::Requeue;
            }
        };
        // Dropping the attempt stops it: a fetch in flight is closed, an ffmpeg child killed.
        let attempt = tokio::time::timeout(self.operation_timeout, self.attempt(&job, lease));
        let outcome = tokio::select! {
            outcome = attempt => match outcome {
                Ok(outcome) => outcome,
                Err(_) => Err(Failure::Transient(format!(
                    "the attempt ran over the time limit of {} s",
                    self.operation_timeout.as_secs_f64()
                ))),
            },
            () = self.released(job.id, lease) => {
                tracing::info!(job = %job.id, "the job was cancelled or taken by another attempt; stopped");
                return Settle::Ack;
            }
        };
        let recorded = match outcome {
            Ok(()) => return Settle::Ack,
            Err(Failure::Unrecorded(err)) => Err(err),
            Err(Failure::Transient(error)) if job.attempts < job.max_attempts => {
                self.retry_later(&job, lease, &error).await
            }
            Err(Failure::Permanent(error) | Failure::Transient(error)) => {
                self.fail(&job, lease, &error).await
            }
        };
        recorded.unwrap_or_else(|err| {
            tracing::warn!(error = %err, job = %job.id, "could not record a job's attempt");
            Settle::Requeue
        })
    }

    /// Resolves once the attempt no longer holds the job: cancelled by its owner, or taken by
    /// another delivery of it.
    async fn released(&self, id: Uuid, lease: Uuid) {
        loop {
            tokio::time::sleep(self.cancel_poll).await;
            let held = async { store::holds(&self.pool.get().await?, id, lease).await };
            if let Ok(false) = held.await {
                return;
            }
        }
    }

    /// A delivery of a job that is not there to run: done before, or running under a live
    /// attempt (acked), or, redelivered, held by a worker that died during its last attempt
    /// (failed now).
    async fn not_runnable(&self, job_id: Uuid, redelivered: bool) -> Settle {
        let found = async { store::job_by_id(&self.pool.get().await?, job_id).await };
        match found.await {
            Ok(Some(job))
                if redelivered && job.status == "active" && job.attempts >= job.max_attempts =>
            {
                let error = "the worker stopped during the last attempt";
                let failed =
                    async { store::fail(&self.pool.get().await?, job.id, None, error).await };
                match failed.await {
                    Ok(_) => Settle::DeadLetter,
                    Err(_) => Settle::Requeue,
                }
            }
            Ok(_) => Settle::Ack,
            Err(_) => Settle::Requeue,
        }
    }

    async fn retry_later(
        &self,
        job: &JobRow,
        lease: Uuid,
        error: &str,
    ) -> Result<Settle, QueueError> {
        let delay = retry_delay(self.retry_base, job.attempts);
        let due = chrono::Utc::now()
            + chrono::TimeDelta::from_std(delay).unwrap_or(chrono::TimeDelta::MAX);
        let message = job_message(job.id, &job.job_type);
        let db = self.pool.get().await?;
        if store::schedule_retry(&db, job.id, lease, error, due, &message).await? {
            tracing::info!(job = %job.id, attempt = job.attempts, retry_in = ?delay, %error, "job attempt failed; retrying");
        }
        // Otherwise it was cancelled or taken by another attempt meanwhile: nothing to retry.
        Ok(Settle::Ack)
    }

    async fn fail(&self, job: &JobRow, lease: Uuid, error: &str) -> Result<Settle, QueueError> {
        let db = self.pool.get().await?;
        if store::fail(&db, job.id, Some(lease), error).await? {
            tracing::info!(job = %job.id, attempts = job.attempts, %error, "job failed");
            if job.job_type == store::PUBLISH_POST {
                self.refund_publication(job).await;
            }
            Ok(Settle::DeadLetter)
        } else {
            // Another attempt holds it now; this delivery has nothing left to do.
            Ok(Settle::Ack)
        }
    }

    /// One attempt: the input, the operation, the output stored and the job completed.
    async fn attempt(&self, job: &JobRow, lease: Uuid) -> Result<(), Failure> {
        if job.job_type == store::PUBLISH_POST {
            return self.publish(job, lease).await;
        }
        let input = self.input(job).await?;
        self.progress(job.id, lease, 30).await?;
        let operation = job.job_type.clone();
        let params = job
            .payload
            .get("params")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let output = if medium_of(&operation) == Some(Medium::Video) {
            let mut inputs = vec![input];
            for file_id in joined_files(&job.payload) {
                inputs.push(self.stored_input(job.owner_id, file_id).await?);
            }
            video::process(
                &operation,
                &params,
                inputs,
                &self.video_limits,
                &self.scratch_dir,
            )
            .await
        } else {
            let limits = self.limits;
            tokio::task::spawn_blocking(move || {
                media::process(&operation, &params, &input, &limits)
            })
            .await
            .map_err(|err| Failure::Transient(format!("the operation stopped: {err}")))?
        }
        .map_err(|err| match err {
            // The machine's part (scratch disk, ffmpeg not started): another attempt may work.
            media::MediaError::Encode(_) => Failure::Transient(err.to_string()),
            _ => Failure::Permanent(err.to_string()),
        })?;
        if output.bytes.len() > self.max_file_bytes {
            return Err(Failure::Permanent(format!(
                "the output is over the {} byte limit of a file",
                self.max_file_bytes
            )));
        }
        self.progress(job.id, lease, 80).await?;
        self.finish(job, lease, output).await
    }

    async fn progress(&self, id: Uuid, lease: Uuid, progress: i16) -> Result<(), Failure> {
        let db = self.pool.get().await?;
        store::set_progress(&db, id, lease, progress).await?;
        Ok(())
    }

    async fn input(&self, job: &JobRow) -> Result<Vec<u8>, Failure> {
        let payload = &job.payload;
        if let Some(file_id) = payload.get("input_file_id").and_then(Value::as_str) {
            let file_id = file_id.parse::<Uuid>().map_err(|_| input_gone())?;
            return self.stored_input(job.owner_id, file_id).await;
        }
        let url = payload
            .get("input_url")
            .and_then(Value::as_str)
            .and_then(|url| url::Url::parse(url).ok())
            .ok_or_else(|| Failure::Permanent("the job names no input".to_owned()))?;
        self.fetcher.fetch(&url).await.map_err(|err| match err {
            FetchError::Refused(message) => Failure::Permanent(message),
            FetchError::Failed(message) => Failure::Transient(message),
        })
    }

    /// The bytes of a stored file of the owner's.
    async fn stored_input(&self, owner_id: Uuid, file_id: Uuid) -> Result<Vec<u8>, Failure> {
        let file = store::file(&self.pool.get().await?, owner_id, file_id)
            .await?
            .ok_or_else(input_gone)?;
        match self.storage.get(&file.storage_key).await {
            Ok(bytes) => Ok(bytes),
            Err(StorageError::NotFound) => Err(input_gone()),
            Err(StorageError::Io(err)) => Err(Failure::Transient(format!(
                "an input file could not be read: {err}"
            ))),
        }
    }

    /// Stores the output's bytes, then commits its file row with the job's result; bytes of an
    /// attempt that lost its job (or whose commit failed) are deleted again.
    async fn finish(
        &self,
        job: &JobRow,
        lease: Uuid,
        output: media::Output,
    ) -> Result<(), Failure> {
        let file_id = Uuid::new_v4();
        let row = FileRow {
            id: file_id,
            owner_id: job.owner_id,
            content_type: output.content_type.to_owned(),
            bytes: i64::try_from(output.bytes.len()).unwrap_or(i64::MAX),
            sha256: sha256(&output.bytes),
            storage_key: storage::key(job.owner_id, file_id),
            filename: Some(format!("{}.{}", job.id, output.extension)),
            width: i32::try_from(output.width).ok(),
            height: i32::try_from(output.height).ok(),
            job_id: Some(job.id),
            created_at: chrono::Utc::now(),
        };
        let mut result = json!({
            "output_file_id": file_id,
            "output_url": format!("/api/files/{file_id}"),
            "content_type": output.content_type,
            "bytes": row.bytes,
            "width": output.width,
            "height": output.height,
        });
        if let Some(duration) = output.duration_seconds {
            result["duration"] = json!(duration);
        }
        self.storage
            .put(&row.storage_key, output.bytes)
            .await
            .map_err(|err| Failure::Transient(format!("the output could not be stored: {err}")))?;
        let committed = async {
            let mut db = self.pool.get().await?;
            let transaction = db.transaction().await?;
            store::insert_file(&transaction, &row).await?;
            if !store::complete(&transaction, job.id, lease, &result).await? {
                return Ok::<_, QueueError>(false);
            }
            transaction.commit().await?;
            Ok(true)
        }
        .await;
        match committed {
            Ok(true) => {
                tracing::info!(job = %job.id, attempt = job.attempts, "job completed");
                Ok(())
            }
            Ok(false) => {
                self.discard(&row.storage_key).await;
                tracing::info!(job = %job.id, "another attempt holds the job; this output is dropped");
                Ok(())
            }
            Err(err) => {
                // The commit may have happened with its answer lost: bytes a row names stay.
                let recorded =
                    async { store::file(&self.pool.get().await?, row.owner_id, row.id).await };
                if let Ok(Some(_)) = recorded.await {
                    return Ok(());
                }
                self.discard(&row.storage_key).await;
                Err(Failure::Unrecorded(err))
            }
        }
    }

    /// One attempt of a post's publication: its `published_posts` consumed (under a key of the
    /// post's, so every attempt counts once), the post sent through the connector, then the job
    /// completed with the post `published` together.
    async fn publish(&self, job: &JobRow, lease: Uuid) -> Result<(), Failure> {
        let gone =
            || Failure::Permanent("the post is no longer waiting to be published".to_owned());
        let post_id = post_of(job).map_err(|_| gone())?;
        let post = store::post_by_id(&self.pool.get().await?, post_id)
            .await?
            .filter(|post| post.status == "publishing" && post.job_id == Some(job.id))
            .ok_or_else(gone)?;
        let Some(publisher) = &self.publisher else {
            return Err(Failure::Permanent(
                "publishing is not set up on this worker (QUEUE_PUBLISH_WEBHOOK_URL)".to_owned(),
            ));
        };
        let owner = publication_owner(job, &post.owner_tier);
        self.quota
            .consume(
                &owner,
                crate::posts::PUBLISHED_QUOTA,
                1,
                Some(&job.quota_key()),
            )
            .await
            .map_err(|err| match err.reason.as_ref() {
                "quota_check_failed" => Failure::Transient(err.message),
                _ => Failure::Permanent(format!(
                    "not published: the plan's published_posts are used up ({})",
                    err.reason
                )),
            })?;
        let media = match post.file_id {
            None => None,
            Some(file_id) => {
                let file = store::file(&self.pool.get().await?, job.owner_id, file_id)
                    .await?
                    .ok_or_else(input_gone)?;
                let bytes = self.stored_input(job.owner_id, file_id).await?;
                Some(Media {
                    file_id,
                    content_type: file.content_type,
                    sha256: hex::encode(&file.sha256),
                    bytes,
                })
            }
        };
        self.progress(job.id, lease, 30).await?;
        let publication = Publication {
            post_id: post.id,
            creator_profile_id: post.creator_profile_id,
            platform: post.platform,
            caption: post.caption,
            platform_specific_config: post.platform_specific_config,
            scheduled_for: post.scheduled_for,
            media,
        };
        let said = publisher
            .publish(&publication)
            .await
            .map_err(|err| match err {
                ConnectorError::Transient(message) => Failure::Transient(message),
                ConnectorError::Refused(message) => Failure::Permanent(message),
            })?;
        let result =
            json!({"post_id": post.id, "platform": publication.platform, "published": said});
        let db = self.pool.get().await?;
        if store::complete_publication(&db, job.id, lease, &result).await? {
            tracing::info!(job = %job.id, post = %post.id, "post published");
        }
        Ok(())
    }

    /// A publication that failed for good gives back its `published_posts`.
    async fn refund_publication(&self, job: &JobRow) {
        let tier = async { store::post_by_id(&self.pool.get().await?, post_of(job)?).await };
        let tier = match tier.await {
            Ok(Some(post)) => post.owner_tier,
            _ => String::new(),
        };
        let owner = publication_owner(job, &tier);
        if let Err(err) = self.quota.refund(&owner, &job.quota_key()).await {
            tracing::warn!(job = %job.id, reason = %err.reason, "a failed publication's quota was not given back");
        }
    }

    async fn discard(&self, key: &str) {
        if let Err(err) = self.storage.delete(key).await {
            tracing::warn!(error = %err, "an output that was not kept could not be deleted");
        }
    }
}

/// The post a `publish_post` job publishes.
fn post_of(job: &JobRow) -> Result<Uuid, QueueError> {
    job.post_id().ok_or(QueueError::PostNotFound)
}

/// Whom a publication's quota is counted for: the post's owner, under the tier they scheduled
/// it with.
fn publication_owner(job: &JobRow, tier: &str) -> Identity {
    let owner = UserIdentity {
        id: job.owner_id,
        role: String::new(),
        tier: tier.to_owned(),
        impersonated_by: None,
    };
    Identity::user(owner, format!("publish-{}", job.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_an_hour() {
        let base = Duration::from_secs(1);
        let delays: Vec<u64> = (1..=5)
            .map(|attempts| retry_delay(base, attempts).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16]);
        assert_eq!(retry_delay(base, 40), MAX_RETRY_DELAY);
        assert_eq!(retry_delay(base, 0), base);
    }
}
