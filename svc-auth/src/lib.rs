//! svc-auth: identity for the Genie platform. Directus-compatible access and refresh tokens,
//! users and roles, invite-gated registration, the onboarding state machine, the RBAC sync
//! webhook, audited impersonation and user profiles. Owns the `auth` schema.

pub mod config;
pub mod directus;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod password;
pub mod service;
pub mod store;
pub mod tokens;

use std::future::Future;
use std::sync::Arc;

use proto::auth::v1::auth_server::AuthServer;
use tokio::net::TcpListener;

use common::clock::{Clock, SystemClock};
pub use config::Config;
pub use service::AuthService;

mod embedded {
    refinery::embed_migrations!("migrations");
}

pub const SCHEMA: &str = "auth";

/// Applies svc-auth's migrations (idempotent; safe with several replicas starting at once).
pub async fn migrate(database_url: &str) -> anyhow::Result<()> {
    common::db::migrate(database_url, SCHEMA, embedded::migrations::runner()).await?;
    Ok(())
}

/// Migrates, prepares the service (first administrator, pool) and returns it; every expiry and
/// token lifetime is measured on `clock`.
pub async fn prepare(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Arc<AuthService>> {
    migrate(&config.database_url).await?;
    let pool = common::db::pool(
        &config.database_url,
        config.database_pool_size,
        &config.database,
    )?;
    let service = Arc::new(AuthService::new(config, pool, clock)?);
    match &config.admin {
        Some(_) if service.is_directus_mode() => {
            tracing::info!(
                "directus mode: administrators live in Directus; ADMIN_EMAIL is not created here"
            );
        }
        Some((email, password)) => service
            .ensure_admin(email, password.expose())
            .await
            .map_err(|err| {
                anyhow::anyhow!(
                    "cannot create the first administrator from ADMIN_EMAIL/ADMIN_PASSWORD: {err}"
                )
            })?,
        None => {}
    }
    Ok(service)
}

/// Runs the gRPC server on `listener` until `shutdown` resolves, reading time from `clock`.
pub async fn run_with_clock(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<()> {
    let service = prepare(&config, clock).await?;
    // Expired refresh sessions are useless; sweep them hourly so the table stays small.
    let sweeper = Arc::clone(&service);
    tokio::spawn(common::sweep::hourly(
        "expired refresh sessions",
        move || {
            let service = Arc::clone(&sweeper);
            async move { service.delete_expired_sessions().await }
        },
    ));
    let auth = AuthServer::new(grpc::AuthGrpc::new(service));
    let setup = common::grpc::Setup {
        name: "svc-auth",
        database_url: &config.database_url,
        database: &config.database,
        internal_token: &config.internal_token,
        settings: &config.server,
    };
    common::grpc::serve(listener, auth, setup, shutdown).await?;
    Ok(())
}

/// Runs the gRPC server on `listener` until `shutdown` resolves.
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

/// Creates an invite on behalf of the administrator with `admin_email`, for the operator's CLI.
pub async fn create_invite(
    config: &Config,
    admin_email: &str,
    email: Option<String>,
    hours: Option<u32>,
) -> anyhow::Result<service::InviteCreated> {
    migrate(&config.database_url).await?;
    let pool = common::db::pool(&config.database_url, 1, &config.database)?;
    let service = AuthService::new(config, pool, Arc::new(SystemClock))?;
    let admin = service.admin_id(admin_email).await?;
    let email = email
        .map(|email| domain::normalize_email("--email", &email))
        .transpose()?;
    let hours = domain::check_invite_hours(hours)?;
    Ok(service.insert_invite(admin, email, hours).await?)
}
