use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use common::config::{self, ConfigError};
use common::secret::Secret;
use zeroize::Zeroizing;

use crate::crypto::{KEY_LEN, KeyMaterial, KeyRing, KeyRingError, LEGACY_VERSION};

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/genie";
pub const DEFAULT_USAGE_GRPC_URL: &str = "http://127.0.0.1:50052";

/// Key v1, base64 of 32 bytes.
pub const KEY_V1_VARIABLE: &str = "CREDENTIALS_ENC_KEY_B64";
/// Further versions: `2:<base64>,3:<base64>`.
pub const MORE_KEYS_VARIABLE: &str = "CREDENTIALS_ENC_KEYS_B64";
/// Versions that no longer open anything: `1,2`.
pub const RETIRED_VARIABLE: &str = "CREDENTIALS_RETIRED_KEY_VERSIONS";

#[derive(Debug)]
pub struct Config {
    pub grpc_addr: SocketAddr,
    pub database_url: String,
    pub database_pool_size: usize,
    /// Timeouts and the health check of the database (`DATABASE_*`, shared by every service).
    pub database: common::db::Settings,
    /// `GRPC_REFLECTION`.
    pub server: common::grpc::ServerSettings,
    pub internal_token: Secret,
    pub keys: KeyRing,
    /// The largest secret (JSON text) one request may store.
    pub max_secret_bytes: usize,
    /// `USAGE_GRPC_URL`: svc-usage, where creating a creator profile takes a unit of the tier's
    /// `platforms` gauge.
    pub usage_grpc_url: String,
    /// `CREDENTIALS_QUOTA_TIMEOUT_MS`: how long that call may take before the profile is refused.
    pub quota_timeout: Duration,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            grpc_addr: config::var(
                "CREDENTIALS_GRPC_ADDR",
                SocketAddr::from(([0, 0, 0, 0], 50053)),
            )?,
            database_url: config::var("CREDENTIALS_DATABASE_URL", DEFAULT_DATABASE_URL.to_owned())?,
            database_pool_size: config::var("CREDENTIALS_DATABASE_POOL_SIZE", 16)?,
            database: common::db::Settings::from_env()?,
            server: common::grpc::ServerSettings::from_env()?,
            internal_token: config::secret("INTERNAL_TOKEN", 32)?,
            keys: key_ring_from_env()?,
            max_secret_bytes: config::var("CREDENTIALS_MAX_SECRET_BYTES", 65_536)?,
            usage_grpc_url: config::var("USAGE_GRPC_URL", DEFAULT_USAGE_GRPC_URL.to_owned())?,
            quota_timeout: config::millis("CREDENTIALS_QUOTA_TIMEOUT_MS", 2_000)?,
        })
    }

    /// Local defaults for tests and `genie up` (svc-usage at its default local address; a test
    /// sets `usage_grpc_url` to the svc-usage it started).
    pub fn local(database_url: String, internal_token: Secret, keys: KeyRing) -> Self {
        Self {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 50053)),
            database_url,
            database_pool_size: 16,
            database: common::db::Settings::default(),
            server: common::grpc::ServerSettings::default(),
            internal_token,
            keys,
            max_secret_bytes: 65_536,
            usage_grpc_url: DEFAULT_USAGE_GRPC_URL.to_owned(),
            quota_timeout: Duration::from_millis(2_000),
        }
    }
}

/// What `genie rotate-keys` needs: the database and the keys, not the service's listener.
#[derive(Debug)]
pub struct RotateConfig {
    pub database_url: String,
    pub keys: KeyRing,
    /// Records re-sealed per transaction.
    pub batch: i64,
    /// Timeouts of the database (`DATABASE_*`).
    pub database: common::db::Settings,
}

impl RotateConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let batch: i64 = config::var("CREDENTIALS_ROTATE_BATCH", 100)?;
        if !(1..=10_000).contains(&batch) {
            return Err(ConfigError::new(
                "CREDENTIALS_ROTATE_BATCH",
                "must be between 1 and 10000",
            ));
        }
        Ok(Self {
            database_url: config::var("CREDENTIALS_DATABASE_URL", DEFAULT_DATABASE_URL.to_owned())?,
            keys: key_ring_from_env()?,
            batch,
            database: common::db::Settings::from_env()?,
        })
    }
}

