//! The hourly deletion of rows nothing needs any more (expired sessions, old idempotency keys,
//! sent outbox rows), written once for every service that keeps such rows.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

/// Runs `sweep` once an hour, for ever, logging what it removed; `what` names the rows
/// ("expired refresh sessions"). A failed sweep is logged and tried again the next hour.
pub async fn hourly<F, Fut, E>(what: &'static str, mut sweep: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<u64, E>>,
    E: Display,
{
    let mut every_hour = tokio::time::interval(Duration::from_secs(3600));
    loop {
        every_hour.tick().await;
        match sweep().await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "{what} removed"),
            Err(err) => tracing::warn!(error = %err, "cannot remove {what}"),
        }
    }
}
