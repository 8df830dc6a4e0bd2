//! PostgreSQL: a connection pool per service and embedded SQL migrations applied at start-up.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database URL is not valid: {0}")]
    Url(#[source] tokio_postgres::Error),
    #[error("cannot build the connection pool: {0}")]
    Pool(#[from] deadpool_postgres::BuildError),
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] tokio_postgres::Error),
    #[error("database error: {0}")]
    Query(#[from] tokio_postgres::Error),
    #[error("no database connection available: {0}")]
    Checkout(#[from] deadpool_postgres::PoolError),
    #[error("migration failed: {0}")]
    Migration(#[from] refinery::Error),
}

impl From<DbError> for crate::ApiError {
    /// A database that cannot be reached is a 503; anything else is logged here and answered
    /// as an internal error without details.
    fn from(err: DbError) -> Self {
        match err {
            DbError::Checkout(_) | DbError::Connect(_) => {
                tracing::warn!(error = %err, "database unavailable");
                crate::ApiError::unavailable("the database is unavailable, try again shortly")
            }
            // Every route checks its text for what PostgreSQL refuses; this is the net under
            // those checks (an internal caller, a field forgotten), so bad bytes are never a 500.
            DbError::Query(query) if refused_value(&query) => crate::ApiError::new(
                crate::Kind::InvalidArgument,
                "invalid_body",
                "a value holds characters the database cannot store (such as NUL)",
            ),
            other => {
                tracing::error!(error = %other, "database error");
                crate::ApiError::internal()
            }
        }
    }
}

/// Whether PostgreSQL refused a value itself: NUL in `text` or `jsonb`, bytes that are not UTF-8.
fn refused_value(err: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    err.code().is_some_and(|code| {
        [
            SqlState::CHARACTER_NOT_IN_REPERTOIRE,
            SqlState::UNTRANSLATABLE_CHARACTER,
            SqlState::INVALID_TEXT_REPRESENTATION,
        ]
        .contains(code)
    })
}

/// A pool of at most `max_size` connections. Connections open lazily, so a service starts (and
/// reports itself unready) while the database is down.
pub fn pool(url: &str, max_size: usize) -> Result<Pool, DbError> {
    let config: tokio_postgres::Config = url.parse().map_err(DbError::Url)?;
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager).max_size(max_size).build()?)
}

/// Applies the service's embedded migrations to its own schema.
///
/// Several replicas may start at once: they queue on a Postgres advisory lock named after the
/// schema, and whoever comes second finds the work done. The lock lives on a connection of its
/// own that is closed at the end, so no pooled connection ever keeps it.
pub async fn migrate(url: &str, schema: &str, mut runner: refinery::Runner) -> Result<(), DbError> {
    let (mut client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(DbError::Connect)?;
    let connection = tokio::spawn(connection);
    client
        .execute(
            "SELECT pg_advisory_lock(hashtextextended('genie-migrations:' || $1, 0))",
            &[&schema],
        )
        .await?;
    client
        .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
        .await?;
    runner.set_migration_table_name(format!("\"{schema}\".schema_history"));
    let applied = runner.run_async(&mut client).await;
    drop(client);
    connection.abort();
    let report = applied?;
    for migration in report.applied_migrations() {
        tracing::info!(schema, migration = %migration, "applied migration");
    }
    Ok(())
}

/// Checks that a connection can be taken from the pool and used, for readiness probes.
pub async fn ping(pool: &Pool) -> Result<(), DbError> {
    pool.get().await?.simple_query("SELECT 1").await?;
    Ok(())
}
