//! svc-usage: the quota ledger. Tier limits per billing cycle, consumed atomically (one
//! conditional upsert, never over the limit), idempotently (a retry with the same key gets the
//! first answer), refunded exactly once, with an append-only ledger. Owns the `usage` schema.

pub mod config;
pub mod cycle;
pub mod error;
pub mod grpc;
pub mod service;
pub mod store;
pub mod tiers;

use std::future::Future;
use std::sync::Arc;

use proto::usage::v1::usage_server::UsageServer;
use tokio::net::TcpListener;

pub use common::clock::{Clock, SystemClock};
pub use config::Config;
pub use service::UsageService;

mod embedded {
    refinery::embed_migrations!("migrations");
}

pub const SCHEMA: &str = "usage";

pub async fn migrate(database_url: &str) -> anyhow::Result<()> {
    common::db::migrate(database_url, SCHEMA, embedded::migrations::runner()).await?;
    Ok(())
}

/// Runs the gRPC server on `listener` until `shutdown` resolves, reading time from `clock`.
pub async fn run_with_clock(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<()> {
    migrate(&config.database_url).await?;
    let pool = common::db::pool(
        &config.database_url,
        config.database_pool_size,
        &config.database,
    )?;
    let tiers = match &config.tiers {
        Some(tiers) => tiers.clone(),
        None => tiers::Tiers::shipped().map_err(anyhow::Error::msg)?,
    };
    let service = Arc::new(UsageService::new(pool, tiers, clock));
    // Idempotency keys past their time are only weight; sweep them hourly.
    let ttl = config.idempotency_ttl;
    let sweeper = Arc::clone(&service);
    tokio::spawn(common::sweep::hourly("old idempotency keys", move || {
        let service = Arc::clone(&sweeper);
        async move { service.delete_old_keys(ttl).await }
    }));
    let usage = UsageServer::new(grpc::UsageGrpc::new(service));
    let setup = common::grpc::Setup {
        name: "svc-usage",
        database_url: &config.database_url,
        database: &config.database,
        internal_token: &config.internal_token,
        settings: &config.server,
    };
    common::grpc::serve(listener, usage, setup, shutdown).await?;
    Ok(())
}

pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    run_with_clock(config, listener, shutdown, Arc::new(SystemClock)).await
}

/// Binds the configured address and runs until SIGTERM or Ctrl-C.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.grpc_addr).await?;
    run(config, listener, common::shutdown::signal()).await
}
