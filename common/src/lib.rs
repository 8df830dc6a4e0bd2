//! Shared plumbing of every Genie service. A service is built from these pieces and nothing
//! service-specific lives here.

pub mod clock;
pub mod config;
pub mod db;
pub mod error;
pub mod grpc;
pub mod identity;
pub mod quota;
pub mod secret;
pub mod shutdown;
pub mod sql;
pub mod sweep;
pub mod telemetry;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use error::{ApiError, Kind};
pub use identity::{Identity, Principal};

/// What the macros of this crate name, so that a crate using them needs no dependency of its own.
#[doc(hidden)]
pub mod __private {
    pub use deadpool_postgres;
    pub use tokio_postgres;
    pub use tonic;
}
