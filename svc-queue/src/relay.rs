//! The outbox relay: publishes the rows the enqueue wrote with the job, persistent and
//! `mandatory`, on a channel in confirm mode, and marks a row sent only after the broker
//! confirmed it. Rows are taken `FOR UPDATE SKIP LOCKED`, so the relays of several replicas
//! share the work without publishing a row twice; a crash between the confirm and the commit
//! publishes that row again, which is why the message carries the job's id (at least once, and
//! the consumer knows a job it has seen).

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation};
use tokio::sync::Notify;

use crate::broker::{self, BROKER_TIMEOUT, MAX_BACKOFF, MIN_BACKOFF, Topology};
use crate::error::QueueError;
use crate::operations::QUEUES;
use crate::store;

/// A sent outbox row is kept this long (to see what went out when), then deleted.
pub const SENT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
const PRUNE_BATCH: i64 = 10_000;
/// How often the depth of a queue with nothing to publish is read again, for the stats (which
/// show a depth up to [`broker::DEPTH_FRESHNESS`] old).
const DEPTH_REFRESH: Duration = Duration::from_secs(5);

pub struct Relay {
    pub pool: Pool,
    pub amqp_url: String,
    pub topology: Topology,
    pub batch: i64,
    /// At most this many messages wait in a job queue: the rest stay in the outbox, where they
    /// are taken in turn per owner, so one creator's burst does not hold back another's job.
    pub backlog: u32,
    pub interval: Duration,
    /// Notified by each enqueue of this process, so a job is published at once.
    pub wake: Arc<Notify>,
    /// Where the queues' depths it sees are kept for the stats.
    pub depths: broker::Depths,
}

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error("the broker did not answer in time")]
    Timeout,
    #[error("database: {0}")]
    Queue(#[from] QueueError),
}

impl From<tokio_postgres::Error> for RelayError {
    fn from(err: tokio_postgres::Error) -> Self {
        Self::Queue(err.into())
    }
}

impl From<deadpool_postgres::PoolError> for RelayError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        Self::Queue(err.into())
    }
}

