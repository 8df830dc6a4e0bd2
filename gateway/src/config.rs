//! The gateway's settings, read once from the environment (README.md lists every variable).

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use common::config::{self, ConfigError};
use common::secret::Secret;

/// docs/DESIGN.md §2: a resolved user may be stale for at most this long.
pub const MAX_RESOLVE_CACHE: Duration = Duration::from_secs(30);
/// docs/DESIGN.md §3: at most this much clock skew is forgiven on `exp`.
pub const MAX_JWT_LEEWAY: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct Config {
    /// Where the binary binds the HTTP listener (`GATEWAY_ADDR`).
    pub addr: SocketAddr,
    /// Directus' `SECRET`: the HS256 key of access tokens, its UTF-8 bytes as they are.
    pub directus_secret: Secret,
    /// Presented to every service as `authorization: Bearer …`.
    pub internal_token: Secret,
    /// The `X-RBAC-SYNC-SECRET` of the role-sync webhook.
    pub rbac_sync_secret: Secret,
    pub auth_grpc_url: String,
    /// svc-usage's gRPC endpoint (`USAGE_GRPC_URL`).
    pub usage_grpc_url: String,
    /// svc-credentials' gRPC endpoint (`CREDENTIALS_GRPC_URL`).
    pub credentials_grpc_url: String,
    /// svc-skills' gRPC endpoint (`SKILLS_GRPC_URL`).
    pub skills_grpc_url: String,
    /// svc-queue's gRPC endpoint (`QUEUE_GRPC_URL`).
    pub queue_grpc_url: String,
    /// Origins allowed to call from a browser; `["*"]` allows any origin without credentials.
    pub cors_allowed_origins: Vec<String>,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ProxyRange>,
    pub body_limit_bytes: usize,
    pub upload_limit_bytes: usize,
    /// Deadline of each gRPC call.
    pub upstream_timeout: Duration,
    pub connect_timeout: Duration,
    /// Deadline of a quota check (`Usage.Consume`); past it the check fails closed.
    pub quota_timeout: Duration,
    /// How long a resolved user (role, tier, status) is reused; zero resolves on every request.
    pub resolve_cache_ttl: Duration,
    /// Registrations per client address.
    pub register_limit: RateLimit,
    /// Logins per client address.
    pub login_limit: RateLimit,
    /// Logins per account (email).
    pub login_email_limit: RateLimit,
    /// Where the rate limits are shared across replicas; none: each replica counts alone.
    pub redis_url: Option<Secret>,
    /// Start of every key this gateway writes in Redis, so that deployments can share one.
    pub redis_key_prefix: String,
    /// Deadline of each Redis call; past it the local count answers.
    pub redis_timeout: Duration,
    pub jwt_leeway: Duration,
}

/// At most `count` attempts in any `window`.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    pub count: u32,
    pub window: Duration,
}

impl RateLimit {
    const fn new(count: u32, window_secs: u64) -> Self {
        Self {
            count,
            window: Duration::from_secs(window_secs),
        }
    }

