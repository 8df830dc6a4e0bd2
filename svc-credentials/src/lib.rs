//! svc-credentials: the vault for creators' platform logins, captured browser sessions and other
//! secrets. AES-256-GCM (ring) under versioned keys, each ciphertext bound to its table, row and
//! field; every reveal audited; records rotated to the newest key live. Creating a creator
//! profile takes a unit of the tier's `platforms` gauge at svc-usage first (fail-closed). Owns
//! the `credentials` schema.

pub mod config;
pub mod crypto;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod rotate;
pub mod service;
pub mod store;

use std::future::Future;
use std::sync::Arc;

use common::quota::QuotaClient;
use proto::credentials::v1::credentials_server::CredentialsServer;
use tokio::net::TcpListener;

pub use config::Config;
pub use service::VaultService;

mod embedded {
    refinery::embed_migrations!("migrations");
}

pub const SCHEMA: &str = "credentials";

pub async fn migrate(database_url: &str) -> anyhow::Result<()> {
    common::db::migrate(database_url, SCHEMA, embedded::migrations::runner()).await?;
    Ok(())
}

/// Runs the gRPC server on `listener` until `shutdown` resolves. Start-up stops when a configured
/// key version's key is not the one the vault recorded under it.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    migrate(&config.database_url).await?;
    let pool = common::db::pool(
        &config.database_url,
        config.database_pool_size,
        &config.database,
    )?;
    let keys = Arc::new(config.keys);
    rotate::register_keys(&pool, &keys).await?;
    let usage = common::grpc::lazy_channel(
        "USAGE_GRPC_URL",
        &config.usage_grpc_url,
        config.database.connect_timeout,
    )?;
    let quota = QuotaClient::new(usage, config.internal_token.clone(), config.quota_timeout);
    let service = Arc::new(VaultService::new(
        pool,
        keys,
        config.max_secret_bytes,
        quota,
    ));
    let credentials = CredentialsServer::new(grpc::CredentialsGrpc::new(service));
    let setup = common::grpc::Setup {
        name: "svc-credentials",
        database_url: &config.database_url,
        database: &config.database,
        internal_token: &config.internal_token,
        settings: &config.server,
    };
    common::grpc::serve(listener, credentials, setup, shutdown).await?;
    Ok(())
}

/// Re-seals every record under the newest key, beside a running service (see [`rotate`]).
/// Migrates first and refuses keys that differ from the ones recorded, exactly as start-up does.
pub async fn rotate_keys(
    config: config::RotateConfig,
    progress: impl FnMut(&'static str, u64),
) -> anyhow::Result<rotate::RotationReport> {
    migrate(&config.database_url).await?;
    let pool = common::db::pool(&config.database_url, 2, &config.database)?;
    rotate::register_keys(&pool, &config.keys).await?;
    Ok(rotate::rotate_all(&pool, &config.keys, config.batch, progress).await?)
}

/// Binds the configured address and runs until SIGTERM or Ctrl-C.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.grpc_addr).await?;
    run(config, listener, common::shutdown::signal()).await
}