impl Relay {
    /// Runs until the task is dropped: connects (and reconnects, backing off), declares the
    /// topology, and publishes whatever is unsent.
    pub async fn run(self) {
        let mut backoff = MIN_BACKOFF;
        loop {
            let err = self.connected(&mut backoff).await;
            tracing::warn!(error = %err, retry_in = ?backoff, "outbox relay stopped");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Connects and publishes until something fails; what failed.
    async fn connected(&self, backoff: &mut Duration) -> RelayError {
        let opened = broker::open(&self.amqp_url, "svc-queue relay", &self.topology).await;
        let (_connection, channel) = match opened {
            Ok(opened) => opened,
            Err(err) => return err.into(),
        };
        let confirming = channel.confirm_select(ConfirmSelectOptions::default());
        match tokio::time::timeout(BROKER_TIMEOUT, confirming).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => return err.into(),
            Err(_) => return RelayError::Timeout,
        }
        tracing::info!("outbox relay connected to the broker");
        *backoff = MIN_BACKOFF;
        loop {
            match self.publish_due(&channel).await {
                Ok(published) if published < self.batch => {
                    // A wake-up that came while the batch ran is kept by the Notify, not lost.
                    let _ = tokio::time::timeout(self.interval, self.wake.notified()).await;
                }
                Ok(_) => {}
                Err(err) => return err,
            }
        }
    }

    /// Fills each job queue that has due rows up to the backlog from the outbox; how many were
    /// published. A queue with none is not looked into (the ranking of `lock_unsent` weighs every
    /// job in flight, and every attempt's start and end wakes the relay), except that its depth
    /// is read again when the last reading is [`DEPTH_REFRESH`] old, for the stats.
    async fn publish_due(&self, channel: &Channel) -> Result<i64, RelayError> {
        let due = store::queues_with_due_rows(&self.pool.get().await?, &QUEUES).await?;
        let mut published = 0;
        for queue in QUEUES {
            let has_due = due.iter().any(|name| name == queue);
            if !has_due && self.depths.seen_within(queue, DEPTH_REFRESH) {
                continue;
            }
            let declared = channel
                .queue_declare(
                    self.topology.queue(queue).as_str().into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await?;
            self.depths
                .record(queue, declared.message_count(), declared.consumer_count());
            let room = i64::from(self.backlog.saturating_sub(declared.message_count()));
            if has_due && room > 0 {
                published += self
                    .publish_batch(channel, queue, room.min(self.batch))
                    .await?;
            }
        }
        Ok(published)
    }

    /// Publishes one batch of `queue`: locks unsent rows, publishes each, and in the same transaction
    /// marks sent those the broker acked, also when the batch stopped part way (a deadline, a
    /// broken channel): only the rows without an ack go out again. How many were marked sent.
    async fn publish_batch(
        &self,
        channel: &Channel,
        queue: &str,
        limit: i64,
    ) -> Result<i64, RelayError> {
        let mut db = self.pool.get().await?;
        let transaction = db.transaction().await?;
        // Should the relay stall with its rows locked, Postgres ends the transaction.
        transaction
            .batch_execute("SET LOCAL idle_in_transaction_session_timeout = '60s'")
            .await?;
        let unsent = store::lock_unsent(&transaction, queue, limit).await?;
        if unsent.is_empty() {
            return Ok(0);
        }
        let mut acked = Vec::with_capacity(unsent.len());
        let mut returned = Vec::new();
        let outcome = tokio::time::timeout(
            BROKER_TIMEOUT,
            self.publish(channel, &unsent, &mut acked, &mut returned),
        )
        .await;
        let ids: Vec<i64> = acked
            .iter()
            .filter(|row| !returned.contains(&row.job_id.to_string()))
            .map(|row| row.id)
            .collect();
        if ids.len() < acked.len() {
            tracing::error!(
                unroutable = acked.len() - ids.len(),
                "job messages routed to no queue; they stay in the outbox until the topology is declared again"
            );
        }
        store::mark_sent(&transaction, &ids).await?;
        transaction.commit().await?;
        match outcome {
            Err(_) => return Err(RelayError::Timeout),
            Ok(Err(err)) => return Err(err.into()),
            Ok(Ok(())) => {}
        }
        if ids.len() < acked.len() {
            // Declaring again repairs a queue someone deleted; the rows go out with the next batch.
            self.topology.declare(channel).await?;
        }
        Ok(i64::try_from(ids.len()).unwrap_or(i64::MAX))
    }

    /// Publishes `rows` and waits for each confirm, recording the acked rows in `acked` and the
    /// message ids the broker returned as unroutable in `returned` as they come.
    async fn publish<'a>(
        &self,
        channel: &Channel,
        rows: &'a [store::Unsent],
        acked: &mut Vec<&'a store::Unsent>,
        returned: &mut Vec<String>,
    ) -> Result<(), lapin::Error> {
        let mut confirms = Vec::with_capacity(rows.len());
        for row in rows {
            let payload = row.payload.to_string().into_bytes();
            let properties = BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/json".into())
                .with_message_id(row.job_id.to_string().as_str().into());
            let routing_key = self.topology.queue(&row.queue_name);
            let confirm = channel
                .basic_publish(
                    self.topology.exchange().as_str().into(),
                    routing_key.as_str().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &payload,
                    properties,
                )
                .await?;
            confirms.push((row, confirm));
        }
        for (row, confirm) in confirms {
            match confirm.await? {
                Confirmation::Ack(None) => acked.push(row),
                // Routed nowhere: lapin hands a return to whichever confirm completes next, so
                // the message id says which row it was.
                Confirmation::Ack(Some(message)) => {
                    acked.push(row);
                    if let Some(id) = message.properties.message_id() {
                        returned.push(id.to_string());
                    }
                }
                Confirmation::Nack(_) | Confirmation::NotRequested => {
                    tracing::warn!(job = %row.job_id, "the broker refused a job message; it stays in the outbox")
                }
            }
        }
        Ok(())
    }
}

/// Deletes the outbox rows sent more than [`SENT_RETENTION`] ago, in batches, so the outbox
/// does not grow without end; how many. Run hourly.
pub async fn prune_sent_rows(pool: Pool) -> Result<u64, QueueError> {
    let retention = chrono::TimeDelta::from_std(SENT_RETENTION)
        .map_err(|_| QueueError::invalid("retention", "out of range"))?;
    let mut pruned = 0;
    loop {
        let db = pool.get().await?;
        let batch = store::prune_sent(&db, chrono::Utc::now() - retention, PRUNE_BATCH).await?;
        pruned += batch;
        if batch < PRUNE_BATCH.unsigned_abs() {
            return Ok(pruned);
        }
    }
}
