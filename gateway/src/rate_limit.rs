//! The register rate limit: `GATEWAY_REGISTER_LIMIT` attempts per `GATEWAY_REGISTER_WINDOW_SECS`
//! per client address, counted in this process (one replica; docs/DESIGN.md §1 plans Redis for several).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use common::identity::Identity;
use common::{ApiError, Kind};
use futures_util::future::{Ready, ready};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::middleware::request_id;

/// Every this many checks, keys whose allowance has fully refilled are dropped, so that the map
/// holds only clients seen within about one window.
const HOUSEKEEPING_EVERY: u64 = 1024;

pub struct RegisterLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    checks: AtomicU64,
}

impl RegisterLimiter {
    /// `limit` attempts at once, refilling one every `window / limit`: never more than `limit`
    /// in any window.
    pub fn new(limit: u32, window: Duration) -> Self {
        let burst = NonZeroU32::new(limit).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(window / burst.get())
            .unwrap_or_else(|| Quota::per_second(burst))
            .allow_burst(burst);
        Self {
            limiter: RateLimiter::keyed(quota),
            checks: AtomicU64::new(0),
        }
    }

    /// Counts one attempt of `client`; refused attempts carry the seconds until the next allowed.
    pub fn check(&self, client: IpAddr) -> Result<(), ApiError> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % HOUSEKEEPING_EVERY
            == HOUSEKEEPING_EVERY - 1
        {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter.check_key(&key(client)).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.limiter.clock().now());
            let mut err = ApiError::new(
                Kind::RateLimited,
                "rate_limited",
                "too many registration attempts from this address, try again later",
            );
            err.retry_after_secs = Some(wait.as_secs_f64().ceil().max(1.0) as u64);
            err
        })
    }
}

/// One IPv6 subscriber usually holds a whole /64; counting per address would let them rotate.
fn key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & (u128::MAX << 64)).into()),
        v4 => v4,
    }
}

/// Extracting it counts one register attempt of the client (the caller is anonymous); as the
/// caller of an [`Input`](crate::kit::Input) the limit applies before the body is read.
pub struct RegisterAttempt(pub Identity);

impl FromRequest for RegisterAttempt {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = match crate::state::of_request(req) {
            Ok(state) => state,
            Err(err) => return ready(Err(err)),
        };
        let client = crate::client_ip::of_request(req, &state.config.trusted_proxies);
        ready(
            state
                .register_limiter
                .check(client)
                .map(|()| RegisterAttempt(Identity::anonymous(request_id(req)))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_attempt_after_the_limit_waits_for_the_window_to_refill() {
        let limiter = RegisterLimiter::new(10, Duration::from_secs(900));
        let client: IpAddr = "203.0.113.7".parse().unwrap();
        for attempt in 1..=10 {
            assert!(limiter.check(client).is_ok(), "attempt {attempt}");
        }
        let refused = limiter.check(client).unwrap_err();
        assert_eq!(refused.kind, Kind::RateLimited);
        assert_eq!(refused.reason, "rate_limited");
        let retry_after = refused.retry_after_secs.unwrap();
        assert!((1..=90).contains(&retry_after), "{retry_after}");

        let other: IpAddr = "203.0.113.8".parse().unwrap();
        assert!(limiter.check(other).is_ok(), "clients are counted apart");
    }

    #[test]
    fn one_ipv6_subnet_is_one_client() {
        let limiter = RegisterLimiter::new(2, Duration::from_secs(60));
        assert!(limiter.check("2001:db8::1".parse().unwrap()).is_ok());
        assert!(limiter.check("2001:db8::2".parse().unwrap()).is_ok());
        assert!(limiter.check("2001:db8::3".parse().unwrap()).is_err());
        assert!(limiter.check("2001:db8:0:1::1".parse().unwrap()).is_ok());
    }
}
