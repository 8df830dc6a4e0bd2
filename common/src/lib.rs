//! Shared plumbing of every Genie service. A service is built from these pieces and nothing
//! service-specific lives here.

pub mod config;
pub mod db;
pub mod error;
pub mod grpc;
pub mod identity;
pub mod quota;
pub mod secret;
pub mod shutdown;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::{ApiError, Kind};
pub use identity::{Identity, Principal};
