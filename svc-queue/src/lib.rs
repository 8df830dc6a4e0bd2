//! svc-queue: media jobs that lose nothing. A job is stored with its outbox row in one
//! transaction after its quota is consumed; a relay publishes the outbox to durable RabbitMQ
//! quorum queues with publisher confirms and marks a row sent only after its confirm. Owns the
//! `queue` schema.

pub mod broker;
pub mod config;
pub mod connector;
pub mod error;
pub mod fetch;
pub mod files;
pub mod grpc;
pub mod media;
pub mod operations;
pub mod posts;
pub mod relay;
pub mod service;
pub mod storage;
pub mod store;
pub mod taxonomy;
pub mod video;
pub mod worker;

use std::future::Future;
use std::sync::Arc;

use common::quota::QuotaClient;
use proto::queue::v1::queue_server::QueueServer;
use tokio::net::TcpListener;
use tokio::sync::Notify;

pub use config::Config;
pub use service::QueueService;
use storage::{LocalDirectory, Storage};

mod embedded {
    refinery::embed_migrations!("migrations");
}

pub const SCHEMA: &str = "queue";

pub async fn migrate(database_url: &str) -> anyhow::Result<()> {
    common::db::migrate(database_url, SCHEMA, embedded::migrations::runner()).await?;
    Ok(())
}

/// Runs the gRPC server and the outbox relay on `listener` until `shutdown` resolves.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    migrate(&config.database_url).await?;
    let pool = common::db::pool(
        &config.database_url,
        config.database_pool_size,
        &config.database,
    )?;
    let usage = common::grpc::lazy_channel(
        "USAGE_GRPC_URL",
        &config.usage_grpc_url,
        config.database.connect_timeout,
    )?;
    let quota = QuotaClient::new(usage, config.internal_token.clone(), config.quota_timeout);
    let wake = Arc::new(Notify::new());
    let depths = broker::Depths::default();
    let taxonomy = Arc::new(taxonomy::Taxonomy::new(
        pool.clone(),
        config.taxonomy_cache_size,
    ));
    let service = Arc::new(QueueService::new(
        pool.clone(),
        quota,
        storage(&config),
        &config,
        Arc::clone(&wake),
        Arc::clone(&taxonomy),
        depths.clone(),
    ));
    let taxonomy_busted = Arc::new(Notify::new());
    let following_busts = AbortOnDrop(tokio::spawn(common::db::follow_notifications(
        config.database_url.clone(),
        store::TAXONOMY_CHANNEL,
        config.database.connect_timeout,
        Arc::clone(&taxonomy_busted),
    )));
    // A bust another replica sent (or one missed while the listening connection was down).
    let busting = AbortOnDrop(tokio::spawn(async move {
        loop {
            taxonomy_busted.notified().await;
            taxonomy.clear().await;
        }
    }));
    let scheduler = AbortOnDrop(tokio::spawn(posts::run_scheduler(
        pool.clone(),
        config.scheduler_interval,
        config.max_attempts,
        Arc::clone(&wake),
    )));
    let pruning = AbortOnDrop(tokio::spawn(common::sweep::hourly("sent outbox rows", {
        let pool = pool.clone();
        move || relay::prune_sent_rows(pool.clone())
    })));
    let woken_by_workers = AbortOnDrop(tokio::spawn(common::db::follow_notifications(
        config.database_url.clone(),
        store::WAKE_CHANNEL,
        config.database.connect_timeout,
        Arc::clone(&wake),
    )));
    let relay = relay::Relay {
        pool,
        amqp_url: config.amqp_url.expose().to_owned(),
        topology: broker::Topology::new(&config.name_prefix, config.delivery_limit),
        batch: config.relay_batch,
        backlog: config.broker_backlog,
        interval: config.relay_interval,
        wake,
        depths,
    };
    // Dropped (so stopped) when the server stops; rows it had not marked sent go out again.
    let relay = AbortOnDrop(tokio::spawn(relay.run()));
    // An upload is one message: the largest file and its name.
    let queue = QueueServer::new(grpc::QueueGrpc::new(service))
        .max_decoding_message_size(config.max_file_bytes + 64 * 1024);
    let setup = common::grpc::Setup {
        name: "svc-queue",
        database_url: &config.database_url,
        database: &config.database,
        internal_token: &config.internal_token,
        settings: &config.server,
    };
    let served = common::grpc::serve(listener, queue, setup, shutdown).await;
    drop((relay, scheduler, busting, following_busts));
    drop(woken_by_workers);
    drop(pruning);
    served?;
    Ok(())
}

fn storage(config: &Config) -> Arc<dyn Storage> {
    Arc::new(LocalDirectory::new(&config.storage_dir))
}

/// Runs a worker until `shutdown` resolves, answering `grpc.health.v1` on `health_listener`
/// (SERVING while it consumes); the jobs it held and had not settled are delivered again by the
/// broker.
pub async fn run_worker(
    config: Config,
    health_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    migrate(&config.database_url).await?;
    let pool = common::db::pool(
        &config.database_url,
        usize::from(config.worker_concurrency) + 2,
        &config.database,
    )?;
    let usage = common::grpc::lazy_channel(
        "USAGE_GRPC_URL",
        &config.usage_grpc_url,
        config.database.connect_timeout,
    )?;
    let quota = QuotaClient::new(usage, config.internal_token.clone(), config.quota_timeout);
    let publisher = match &config.publish_webhook {
        Some((url, secret)) => Some(Arc::new(connector::Webhook::new(
            url.clone(),
            secret,
            config.publish_timeout,
        )?) as Arc<dyn connector::Connector>),
        None => None,
    };
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status(worker::CONSUMING, tonic_health::ServingStatus::NotServing)
        .await;
    let worker = Arc::new(worker::Worker {
        pool,
        storage: storage(&config),
        fetcher: fetch::Fetcher::new(
            config.fetch_timeout,
            config.max_file_bytes,
            config.allow_private_urls,
        )?,
        amqp_url: config.amqp_url.expose().to_owned(),
        topology: broker::Topology::new(&config.name_prefix, config.delivery_limit),
        concurrency: config.worker_concurrency,
        limits: media::Limits::default(),
        video_limits: video::VideoLimits::default(),
        scratch_dir: config.scratch_dir.clone(),
        operation_timeout: config.operation_timeout,
        retry_base: config.retry_base,
        max_file_bytes: config.max_file_bytes,
        cancel_poll: config.cancel_poll,
        health,
        publisher,
        quota,
    });
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut running = AbortOnDrop(tokio::spawn(worker.run(stopping)));
    tracing::info!(health = %health_listener.local_addr()?, "svc-queue worker started");
    let incoming = tonic::transport::server::TcpIncoming::from(health_listener);
    tonic::transport::Server::builder()
        .add_service(health_service)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    // An attempt runs at most the operation's time limit, then settles its message.
    let _ = stop.send(true);
    let grace = config.operation_timeout + SETTLE_GRACE;
    if tokio::time::timeout(grace, &mut running.0).await.is_err() {
        tracing::warn!(
            ?grace,
            "the worker's attempts did not finish in time; they run again elsewhere"
        );
    }
    Ok(())
}

/// Runs a worker until SIGTERM or Ctrl-C.
pub async fn serve_worker(config: Config) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.worker_health_addr).await?;
    run_worker(config, listener, common::shutdown::signal()).await
}

/// Binds the configured address and runs until SIGTERM or Ctrl-C.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.grpc_addr).await?;
    run(config, listener, common::shutdown::signal()).await
}

/// Past an attempt's time limit, for recording its outcome and settling its message.
const SETTLE_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
