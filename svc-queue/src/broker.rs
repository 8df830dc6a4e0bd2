//! RabbitMQ: the connection, and the exchanges and queues the jobs travel through.
//!
//! Every job queue is a durable quorum queue bound to one direct exchange by its own name. A
//! message delivered more than the delivery limit (a worker that died holding it counts) is
//! dead-lettered, at least once (`at-least-once` needs `reject-publish`: a full queue refuses the
//! publish, which the relay sees as a nack and retries, instead of dropping the oldest message),
//! to a dead-letter exchange whose `<queue>.dead` queues keep it.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use std::time::Duration;

use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};

use crate::operations::QUEUES;

/// The names, each behind the deployment's prefix.
#[derive(Debug, Clone)]
pub struct Topology {
    prefix: String,
    delivery_limit: i32,
}

impl Topology {
    pub fn new(prefix: &str, delivery_limit: i32) -> Self {
        Self {
            prefix: prefix.to_owned(),
            delivery_limit,
        }
    }

    pub fn exchange(&self) -> String {
        format!("{}genie.jobs", self.prefix)
    }

    pub fn dead_letter_exchange(&self) -> String {
        format!("{}genie.jobs.dead", self.prefix)
    }

    /// The broker's name of a job queue (`media-jobs`, …); also its routing key.
    pub fn queue(&self, queue: &str) -> String {
        format!("{}{queue}", self.prefix)
    }

    pub fn dead_queue(&self, queue: &str) -> String {
        format!("{}{queue}.dead", self.prefix)
    }

    /// Declares everything; declaring what exists with the same arguments changes nothing.
    pub async fn declare(&self, channel: &Channel) -> Result<(), lapin::Error> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        for exchange in [self.exchange(), self.dead_letter_exchange()] {
            channel
                .exchange_declare(
                    exchange.as_str().into(),
                    ExchangeKind::Direct,
                    durable,
                    FieldTable::default(),
                )
                .await?;
        }
        let text = |value: &str| AMQPValue::LongString(value.into());
        for queue in QUEUES {
            let name = self.queue(queue);
            let mut arguments = FieldTable::default();
            arguments
                .insert("x-queue-type".into(), text("quorum"))
                .insert(
                    "x-delivery-limit".into(),
                    AMQPValue::LongInt(self.delivery_limit),
                )
                .insert(
                    "x-dead-letter-exchange".into(),
                    text(&self.dead_letter_exchange()),
                )
                .insert("x-dead-letter-strategy".into(), text("at-least-once"))
                .insert("x-overflow".into(), text("reject-publish"));
            channel
                .queue_declare(
                    name.as_str().into(),
                    QueueDeclareOptions::durable(),
                    arguments,
                )
                .await?;
            channel
                .queue_bind(
                    name.as_str().into(),
                    self.exchange().as_str().into(),
                    name.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            let dead = self.dead_queue(queue);
            let mut arguments = FieldTable::default();
            arguments.insert("x-queue-type".into(), text("quorum"));
            channel
                .queue_declare(
                    dead.as_str().into(),
                    QueueDeclareOptions::durable(),
                    arguments,
                )
                .await?;
            // Dead-lettered messages keep their routing key, the job queue's name.
            channel
                .queue_bind(
                    dead.as_str().into(),
                    self.dead_letter_exchange().as_str().into(),
                    name.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(())
    }
}

/// How long connecting (with the channel and the topology), or publishing one batch with its
/// confirms, may take: a peer that accepts the TCP connection and never finishes the AMQP
/// handshake would otherwise hold the caller, since heartbeats start only after it.
pub const BROKER_TIMEOUT: Duration = Duration::from_secs(10);
/// The backoff between reconnections, doubled from the first to the last.
pub const MIN_BACKOFF: Duration = Duration::from_millis(200);
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A connection named `name` and a channel on it with the topology declared, within
/// [`BROKER_TIMEOUT`].
pub async fn open(
    url: &str,
    name: &str,
    topology: &Topology,
) -> Result<(Connection, Channel), lapin::Error> {
    let opened = async {
        let connection = connect(url, name).await?;
        let channel = connection.create_channel().await?;
        topology.declare(&channel).await?;
        Ok((connection, channel))
    };
    tokio::time::timeout(BROKER_TIMEOUT, opened)
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("connecting to the broker timed out").into()))
}

pub async fn connect(url: &str, name: &str) -> Result<Connection, lapin::Error> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    Connection::connect(url, properties).await
}

/// What the relay last saw of each job queue on the broker: messages waiting for a worker and
/// consumers, as of when. Read by the queue's stats, so that they need no broker call of their
/// own.
#[derive(Debug, Clone, Default)]
pub struct Depths(std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Depth>>>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Depth {
    pub ready: u32,
    pub consumers: u32,
    pub seen: std::time::Instant,
}

/// A depth older than this is not shown: the relay has lost the broker.
pub const DEPTH_FRESHNESS: Duration = Duration::from_secs(30);

impl Depths {
    pub fn record(&self, queue: &str, ready: u32, consumers: u32) {
        let depth = Depth {
            ready,
            consumers,
            seen: std::time::Instant::now(),
        };
        if let Ok(mut depths) = self.0.lock() {
            depths.insert(queue.to_owned(), depth);
        }
    }

    /// Whether the relay read the queue's depth within `age`.
    pub fn seen_within(&self, queue: &str, age: Duration) -> bool {
        self.0.lock().ok().is_some_and(|depths| {
            depths
                .get(queue)
                .is_some_and(|depth| depth.seen.elapsed() < age)
        })
    }

    /// The queue's depth, if the relay saw it lately.
    pub fn get(&self, queue: &str) -> Option<Depth> {
        let depths = self.0.lock().ok()?;
        depths
            .get(queue)
            .copied()
            .filter(|depth| depth.seen.elapsed() < DEPTH_FRESHNESS)
    }
}
