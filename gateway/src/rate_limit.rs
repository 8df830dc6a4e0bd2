//! Rate limits of the anonymous entry points: registrations per client address, logins per client
//! address and per email. With `REDIS_URL` set, the counts live in Redis and every gateway replica
//! shares them; otherwise (or while Redis cannot be reached) each replica counts on its own.
//!
//! Both counters are GCRA (generic cell rate algorithm): `limit` attempts at once, refilling one
//! every `window / limit`, so never more than `limit` in any window. In Redis one key per client
//! holds its theoretical arrival time, updated by one script call (atomic across replicas).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use common::identity::Identity;
use common::{ApiError, Kind};
use futures_util::future::LocalBoxFuture;
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use redis::aio::ConnectionManager;

use crate::config::{Config, RateLimit};
use crate::directus::DirectusError;
use crate::middleware::request_id;

/// Every this many checks, keys whose allowance has fully refilled are dropped, so that a local
/// counter holds only clients seen within about one window.
const HOUSEKEEPING_EVERY: u64 = 1024;

/// After Redis fails, it is not asked again for this long: the local counters answer meanwhile.
const REDIS_RETRY_AFTER: Duration = Duration::from_secs(5);

/// GCRA over one key: `KEYS[1]` holds the theoretical arrival time in microseconds of Redis'
/// clock; `ARGV[1]` the emission interval and `ARGV[2]` the burst, both in microseconds.
/// Answers 0 when allowed, else the microseconds to wait.
const GCRA: &str = r"
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000000 + tonumber(now[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local next_tat = tat + interval
local wait = next_tat - burst - now
if wait > 0 then return wait end
redis.call('SET', KEYS[1], next_tat, 'PX', math.ceil((next_tat - now) / 1000))
return 0
";

/// One limit: its name (part of the Redis key), what the refusal says, and its local counter.
pub struct Limit {
    name: &'static str,
    refusal: &'static str,
    interval: Duration,
    burst: Duration,
    local: DefaultKeyedRateLimiter<String>,
    checks: AtomicU64,
}

impl Limit {
    fn new(name: &'static str, refusal: &'static str, limit: RateLimit) -> Self {
        let count = NonZeroU32::new(limit.count).unwrap_or(NonZeroU32::MIN);
        let interval = limit.window / count.get();
        let quota = Quota::with_period(interval)
            .unwrap_or_else(|| Quota::per_second(count))
            .allow_burst(count);
        Self {
            name,
            refusal,
            interval,
            burst: interval * count.get(),
            local: RateLimiter::keyed(quota),
            checks: AtomicU64::new(0),
        }
    }

    fn refused(&self, wait: Duration) -> ApiError {
        let mut err = ApiError::new(Kind::RateLimited, "rate_limited", self.refusal);
        err.retry_after_secs = Some(wait.as_secs_f64().ceil().max(1.0) as u64);
        err
    }

    fn check_locally(&self, key: &str) -> Result<(), ApiError> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % HOUSEKEEPING_EVERY
            == HOUSEKEEPING_EVERY - 1
        {
            self.local.retain_recent();
            self.local.shrink_to_fit();
        }
        self.local
            .check_key(&key.to_owned())
            .map_err(|not_until| self.refused(not_until.wait_time_from(self.local.clock().now())))
    }
}

/// The counters in Redis, with the local ones standing in while Redis fails.
struct Shared {
    connection: ConnectionManager,
    prefix: String,
    timeout: Duration,
    script: redis::Script,
    started: Instant,
    /// Milliseconds since `started` before which Redis is not asked again.
    skip_until_ms: AtomicU64,
    degraded: AtomicBool,
}

impl Shared {
    fn is_skipped(&self) -> bool {
        self.started.elapsed().as_millis() < u128::from(self.skip_until_ms.load(Ordering::Relaxed))
    }

    async fn wait(&self, limit: &Limit, key: &str) -> Result<Duration, String> {
        let mut connection = self.connection.clone();
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(format!("{}:limit:{}:{key}", self.prefix, limit.name))
            .arg(limit.interval.as_micros() as u64)
            .arg(limit.burst.as_micros() as u64);
        match tokio::time::timeout(
            self.timeout,
            invocation.invoke_async::<u64>(&mut connection),
        )
        .await
        {
            Ok(Ok(wait_us)) => Ok(Duration::from_micros(wait_us)),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => Err(format!("no answer within {} ms", self.timeout.as_millis())),
        }
    }

    fn failed(&self, problem: &str) {
        let retry_at = self.started.elapsed() + REDIS_RETRY_AFTER;
        self.skip_until_ms
            .store(retry_at.as_millis() as u64, Ordering::Relaxed);
        if !self.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                problem,
                "Redis cannot be reached: rate limits are counted by this replica alone until it returns"
            );
        }
    }

    fn answered(&self) {
        if self.degraded.swap(false, Ordering::Relaxed) {
            tracing::info!("Redis is back: rate limits are shared again");
        }
    }
}

