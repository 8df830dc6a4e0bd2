//! The time that time-dependent rules read (billing cycles, expiries, token lifetimes), injected
//! so that tests can move it instead of waiting. Services take an `Arc<dyn Clock>`; production
//! passes [`SystemClock`].

use chrono::{DateTime, Utc};

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The operating system's clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
