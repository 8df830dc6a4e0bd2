use std::net::SocketAddr;
use std::time::Duration;

use common::config::{self, ConfigError};
use common::secret::Secret;

/// Where identity comes from (docs/DESIGN.md §3).
#[derive(Debug, Clone)]
pub enum Mode {
    /// svc-auth is the identity provider and serves the Directus-compatible endpoints.
    Embedded,
    /// An existing Directus issues tokens and owns the users; svc-auth forwards logins to it and
    /// mirrors the users it sees, so that tier, onboarding state and status live here.
    Directus(DirectusConfig),
}

#[derive(Debug, Clone)]
pub struct DirectusConfig {
    pub url: String,
    /// A static token of a Directus administrator, to read and create users.
    pub admin_token: Secret,
    /// A mirrored user older than this is read again from Directus.
    pub mirror_ttl: Duration,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    pub grpc_addr: SocketAddr,
    pub database_url: String,
    pub database_pool_size: usize,
    /// Timeouts and the health check of the database (`DATABASE_*`, shared by every service).
    pub database: common::db::Settings,
    /// `GRPC_REFLECTION`.
    pub server: common::grpc::ServerSettings,
    pub internal_token: Secret,
    /// Directus' `SECRET`: the HS256 key of access tokens.
    pub directus_secret: Secret,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub impersonation_ttl: Duration,
    /// No login answers sooner than this, right or wrong.
    pub login_floor: Duration,
    pub avatar_max_bytes: usize,
    /// Passwords hashed at once (each holds 64 MiB and a core while it runs).
    pub hash_concurrency: usize,
    /// Hashes that may wait for one of those; beyond, a login is refused at once (503).
    pub hash_queue: usize,
    /// First administrator, created on start when no user has this email.
    pub admin: Option<(String, Secret)>,
}

impl DirectusConfig {
    fn from_env() -> Result<Self, ConfigError> {
        let url: String = config::required("DIRECTUS_URL")?;
        let url = url.trim_end_matches('/').to_owned();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ConfigError::new(
                "DIRECTUS_URL",
                "must start with http:// or https://",
            ));
        }
        Ok(Self {
            url,
            admin_token: config::secret("DIRECTUS_ADMIN_TOKEN", 16)?,
            mirror_ttl: Duration::from_secs(config::var("AUTH_DIRECTUS_MIRROR_TTL_SECS", 300)?),
            timeout: config::millis("AUTH_DIRECTUS_TIMEOUT_MS", 5000)?,
        })
    }
}

/// Waiting hashes admitted per core by default: about a second of waiting at most.
pub const DEFAULT_HASH_QUEUE_PER_CORE: usize = 4;

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn positive(variable: &str, value: usize) -> Result<usize, ConfigError> {
    if value == 0 {
        return Err(ConfigError::new(variable, "must be at least 1"));
    }
    Ok(value)
}

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/genie";

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let mode = match config::var("AUTH_MODE", "embedded".to_owned())?.as_str() {
            "embedded" => Mode::Embedded,
            "directus" => Mode::Directus(DirectusConfig::from_env()?),
            _ => {
                return Err(ConfigError::new(
                    "AUTH_MODE",
                    "must be embedded or directus",
                ));
            }
        };
        let admin = match (
            config::optional::<String>("ADMIN_EMAIL")?,
            config::optional::<Secret>("ADMIN_PASSWORD")?,
        ) {
            (Some(email), Some(password)) => Some((email, password)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "ADMIN_PASSWORD",
                    "is required with ADMIN_EMAIL",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "ADMIN_EMAIL",
                    "is required with ADMIN_PASSWORD",
                ));
            }
        };
        Ok(Self {
            mode,
            grpc_addr: config::var("AUTH_GRPC_ADDR", SocketAddr::from(([0, 0, 0, 0], 50051)))?,
            database_url: config::var("AUTH_DATABASE_URL", DEFAULT_DATABASE_URL.to_owned())?,
            database_pool_size: config::var("AUTH_DATABASE_POOL_SIZE", 16)?,
            database: common::db::Settings::from_env()?,
            server: common::grpc::ServerSettings::from_env()?,
            internal_token: config::secret("INTERNAL_TOKEN", 32)?,
            directus_secret: config::secret("DIRECTUS_SECRET", 32)?,
            access_token_ttl: Duration::from_secs(config::var("ACCESS_TOKEN_TTL_SECS", 900)?),
            refresh_token_ttl: Duration::from_secs(config::var("REFRESH_TOKEN_TTL_SECS", 604_800)?),
            impersonation_ttl: Duration::from_secs(config::var(
                "IMPERSONATION_TOKEN_TTL_SECS",
                600,
            )?),
            login_floor: config::millis("LOGIN_FLOOR_MS", 500)?,
            avatar_max_bytes: config::var("AVATAR_MAX_BYTES", 2 * 1024 * 1024)?,
            hash_concurrency: positive(
                "AUTH_HASH_CONCURRENCY",
                config::var("AUTH_HASH_CONCURRENCY", cores())?,
            )?,
            hash_queue: config::var("AUTH_HASH_QUEUE", DEFAULT_HASH_QUEUE_PER_CORE * cores())?,
            admin,
        })
    }

    /// Local defaults for tests and `genie up`, with the given secrets and database.
    pub fn local(database_url: String, internal_token: Secret, directus_secret: Secret) -> Self {
        Self {
            mode: Mode::Embedded,
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 50051)),
            database_url,
            database_pool_size: 16,
            database: common::db::Settings::default(),
            server: common::grpc::ServerSettings::default(),
            internal_token,
            directus_secret,
            access_token_ttl: Duration::from_secs(900),
            refresh_token_ttl: Duration::from_secs(604_800),
            impersonation_ttl: Duration::from_secs(600),
            login_floor: Duration::from_millis(500),
            avatar_max_bytes: 2 * 1024 * 1024,
            hash_concurrency: cores(),
            hash_queue: DEFAULT_HASH_QUEUE_PER_CORE * cores(),
            admin: None,
        }
    }
}