pub struct Limits {
    pub register_by_address: Limit,
    pub login_by_address: Limit,
    pub login_by_email: Limit,
    shared: Option<Shared>,
}

impl Limits {
    /// Makes no connection: with `REDIS_URL` set, Redis is reached on the first check.
    pub fn new(config: &Config) -> Result<Self, common::config::ConfigError> {
        let shared = match &config.redis_url {
            None => None,
            Some(url) => {
                let invalid = |err: redis::RedisError| {
                    common::config::ConfigError::new("REDIS_URL", format!("{:?}", err.kind()))
                };
                let client = redis::Client::open(url.expose()).map_err(invalid)?;
                let settings = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(config.redis_timeout))
                    .set_response_timeout(Some(config.redis_timeout))
                    .set_number_of_retries(1);
                Some(Shared {
                    connection: ConnectionManager::new_lazy_with_config(client, settings)
                        .map_err(invalid)?,
                    prefix: config.redis_key_prefix.clone(),
                    timeout: config.redis_timeout,
                    script: redis::Script::new(GCRA),
                    started: Instant::now(),
                    skip_until_ms: AtomicU64::new(0),
                    degraded: AtomicBool::new(false),
                })
            }
        };
        Ok(Self {
            register_by_address: Limit::new(
                "register",
                "too many registration attempts from this address, try again later",
                config.register_limit,
            ),
            login_by_address: Limit::new(
                "login",
                "too many login attempts from this address, try again later",
                config.login_limit,
            ),
            login_by_email: Limit::new(
                "login_email",
                "too many login attempts for this account, try again later",
                config.login_email_limit,
            ),
            shared,
        })
    }

    /// Counts one attempt of `key` against `limit`; a refusal carries the seconds to wait.
    pub async fn check(&self, limit: &Limit, key: &str) -> Result<(), ApiError> {
        if let Some(shared) = self.shared.as_ref().filter(|shared| !shared.is_skipped()) {
            match shared.wait(limit, key).await {
                Ok(wait) if wait.is_zero() => {
                    shared.answered();
                    return Ok(());
                }
                Ok(wait) => {
                    shared.answered();
                    return Err(limit.refused(wait));
                }
                Err(problem) => shared.failed(&problem),
            }
        }
        limit.check_locally(key)
    }
}

/// One IPv6 subscriber usually holds a whole /64; counting per address would let them rotate.
fn address_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & (u128::MAX << 64)).into()).to_string(),
        v4 => v4.to_string(),
    }
}

/// The key of an account: a digest of the normalised email, so that Redis holds no addresses.
pub fn email_key(email: &str) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        email.trim().to_lowercase().as_bytes(),
    );
    digest.as_ref()[..16]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Counts one attempt of the requesting client's address against the limit `pick` chooses.
fn count_address(
    req: &HttpRequest,
    pick: fn(&Limits) -> &Limit,
) -> LocalBoxFuture<'static, Result<Identity, ApiError>> {
    let state = crate::state::of_request(req).cloned();
    let request_id = request_id(req);
    let client = state.as_ref().ok().map(|state| {
        address_key(crate::client_ip::of_request(
            req,
            &state.config.trusted_proxies,
        ))
    });
    Box::pin(async move {
        let state = state?;
        let client = client.unwrap_or_default();
        state.limits.check(pick(&state.limits), &client).await?;
        Ok(Identity::anonymous(request_id))
    })
}

/// Extracting it counts one register attempt of the client (the caller is anonymous); as the
/// caller of an [`Input`](crate::kit::Input) the limit applies before the body is read.
pub struct RegisterAttempt(pub Identity);

impl FromRequest for RegisterAttempt {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let counted = count_address(req, |limits| &limits.register_by_address);
        Box::pin(async move { counted.await.map(RegisterAttempt) })
    }
}

/// Extracting it counts one login attempt of the client's address, before the body is read; the
/// handler counts the account's attempt once it knows the email.
pub struct LoginAttempt(pub Identity);

