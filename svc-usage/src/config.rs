use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use common::config::{self, ConfigError};
use common::secret::Secret;

use crate::tiers::Tiers;

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
    /// The tier file of `USAGE_TIERS_PATH`, read and checked; `None`: the one shipped with
    /// svc-usage, read at start-up.
    pub tiers: Option<Tiers>,
    /// Idempotency keys are kept at least this long (never under 24 hours).
    pub idempotency_ttl: Duration,
}

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/genie";
const MIN_IDEMPOTENCY_HOURS: u64 = 24;

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let tiers = match config::optional::<PathBuf>("USAGE_TIERS_PATH")? {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|err| {
                    ConfigError::new(
                        "USAGE_TIERS_PATH",
                        format!("cannot read {}: {err}", path.display()),
                    )
                })?;
                let tiers = Tiers::parse(&text)
                    .map_err(|problem| ConfigError::new("USAGE_TIERS_PATH", problem))?;
                Some(tiers)
            }
        };
        let hours: u64 = config::var("USAGE_IDEMPOTENCY_TTL_HOURS", 48)?;
        if hours < MIN_IDEMPOTENCY_HOURS {
            return Err(ConfigError::new(
                "USAGE_IDEMPOTENCY_TTL_HOURS",
                format!("must be at least {MIN_IDEMPOTENCY_HOURS}"),
            ));
        }
        Ok(Self {
            grpc_addr: config::var("USAGE_GRPC_ADDR", SocketAddr::from(([0, 0, 0, 0], 50052)))?,
            database_url: config::var("USAGE_DATABASE_URL", DEFAULT_DATABASE_URL.to_owned())?,
            database_pool_size: config::var("USAGE_DATABASE_POOL_SIZE", 16)?,
            database: common::db::Settings::from_env()?,
            server: common::grpc::ServerSettings::from_env()?,
            internal_token: config::secret("INTERNAL_TOKEN", 32)?,
            tiers,
            idempotency_ttl: Duration::from_secs(hours * 3600),
        })
    }

    /// Local defaults for tests and `genie up`.
    pub fn local(database_url: String, internal_token: Secret) -> Self {
        Self {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 50052)),
            database_url,
            database_pool_size: 16,
            database: common::db::Settings::default(),
            server: common::grpc::ServerSettings::default(),
            internal_token,
            tiers: None,
            idempotency_ttl: Duration::from_secs(48 * 3600),
        }
    }
}
