use std::net::SocketAddr;

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
    /// `SKILLS_SEED`: import the shipped catalogue at start-up when the catalogue is empty.
    pub seed: bool,
}

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/genie";

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            grpc_addr: config::var("SKILLS_GRPC_ADDR", SocketAddr::from(([0, 0, 0, 0], 50055)))?,
            database_url: config::var("SKILLS_DATABASE_URL", DEFAULT_DATABASE_URL.to_owned())?,
            database_pool_size: config::var("SKILLS_DATABASE_POOL_SIZE", 16)?,
            database: common::db::Settings::from_env()?,
            server: common::grpc::ServerSettings::from_env()?,
            internal_token: config::secret("INTERNAL_TOKEN", 32)?,
            seed: config::var("SKILLS_SEED", true)?,
        })
    }

    /// Local defaults for tests and `genie up`.
    pub fn local(database_url: String, internal_token: Secret) -> Self {
        Self {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 50055)),
            database_url,
            database_pool_size: 16,
            database: common::db::Settings::default(),
            server: common::grpc::ServerSettings::default(),
            internal_token,
            seed: true,
        }
    }
}