impl FromRequest for LoginAttempt {
    // `/auth/login` answers in Directus' format, the refusal too.
    type Error = DirectusError;
    type Future = LocalBoxFuture<'static, Result<Self, DirectusError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let counted = count_address(req, |limits| &limits.login_by_address);
        Box::pin(async move { counted.await.map(LoginAttempt).map_err(DirectusError::from) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use common::secret::Secret;

    fn config(redis_url: Option<&str>) -> Config {
        let mut config = Config::local(
            "http://127.0.0.1:1".into(),
            Secret::new("a directus secret of at least 32 bytes"),
            Secret::new("an internal token of at least 32 bytes"),
            Secret::new("rbac sync secret"),
        );
        config.register_limit = RateLimit {
            count: 10,
            window: Duration::from_secs(900),
        };
        config.redis_url = redis_url.map(Secret::new);
        config.redis_key_prefix = format!("genie-test-{}", uuid::Uuid::new_v4().simple());
        config
    }

    #[tokio::test]
    async fn the_attempt_after_the_limit_waits_for_the_window_to_refill() {
        let limits = Limits::new(&config(None)).unwrap();
        let client = address_key("203.0.113.7".parse().unwrap());
        let limit = &limits.register_by_address;
        for attempt in 1..=10 {
            assert!(
                limits.check(limit, &client).await.is_ok(),
                "attempt {attempt}"
            );
        }
        let refused = limits.check(limit, &client).await.unwrap_err();
        assert_eq!(refused.kind, Kind::RateLimited);
        assert_eq!(refused.reason, "rate_limited");
        let retry_after = refused.retry_after_secs.unwrap();
        assert!((1..=90).contains(&retry_after), "{retry_after}");

        let other = address_key("203.0.113.8".parse().unwrap());
        assert!(
            limits.check(limit, &other).await.is_ok(),
            "clients are counted apart"
        );
    }

    #[test]
    fn one_ipv6_subnet_is_one_client() {
        assert_eq!(
            address_key("2001:db8::1".parse().unwrap()),
            address_key("2001:db8::2".parse().unwrap())
        );
        assert_ne!(
            address_key("2001:db8::1".parse().unwrap()),
            address_key("2001:db8:0:1::1".parse().unwrap())
        );
        assert_eq!(
            address_key("::ffff:203.0.113.7".parse().unwrap()),
            "203.0.113.7"
        );
    }

    #[test]
    fn an_email_key_is_a_digest_of_the_normalised_address() {
        assert_eq!(email_key(" Ada@Genie.test"), email_key("ada@genie.test"));
        assert_eq!(email_key("ada@genie.test").len(), 32);
        assert!(!email_key("ada@genie.test").contains("ada"));
    }

    /// Two replicas pointing at the real Redis share one count.
    #[tokio::test]
    async fn replicas_share_their_counts_through_redis() {
        let config = config(Some("redis://127.0.0.1:6379"));
        let (first, second) = (Limits::new(&config).unwrap(), Limits::new(&config).unwrap());
        let client = address_key("198.51.100.1".parse().unwrap());
        for attempt in 1..=5 {
            first
                .check(&first.register_by_address, &client)
                .await
                .unwrap_or_else(|err| panic!("attempt {attempt}: {err}"));
            second
                .check(&second.register_by_address, &client)
                .await
                .unwrap_or_else(|err| panic!("attempt {attempt}: {err}"));
        }
        let refused = first
            .check(&first.register_by_address, &client)
            .await
            .unwrap_err();
        assert_eq!(refused.reason, "rate_limited");
        assert!(refused.retry_after_secs.unwrap() >= 1);
        assert!(
            !first
                .shared
                .as_ref()
                .unwrap()
                .degraded
                .load(Ordering::Relaxed)
        );
    }

    /// Redis unreachable: each replica falls back to its own count, never failing open.
    #[tokio::test]
    async fn without_redis_each_replica_still_limits() {
        let limits = Limits::new(&config(Some("redis://127.0.0.1:1"))).unwrap();
        let client = address_key("198.51.100.2".parse().unwrap());
        let limit = &limits.register_by_address;
        for _ in 1..=10 {
            limits.check(limit, &client).await.unwrap();
        }
        assert!(limits.check(limit, &client).await.is_err());
        assert!(
            limits
                .shared
                .as_ref()
                .unwrap()
                .degraded
                .load(Ordering::Relaxed)
        );
    }
}
