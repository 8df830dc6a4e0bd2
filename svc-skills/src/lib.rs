//! svc-skills: the agent skills catalogue. Skills by category and tags, full-text search that
//! survives typos, the graph of related skills, and activation for a task after ACT-R (base
//! level from the user's own history plus activation spread from the task's words over the
//! graph), every score explained. Owns the `skills` schema.

pub mod activation;
pub mod catalogue;
pub mod config;
pub mod error;
pub mod grpc;
pub mod service;
pub mod store;
pub mod text;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use proto::skills::v1::skills_server::SkillsServer;
use tokio::net::TcpListener;

pub use common::clock::{Clock, SystemClock};
pub use config::Config;
pub use service::{ImportReport, SkillsService};

mod embedded {
    refinery::embed_migrations!("migrations");
}

pub const SCHEMA: &str = "skills";

pub async fn migrate(database_url: &str) -> anyhow::Result<()> {
    common::db::migrate(database_url, SCHEMA, embedded::migrations::runner()).await?;
    Ok(())
}

fn service(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<SkillsService> {
    let pool = common::db::pool(
        &config.database_url,
        config.database_pool_size,
        &config.database,
    )?;
    Ok(SkillsService::new(pool, clock))
}

/// Runs the gRPC server on `listener` until `shutdown` resolves, reading time from `clock`.
pub async fn run_with_clock(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<()> {
    migrate(&config.database_url).await?;
    let service = Arc::new(service(&config, clock)?);
    if config.seed
        && let Some(report) = service.seed_if_empty().await?
    {
        tracing::info!(
            created = report.created.len(),
            "shipped skills catalogue imported"
        );
    }
    let skills = SkillsServer::new(grpc::SkillsGrpc::new(service));
    let setup = common::grpc::Setup {
        name: "svc-skills",
        database_url: &config.database_url,
        database: &config.database,
        internal_token: &config.internal_token,
        settings: &config.server,
    };
    common::grpc::serve(listener, skills, setup, shutdown).await?;
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

/// `genie import-skills DIR`: every `*.md` under `dir`, imported in one transaction.
pub async fn import_dir(config: &Config, dir: &Path) -> anyhow::Result<ImportReport> {
    migrate(&config.database_url).await?;
    let documents = catalogue::read_dir(dir)
        .map_err(|err| anyhow::anyhow!("cannot read {}: {err}", dir.display()))?;
    anyhow::ensure!(
        !documents.is_empty(),
        "no *.md files under {}",
        dir.display()
    );
    let service = service(config, Arc::new(SystemClock))?;
    let report = service
        .import(&documents)
        .await
        .map_err(|err| anyhow::anyhow!(common::ApiError::from(err).message))?;
    Ok(report)
}