    fn from_env(prefix: &str, default: RateLimit) -> Result<Self, ConfigError> {
        Ok(Self {
            count: config::var(&format!("{prefix}_LIMIT"), default.count)?,
            window: Duration::from_secs(config::var(
                &format!("{prefix}_WINDOW_SECS"),
                default.window.as_secs(),
            )?),
        })
    }

    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        if self.count == 0 {
            return Err(ConfigError::new(
                &format!("{prefix}_LIMIT"),
                "must be at least 1",
            ));
        }
        if self.window.is_zero() {
            return Err(ConfigError::new(
                &format!("{prefix}_WINDOW_SECS"),
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

pub const DEFAULT_ADDR: SocketAddr =
    SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 3001);
pub const DEFAULT_AUTH_GRPC_URL: &str = "http://127.0.0.1:50051";
pub const DEFAULT_USAGE_GRPC_URL: &str = "http://127.0.0.1:50052";
pub const DEFAULT_CREDENTIALS_GRPC_URL: &str = "http://127.0.0.1:50053";
pub const DEFAULT_SKILLS_GRPC_URL: &str = "http://127.0.0.1:50055";
pub const DEFAULT_QUEUE_GRPC_URL: &str = "http://127.0.0.1:50056";
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;
pub const DEFAULT_UPLOAD_LIMIT: usize = 5 * 1024 * 1024;
pub const DEFAULT_UPSTREAM_TIMEOUT_MS: u64 = 10_000;
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 1_000;
pub const DEFAULT_QUOTA_TIMEOUT_MS: u64 = 2_000;
pub const DEFAULT_RESOLVE_CACHE_SECS: u64 = 30;
pub const DEFAULT_REGISTER_LIMIT: RateLimit = RateLimit::new(10, 900);
pub const DEFAULT_LOGIN_LIMIT: RateLimit = RateLimit::new(30, 60);
pub const DEFAULT_LOGIN_EMAIL_LIMIT: RateLimit = RateLimit::new(10, 300);
pub const DEFAULT_REDIS_KEY_PREFIX: &str = "genie";
pub const DEFAULT_REDIS_TIMEOUT_MS: u64 = 100;
pub const DEFAULT_JWT_LEEWAY_SECS: u64 = 30;

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let trusted_proxies = config::list("TRUSTED_PROXIES")
            .iter()
            .enumerate()
            .map(|(index, item)| {
                item.parse().map_err(|_| {
                    ConfigError::new(
                        "TRUSTED_PROXIES",
                        format!("item {} is not an IP address or a CIDR range", index + 1),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let config = Self {
            addr: config::var("GATEWAY_ADDR", DEFAULT_ADDR)?,
            directus_secret: config::secret("DIRECTUS_SECRET", 32)?,
            internal_token: config::secret("INTERNAL_TOKEN", 32)?,
            rbac_sync_secret: config::secret("RBAC_SYNC_WEBHOOK_SECRET", 16)?,
            auth_grpc_url: config::var("AUTH_GRPC_URL", DEFAULT_AUTH_GRPC_URL.to_owned())?,
            usage_grpc_url: config::var("USAGE_GRPC_URL", DEFAULT_USAGE_GRPC_URL.to_owned())?,
            credentials_grpc_url: config::var(
                "CREDENTIALS_GRPC_URL",
                DEFAULT_CREDENTIALS_GRPC_URL.to_owned(),
            )?,
            skills_grpc_url: config::var("SKILLS_GRPC_URL", DEFAULT_SKILLS_GRPC_URL.to_owned())?,
            queue_grpc_url: config::var("QUEUE_GRPC_URL", DEFAULT_QUEUE_GRPC_URL.to_owned())?,
            cors_allowed_origins: config::list("CORS_ALLOWED_ORIGINS")
                .into_iter()
                .map(|origin| origin.trim_end_matches('/').to_owned())
                .collect(),
            trusted_proxies,
            body_limit_bytes: config::var("GATEWAY_BODY_LIMIT_BYTES", DEFAULT_BODY_LIMIT)?,
            upload_limit_bytes: config::var("GATEWAY_UPLOAD_LIMIT_BYTES", DEFAULT_UPLOAD_LIMIT)?,
            upstream_timeout: config::millis(
                "GATEWAY_UPSTREAM_TIMEOUT_MS",
                DEFAULT_UPSTREAM_TIMEOUT_MS,
            )?,
            connect_timeout: config::millis(
                "GATEWAY_CONNECT_TIMEOUT_MS",
                DEFAULT_CONNECT_TIMEOUT_MS,
            )?,
            quota_timeout: config::millis("GATEWAY_QUOTA_TIMEOUT_MS", DEFAULT_QUOTA_TIMEOUT_MS)?,
            resolve_cache_ttl: Duration::from_secs(config::var(
                "GATEWAY_RESOLVE_CACHE_SECS",
                DEFAULT_RESOLVE_CACHE_SECS,
            )?),
            register_limit: RateLimit::from_env("GATEWAY_REGISTER", DEFAULT_REGISTER_LIMIT)?,
            login_limit: RateLimit::from_env("GATEWAY_LOGIN", DEFAULT_LOGIN_LIMIT)?,
            login_email_limit: RateLimit::from_env(
                "GATEWAY_LOGIN_EMAIL",
                DEFAULT_LOGIN_EMAIL_LIMIT,
            )?,
            redis_url: config::optional("REDIS_URL")?,
            redis_key_prefix: config::var("REDIS_KEY_PREFIX", DEFAULT_REDIS_KEY_PREFIX.to_owned())?,
            redis_timeout: config::millis("REDIS_TIMEOUT_MS", DEFAULT_REDIS_TIMEOUT_MS)?,
            jwt_leeway: Duration::from_secs(config::var(
                "JWT_LEEWAY_SECS",
                DEFAULT_JWT_LEEWAY_SECS,
            )?),
        };
        config.validate()?;
        Ok(config)
    }

    /// Local defaults for everything but svc-auth's URL and the secrets (svc-usage and
    /// svc-credentials at their default URLs); tests adjust the fields.
    pub fn local(
        auth_grpc_url: String,
        directus_secret: Secret,
        internal_token: Secret,
        rbac_sync_secret: Secret,
    ) -> Self {
        Self {
            addr: DEFAULT_ADDR,
            directus_secret,
            internal_token,
            rbac_sync_secret,
            auth_grpc_url,
            usage_grpc_url: DEFAULT_USAGE_GRPC_URL.to_owned(),
            credentials_grpc_url: DEFAULT_CREDENTIALS_GRPC_URL.to_owned(),
            skills_grpc_url: DEFAULT_SKILLS_GRPC_URL.to_owned(),
            queue_grpc_url: DEFAULT_QUEUE_GRPC_URL.to_owned(),
            cors_allowed_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            body_limit_bytes: DEFAULT_BODY_LIMIT,
            upload_limit_bytes: DEFAULT_UPLOAD_LIMIT,
            upstream_timeout: Duration::from_millis(DEFAULT_UPSTREAM_TIMEOUT_MS),
            connect_timeout: Duration::from_millis(DEFAULT_CONNECT_TIMEOUT_MS),
            quota_timeout: Duration::from_millis(DEFAULT_QUOTA_TIMEOUT_MS),
            resolve_cache_ttl: Duration::from_secs(DEFAULT_RESOLVE_CACHE_SECS),
            register_limit: DEFAULT_REGISTER_LIMIT,
            login_limit: DEFAULT_LOGIN_LIMIT,
            login_email_limit: DEFAULT_LOGIN_EMAIL_LIMIT,
            redis_url: None,
            redis_key_prefix: DEFAULT_REDIS_KEY_PREFIX.to_owned(),
            redis_timeout: Duration::from_millis(DEFAULT_REDIS_TIMEOUT_MS),
            jwt_leeway: Duration::from_secs(DEFAULT_JWT_LEEWAY_SECS),
        }
    }

    /// Checks the rules the types cannot express. The fields are public (tests build a `Config`
    /// by hand), so `build` checks again.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let secrets = [
            ("DIRECTUS_SECRET", &self.directus_secret, 32),
            ("INTERNAL_TOKEN", &self.internal_token, 32),
            ("RBAC_SYNC_WEBHOOK_SECRET", &self.rbac_sync_secret, 16),
        ];
        for (variable, secret, min_len) in secrets {
            if secret.expose().len() < min_len {
                return Err(ConfigError::new(
                    variable,
                    format!("must be at least {min_len} bytes long"),
                ));
            }
        }
        if self.resolve_cache_ttl > MAX_RESOLVE_CACHE {
            return Err(ConfigError::new(
                "GATEWAY_RESOLVE_CACHE_SECS",
                "must be between 0 and 30",
            ));
        }
        if self.jwt_leeway > MAX_JWT_LEEWAY {
            return Err(ConfigError::new(
                "JWT_LEEWAY_SECS",
                "must be between 0 and 30",
            ));
        }
        let positive = [
            ("GATEWAY_BODY_LIMIT_BYTES", self.body_limit_bytes == 0),
            ("GATEWAY_UPLOAD_LIMIT_BYTES", self.upload_limit_bytes == 0),
            (
                "GATEWAY_UPSTREAM_TIMEOUT_MS",
                self.upstream_timeout.is_zero(),
            ),
            ("GATEWAY_CONNECT_TIMEOUT_MS", self.connect_timeout.is_zero()),
            ("GATEWAY_QUOTA_TIMEOUT_MS", self.quota_timeout.is_zero()),
            ("REDIS_TIMEOUT_MS", self.redis_timeout.is_zero()),
        ];
        if let Some((variable, _)) = positive.iter().find(|(_, zero)| *zero) {
            return Err(ConfigError::new(variable, "must be greater than 0"));
        }
        self.register_limit.validate("GATEWAY_REGISTER")?;
        self.login_limit.validate("GATEWAY_LOGIN")?;
        self.login_email_limit.validate("GATEWAY_LOGIN_EMAIL")?;
        for (index, origin) in self.cors_allowed_origins.iter().enumerate() {
            if !valid_origin(origin) {
                return Err(ConfigError::new(
                    "CORS_ALLOWED_ORIGINS",
                    format!(
                        "item {} must be * or scheme://host[:port] (http or https, no path)",
                        index + 1
                    ),
                ));
            }
        }
        if self.cors_allowed_origins.len() > 1 && self.cors_allowed_origins.iter().any(|o| o == "*")
        {
            return Err(ConfigError::new(
                "CORS_ALLOWED_ORIGINS",
                "* allows every origin and cannot be combined with a list",
            ));
        }
        Ok(())
    }

    /// Whether browsers from any origin may call (credentials never allowed then).
    pub fn cors_permissive(&self) -> bool {
        self.cors_allowed_origins.iter().any(|origin| origin == "*")
    }
}

fn valid_origin(origin: &str) -> bool {
    if origin == "*" {
        return true;
    }
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https")
        && !rest.is_empty()
        && !rest.contains(['/', '?', '#', '@', ' '])
}

/// One trusted proxy: an address, or a CIDR range of them (`10.0.0.0/8`), so that proxies with
/// changing addresses (Kubernetes ingress pods) can be trusted as a subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyRange {
    network: IpAddr,
    prefix: u8,
}

impl ProxyRange {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl From<IpAddr> for ProxyRange {
    fn from(ip: IpAddr) -> Self {
        let ip = ip.to_canonical();
        Self {
            network: ip,
            prefix: if ip.is_ipv4() { 32 } else { 128 },
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("not an IP address or CIDR range")]
pub struct ProxyRangeError;

impl FromStr for ProxyRange {
    type Err = ProxyRangeError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let (address, prefix) = match value.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (value, None),
        };
        let network: IpAddr = address.trim().parse().map_err(|_| ProxyRangeError)?;
        let range = Self::from(network);
        let Some(prefix) = prefix else {
            return Ok(range);
        };
        let prefix: u8 = prefix.trim().parse().map_err(|_| ProxyRangeError)?;
        if prefix > range.prefix {
            return Err(ProxyRangeError);
        }
        Ok(Self {
            network: range.network,
            prefix,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::local(
            DEFAULT_AUTH_GRPC_URL.into(),
            Secret::new("d".repeat(32)),
            Secret::new("i".repeat(32)),
            Secret::new("r".repeat(16)),
        )
    }

    #[test]
    fn local_defaults_are_valid() {
        config().validate().unwrap();
    }

    #[test]
    fn out_of_range_values_name_their_variable() {
        let mut too_long_cache = config();
        too_long_cache.resolve_cache_ttl = Duration::from_secs(31);
        let err = too_long_cache.validate().unwrap_err();
        assert_eq!(err.variable, "GATEWAY_RESOLVE_CACHE_SECS");

        let mut leeway = config();
        leeway.jwt_leeway = Duration::from_secs(60);
        assert_eq!(leeway.validate().unwrap_err().variable, "JWT_LEEWAY_SECS");

        let mut short = config();
        short.rbac_sync_secret = Secret::new("short");
        let err = short.validate().unwrap_err();
        assert_eq!(err.variable, "RBAC_SYNC_WEBHOOK_SECRET");
        assert!(!err.to_string().contains("short"));

        let mut no_limit = config();
        no_limit.register_limit.count = 0;
        assert_eq!(
            no_limit.validate().unwrap_err().variable,
            "GATEWAY_REGISTER_LIMIT"
        );

        let mut origin = config();
        origin.cors_allowed_origins = vec!["https://app.example.com/path".into()];
        assert_eq!(
            origin.validate().unwrap_err().variable,
            "CORS_ALLOWED_ORIGINS"
        );
        origin.cors_allowed_origins = vec!["https://app.example.com:8443".into()];
        origin.validate().unwrap();
        origin.cors_allowed_origins = vec!["*".into(), "https://a.example".into()];
        assert!(origin.validate().is_err());

        let mut quota = config();
        quota.quota_timeout = Duration::ZERO;
        assert_eq!(
            quota.validate().unwrap_err().variable,
            "GATEWAY_QUOTA_TIMEOUT_MS"
        );
    }

    #[test]
    fn proxy_ranges_match_addresses_and_subnets() {
        let single: ProxyRange = "10.0.0.7".parse().unwrap();
        assert!(single.contains("10.0.0.7".parse().unwrap()));
        assert!(!single.contains("10.0.0.8".parse().unwrap()));
        assert!(single.contains("::ffff:10.0.0.7".parse().unwrap()));

        let subnet: ProxyRange = "10.1.0.0/16".parse().unwrap();
        assert!(subnet.contains("10.1.200.3".parse().unwrap()));
        assert!(!subnet.contains("10.2.0.1".parse().unwrap()));

        let v6: ProxyRange = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("10.1.0.1".parse().unwrap()));

        let everything: ProxyRange = "0.0.0.0/0".parse().unwrap();
        assert!(everything.contains("192.0.2.1".parse().unwrap()));

        for bad in ["10.0.0.0/33", "proxy.local", "10.0.0.0/x", ""] {
            assert!(bad.parse::<ProxyRange>().is_err(), "{bad}");
        }
    }
}