/// The key ring from `CREDENTIALS_ENC_KEY_B64`, `CREDENTIALS_ENC_KEYS_B64`,
/// `CREDENTIALS_RETIRED_KEY_VERSIONS` and `CREDENTIALS_ACCEPT_LEGACY`. Key values never appear in
/// an error.
pub fn key_ring_from_env() -> Result<KeyRing, ConfigError> {
    let v1: Secret = config::required(KEY_V1_VARIABLE)?;
    let more: Option<Secret> = config::optional(MORE_KEYS_VARIABLE)?;
    let retired = config::list(RETIRED_VARIABLE)
        .iter()
        .map(|version| {
            version.parse::<u32>().map_err(|_| {
                ConfigError::new(
                    RETIRED_VARIABLE,
                    "must be a comma-separated list of versions",
                )
            })
        })
        .collect::<Result<BTreeSet<u32>, _>>()?;
    let accept_legacy = config::var("CREDENTIALS_ACCEPT_LEGACY", true)?;
    key_ring(&v1, more.as_ref(), retired, accept_legacy)
}

pub fn key_ring(
    v1: &Secret,
    more: Option<&Secret>,
    retired: BTreeSet<u32>,
    accept_legacy: bool,
) -> Result<KeyRing, ConfigError> {
    let mut keys = vec![KeyMaterial {
        version: LEGACY_VERSION,
        bytes: decode_key(KEY_V1_VARIABLE, v1.expose())?,
    }];
    for item in more
        .map(|more| more.expose().split(','))
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        let (version, key) = item.split_once(':').ok_or_else(|| {
            ConfigError::new(
                MORE_KEYS_VARIABLE,
                "each item must be <version>:<base64 key>, e.g. 2:<base64>",
            )
        })?;
        let version: u32 = version
            .trim()
            .parse()
            .ok()
            .filter(|version| *version > LEGACY_VERSION)
            .ok_or_else(|| {
                ConfigError::new(
                    MORE_KEYS_VARIABLE,
                    "versions are whole numbers from 2 on (1 is CREDENTIALS_ENC_KEY_B64)",
                )
            })?;
        keys.push(KeyMaterial {
            version,
            bytes: decode_key(MORE_KEYS_VARIABLE, key.trim())?,
        });
    }
    KeyRing::new(keys, retired, accept_legacy).map_err(|err| {
        let variable = match err {
            KeyRingError::NewestRetired(_) => RETIRED_VARIABLE,
            _ => MORE_KEYS_VARIABLE,
        };
        ConfigError::new(variable, err.to_string())
    })
}

fn decode_key(variable: &str, text: &str) -> Result<Zeroizing<Vec<u8>>, ConfigError> {
    let problem = || {
        ConfigError::new(
            variable,
            format!(
                "must be the base64 of exactly {KEY_LEN} random bytes (make one with `openssl rand -base64 32`)"
            ),
        )
    };
    let bytes = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| problem())?,
    );
    if bytes.len() != KEY_LEN {
        return Err(problem());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="; // 32 × 'A'
    const KEY_B: &str = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI="; // 32 × 'B'

    fn ring(v1: &str, more: Option<&str>, retired: &[u32]) -> Result<KeyRing, ConfigError> {
        key_ring(
            &Secret::new(v1),
            more.map(Secret::new).as_ref(),
            retired.iter().copied().collect(),
            true,
        )
    }

    #[test]
    fn keys_are_read_with_their_versions() {
        let keys = ring(KEY_A, Some(&format!("2:{KEY_B}, 3:{KEY_A}")), &[1]).unwrap();
        assert_eq!(keys.newest(), 3);
        let versions: Vec<_> = keys.versions().map(|(v, _, r)| (v, r)).collect();
        assert_eq!(versions, [(1, true), (2, false), (3, false)]);
    }

    #[test]
    fn a_bad_key_stops_start_up_naming_the_variable_and_hiding_the_value() {
        let short = "QUFBQQ=="; // 4 bytes
        let cases = [
            (ring(short, None, &[]), KEY_V1_VARIABLE),
            (ring("not base64 at all!", None, &[]), KEY_V1_VARIABLE),
            (
                ring(KEY_A, Some(&format!("2:{short}")), &[]),
                MORE_KEYS_VARIABLE,
            ),
            (ring(KEY_A, Some(KEY_B), &[]), MORE_KEYS_VARIABLE),
            (
                ring(KEY_A, Some(&format!("1:{KEY_B}")), &[]),
                MORE_KEYS_VARIABLE,
            ),
            (
                ring(KEY_A, Some(&format!("x:{KEY_B}")), &[]),
                MORE_KEYS_VARIABLE,
            ),
            (
                ring(KEY_A, Some(&format!("2:{KEY_B},2:{KEY_A}")), &[]),
                MORE_KEYS_VARIABLE,
            ),
            (
                ring(KEY_A, Some(&format!("2:{KEY_B}")), &[2]),
                RETIRED_VARIABLE,
            ),
        ];
        for (result, variable) in cases {
            let err = result.unwrap_err();
            assert_eq!(err.variable, variable, "{err}");
            let shown = err.to_string();
            for key in [KEY_A, KEY_B, short] {
                assert!(!shown.contains(key), "{shown}");
            }
        }
    }
}
