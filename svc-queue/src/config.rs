use std::net::SocketAddr;
use std::time::Duration;

use common::config::{self, ConfigError};
use common::secret::Secret;

#[derive(Debug, Clone)]
pub struct Config {
    pub grpc_addr: SocketAddr,
    pub database_url: String,
    pub database_pool_size: usize,
    /// Timeouts and the health check of the database (`DATABASE_*`, shared by every service).
    pub database: common::db::Settings,
    /// `GRPC_REFLECTION`.
    pub server: common::grpc::ServerSettings,
    pub internal_token: Secret,
    /// `QUEUE_AMQP_URL`: the RabbitMQ the jobs are published to.
    pub amqp_url: Secret,
    /// `QUEUE_NAME_PREFIX`: put before every exchange and queue name, so that several
    /// deployments (or tests) can share one broker.
    pub name_prefix: String,
    /// `USAGE_GRPC_URL`: svc-usage, which the `ai_media_ops` quota is consumed from.
    pub usage_grpc_url: String,
    /// `QUEUE_QUOTA_TIMEOUT_MS`: how long the quota check may take before the enqueue is refused.
    pub quota_timeout: Duration,
    /// `QUEUE_MAX_ATTEMPTS`: attempts of a job before it is `failed`.
    pub max_attempts: i32,
    /// `QUEUE_DELIVERY_LIMIT`: deliveries of one message (a worker that died holding it counts)
    /// before RabbitMQ dead-letters it.
    pub delivery_limit: i32,
    /// `QUEUE_RELAY_INTERVAL_MS`: how often the relay looks for unsent outbox rows when nothing
    /// woke it (an enqueue in this process wakes it at once).
    pub relay_interval: Duration,
    /// `QUEUE_RELAY_BATCH`: outbox rows published per transaction.
    pub relay_batch: i64,
    /// `QUEUE_BROKER_BACKLOG`: messages a job queue may hold waiting for a worker; the rest wait
    /// in the outbox, taken in turn per owner. Lower is fairer between creators; about the
    /// number of worker slots keeps every worker busy.
    pub broker_backlog: u32,
    /// `QUEUE_ALLOW_PRIVATE_URLS`: let `input_url` name loopback and private addresses (local
    /// development only: the fetch runs inside the platform's network).
    pub allow_private_urls: bool,
    /// What can run here; video needs an `ffmpeg` on `PATH`.
    pub capabilities: crate::operations::Capabilities,
    /// `QUEUE_STORAGE_DIR`: the directory files are kept in (shared by svc-queue and its workers).
    pub storage_dir: std::path::PathBuf,
    /// `QUEUE_SCRATCH_DIR`: where a worker writes a video job's inputs and output while ffmpeg
    /// runs (removed after each attempt); the system's temporary directory by default.
    pub scratch_dir: std::path::PathBuf,
    /// `QUEUE_MAX_FILE_BYTES`: the largest file kept, uploaded, fetched or produced.
    pub max_file_bytes: usize,
    /// `QUEUE_WORKER_CONCURRENCY`: jobs one worker runs at once (its prefetch).
    pub worker_concurrency: u16,
    /// `QUEUE_OPERATION_TIMEOUT_MS`: how long one attempt of a job may run.
    pub operation_timeout: Duration,
    /// `QUEUE_RETRY_BASE_MS`: the wait before a job's second attempt, doubled for each one after.
    pub retry_base: Duration,
    /// `QUEUE_FETCH_TIMEOUT_MS`: how long fetching an `input_url` may take.
    pub fetch_timeout: Duration,
    /// `QUEUE_CANCEL_POLL_MS`: how often a worker checks that a running job is still its own
    /// (not cancelled), so that a cancel stops the work within about this long.
    pub cancel_poll: Duration,
    /// `QUEUE_WORKER_HEALTH_ADDR`: where a worker answers `grpc.health.v1` (SERVING while it
    /// consumes), for its probes.
    pub worker_health_addr: SocketAddr,
    /// `QUEUE_SCHEDULER_INTERVAL_MS`: how often the scheduler turns due posts into
    /// `publish_post` jobs.
    pub scheduler_interval: Duration,
    /// `QUEUE_PUBLISH_WEBHOOK_URL` and `QUEUE_PUBLISH_WEBHOOK_SECRET`: the connector posts are
    /// published through; unset, scheduling a post is refused.
    pub publish_webhook: Option<(url::Url, Secret)>,
    /// `QUEUE_PUBLISH_TIMEOUT_MS`: how long one delivery to the webhook may take.
    pub publish_timeout: Duration,
    /// `QUEUE_TAXONOMY_CACHE_SIZE`: tags the taxonomy cache holds.
    pub taxonomy_cache_size: u64,
}

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/genie";
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const DEFAULT_STORAGE_DIR: &str = "data/files";
pub const DEFAULT_MAX_FILE_BYTES: usize = 25 * 1024 * 1024;
pub const DEFAULT_USAGE_GRPC_URL: &str = "http://127.0.0.1:50052";

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let max_attempts = config::var("QUEUE_MAX_ATTEMPTS", 5)?;
        if !(1..=100).contains(&max_attempts) {
            return Err(ConfigError::new("QUEUE_MAX_ATTEMPTS", "must be 1 to 100"));
        }
        let delivery_limit = config::var("QUEUE_DELIVERY_LIMIT", 20)?;
        if delivery_limit < 1 {
            return Err(ConfigError::new(
                "QUEUE_DELIVERY_LIMIT",
                "must be at least 1",
            ));
        }
        let relay_interval = config::millis("QUEUE_RELAY_INTERVAL_MS", 1_000)?;
        if relay_interval.is_zero() {
            return Err(ConfigError::new(
                "QUEUE_RELAY_INTERVAL_MS",
                "must be at least 1",
            ));
        }
        let relay_batch = config::var("QUEUE_RELAY_BATCH", 100)?;
        if !(1..=10_000).contains(&relay_batch) {
            return Err(ConfigError::new("QUEUE_RELAY_BATCH", "must be 1 to 10000"));
        }
        let broker_backlog = config::var("QUEUE_BROKER_BACKLOG", 4)?;
        if broker_backlog == 0 {
            return Err(ConfigError::new(
                "QUEUE_BROKER_BACKLOG",
                "must be at least 1",
            ));
        }
        let max_file_bytes = config::var("QUEUE_MAX_FILE_BYTES", DEFAULT_MAX_FILE_BYTES)?;
        if !(1..=1 << 30).contains(&max_file_bytes) {
            return Err(ConfigError::new(
                "QUEUE_MAX_FILE_BYTES",
                "must be 1 to 1073741824",
            ));
        }
        let worker_concurrency = config::var("QUEUE_WORKER_CONCURRENCY", 2)?;
        if worker_concurrency == 0 {
            return Err(ConfigError::new(
                "QUEUE_WORKER_CONCURRENCY",
                "must be at least 1",
            ));
        }
        let positive = |name: &'static str, default: u64| {
            let value = config::millis(name, default)?;
            if value.is_zero() {
                return Err(ConfigError::new(name, "must be at least 1"));
            }
            Ok(value)
        };
        let publish_webhook = match config::var("QUEUE_PUBLISH_WEBHOOK_URL", String::new())? {
            url if url.trim().is_empty() => None,
            url => {
                let url = url::Url::parse(url.trim())
                    .ok()
                    .filter(|url| matches!(url.scheme(), "http" | "https"))
                    .ok_or_else(|| {
                        ConfigError::new("QUEUE_PUBLISH_WEBHOOK_URL", "must be an http(s) URL")
                    })?;
                Some((url, config::secret("QUEUE_PUBLISH_WEBHOOK_SECRET", 32)?))
            }
        };
        let taxonomy_cache_size = config::var("QUEUE_TAXONOMY_CACHE_SIZE", 10_000)?;
        if taxonomy_cache_size == 0 {
            return Err(ConfigError::new(
                "QUEUE_TAXONOMY_CACHE_SIZE",
                "must be at least 1",
            ));
        }
        Ok(Self {
            grpc_addr: config::var("QUEUE_GRPC_ADDR", SocketAddr::from(([0, 0, 0, 0], 50056)))?,
            database_url: config::var("QUEUE_DATABASE_URL", DEFAULT_DATABASE_URL.to_owned())?,
            database_pool_size: config::var("QUEUE_DATABASE_POOL_SIZE", 16)?,
            database: common::db::Settings::from_env()?,
            server: common::grpc::ServerSettings::from_env()?,
            internal_token: config::secret("INTERNAL_TOKEN", 32)?,
            amqp_url: Secret::new(config::var("QUEUE_AMQP_URL", DEFAULT_AMQP_URL.to_owned())?),
            name_prefix: config::var("QUEUE_NAME_PREFIX", String::new())?,
            usage_grpc_url: config::var("USAGE_GRPC_URL", DEFAULT_USAGE_GRPC_URL.to_owned())?,
            quota_timeout: config::millis("QUEUE_QUOTA_TIMEOUT_MS", 2_000)?,
            max_attempts,
            delivery_limit,
            relay_interval,
            relay_batch,
            broker_backlog,
            allow_private_urls: config::var("QUEUE_ALLOW_PRIVATE_URLS", false)?,
            capabilities: crate::operations::Capabilities::detect(),
            storage_dir: config::var("QUEUE_STORAGE_DIR", DEFAULT_STORAGE_DIR.into())?,
            scratch_dir: config::var("QUEUE_SCRATCH_DIR", std::env::temp_dir())?,
            max_file_bytes,
            worker_concurrency,
            operation_timeout: positive("QUEUE_OPERATION_TIMEOUT_MS", 120_000)?,
            retry_base: positive("QUEUE_RETRY_BASE_MS", 1_000)?,
            fetch_timeout: positive("QUEUE_FETCH_TIMEOUT_MS", 30_000)?,
            cancel_poll: positive("QUEUE_CANCEL_POLL_MS", 500)?,
            worker_health_addr: config::var(
                "QUEUE_WORKER_HEALTH_ADDR",
                SocketAddr::from(([0, 0, 0, 0], 50057)),
            )?,
            scheduler_interval: positive("QUEUE_SCHEDULER_INTERVAL_MS", 60_000)?,
            publish_webhook,
            publish_timeout: positive("QUEUE_PUBLISH_TIMEOUT_MS", 10_000)?,
            taxonomy_cache_size,
        })
    }

    /// Local defaults for tests and `genie up`.
    pub fn local(database_url: String, internal_token: Secret) -> Self {
        Self {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 50056)),
            database_url,
            database_pool_size: 16,
            database: common::db::Settings::default(),
            server: common::grpc::ServerSettings::default(),
            internal_token,
            amqp_url: Secret::new(DEFAULT_AMQP_URL.to_owned()),
            name_prefix: String::new(),
            usage_grpc_url: DEFAULT_USAGE_GRPC_URL.to_owned(),
            quota_timeout: Duration::from_millis(2_000),
            max_attempts: 5,
            delivery_limit: 20,
            relay_interval: Duration::from_millis(1_000),
            relay_batch: 100,
            broker_backlog: 4,
            allow_private_urls: false,
            capabilities: crate::operations::Capabilities::detect(),
            storage_dir: DEFAULT_STORAGE_DIR.into(),
            scratch_dir: std::env::temp_dir(),
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            worker_concurrency: 2,
            operation_timeout: Duration::from_secs(120),
            retry_base: Duration::from_secs(1),
            fetch_timeout: Duration::from_secs(30),
            cancel_poll: Duration::from_millis(500),
            worker_health_addr: SocketAddr::from(([127, 0, 0, 1], 50057)),
            scheduler_interval: Duration::from_secs(60),
            publish_webhook: None,
            publish_timeout: Duration::from_secs(10),
            taxonomy_cache_size: 10_000,
        }
    }
}
