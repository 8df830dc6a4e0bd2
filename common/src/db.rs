//! PostgreSQL: a connection pool per service with bounded waits, the probe its health follows,
//! and embedded SQL migrations applied at start-up.
//!
//! A database that cannot be reached, refuses connections, goes away under a query or takes too
//! long is a 503 `service_unavailable` (see [`DbError::is_unavailable`]), never a 500 or a hang:
//! taking a pooled connection waits at most [`Settings::pool_wait_timeout`], opening one at most
//! [`Settings::connect_timeout`], and a statement runs at most [`Settings::statement_timeout`].
//! A pooled connection that has been idle for [`VERIFY_AFTER_IDLE`] is checked with a round trip
//! before it is handed out, so the connections a Postgres restart or a cut network broke are
//! replaced, and a service recovers on its own when Postgres returns.

use std::time::Duration;

use deadpool_postgres::{
    Hook, HookError, Manager, ManagerConfig, Pool, PoolBuilder, RecyclingMethod, Runtime,
};
use tokio_postgres::NoTls;

use crate::config::{self, ConfigError};

pub const POOL_WAIT_TIMEOUT_VARIABLE: &str = "DATABASE_POOL_WAIT_TIMEOUT_MS";
pub const CONNECT_TIMEOUT_VARIABLE: &str = "DATABASE_CONNECT_TIMEOUT_MS";
pub const STATEMENT_TIMEOUT_VARIABLE: &str = "DATABASE_STATEMENT_TIMEOUT_MS";
pub const HEALTH_INTERVAL_VARIABLE: &str = "DATABASE_HEALTH_INTERVAL_MS";

pub const DEFAULT_POOL_WAIT_TIMEOUT_MS: u64 = 5_000;
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 2_000;
pub const DEFAULT_STATEMENT_TIMEOUT_MS: u64 = 5_000;
pub const DEFAULT_HEALTH_INTERVAL_MS: u64 = 1_000;
/// A shorter interval would spend more on checking than it tells.
const MIN_HEALTH_INTERVAL_MS: u64 = 100;

/// How every service treats its database, from the `DATABASE_*` variables every service reads
/// alike (each service's URL and pool size are its own: `AUTH_DATABASE_URL`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// How long a call waits for a free pooled connection before it is refused (503).
    pub pool_wait_timeout: Duration,
    /// How long opening a connection may take (TCP connect, start-up, authentication); also the
    /// deadline of each health check.
    pub connect_timeout: Duration,
    /// Postgres' `statement_timeout` on every pooled connection; zero: none.
    pub statement_timeout: Duration,
    /// How often the health check asks the database; gRPC health follows its answer.
    pub health_interval: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            pool_wait_timeout: Duration::from_millis(DEFAULT_POOL_WAIT_TIMEOUT_MS),
            connect_timeout: Duration::from_millis(DEFAULT_CONNECT_TIMEOUT_MS),
            statement_timeout: Duration::from_millis(DEFAULT_STATEMENT_TIMEOUT_MS),
            health_interval: Duration::from_millis(DEFAULT_HEALTH_INTERVAL_MS),
        }
    }
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        let positive = |variable: &str, default_ms: u64| {
            let value = config::millis(variable, default_ms)?;
            if value.is_zero() {
                return Err(ConfigError::new(variable, "must be at least 1"));
            }
            Ok(value)
        };
        let health_interval = config::millis(HEALTH_INTERVAL_VARIABLE, DEFAULT_HEALTH_INTERVAL_MS)?;
        if health_interval < Duration::from_millis(MIN_HEALTH_INTERVAL_MS) {
            return Err(ConfigError::new(
                HEALTH_INTERVAL_VARIABLE,
                format!("must be at least {MIN_HEALTH_INTERVAL_MS}"),
            ));
        }
        Ok(Self {
            pool_wait_timeout: positive(POOL_WAIT_TIMEOUT_VARIABLE, DEFAULT_POOL_WAIT_TIMEOUT_MS)?,
            connect_timeout: positive(CONNECT_TIMEOUT_VARIABLE, DEFAULT_CONNECT_TIMEOUT_MS)?,
            statement_timeout: config::millis(
                STATEMENT_TIMEOUT_VARIABLE,
                DEFAULT_STATEMENT_TIMEOUT_MS,
            )?,
            health_interval,
        })
    }

    /// `url` with these settings' connect timeout (and, for pooled connections, statement
    /// timeout) applied.
    fn connection_config(
        &self,
        url: &str,
        statement_timeout: bool,
    ) -> Result<tokio_postgres::Config, DbError> {
        let mut config: tokio_postgres::Config = url.parse().map_err(DbError::Url)?;
        config.connect_timeout(self.connect_timeout);
        if statement_timeout && !self.statement_timeout.is_zero() {
            // Added to any options the URL carries; the last setting of a name wins.
            let setting = format!(
                "-c statement_timeout={}",
                self.statement_timeout.as_millis()
            );
            let options = match config.get_options() {
                Some(given) if !given.trim().is_empty() => format!("{given} {setting}"),
                _ => setting,
            };
            config.options(&options);
        }
        Ok(config)
    }
}

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
    #[error("the database did not answer within {0:?}")]
    Timeout(Duration),
    #[error("migration failed: {0}")]
    Migration(#[from] refinery::Error),
}

impl DbError {
    /// The database is down, unreachable, restarting, out of connections or too slow: the call
    /// may succeed if tried again shortly (a 503), as opposed to a fault of the query or of the
    /// data (a 500).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Checkout(_) | Self::Connect(_) | Self::Timeout(_) => true,
            Self::Query(err) => connection_lost(err),
            Self::Url(_) | Self::Pool(_) | Self::Migration(_) => false,
        }
    }
}

/// Whether a query failed because of the connection or the server's state rather than the query:
/// the connection closed or broke, or the server refused to go on (class 08 connection exception,
/// 57P01-57P05 shutdown, restart or idle termination, 53300 too many connections, 57014 the
/// statement timeout, 25P03 the idle-in-transaction timeout).
fn connection_lost(err: &tokio_postgres::Error) -> bool {
    if err.is_closed() {
        return true;
    }
    if let Some(code) = err.code() {
        let code = code.code();
        return code.starts_with("08")
            || code.starts_with("57P")
            || matches!(code, "53300" | "57014" | "25P03");
    }
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if cause.is::<std::io::Error>() {
            return true;
        }
        source = cause.source();
    }
    false
}

impl From<DbError> for crate::ApiError {
    /// A database that cannot be reached is a 503; anything else is logged here and answered
    /// as an internal error without details.
    fn from(err: DbError) -> Self {
        if err.is_unavailable() {
            tracing::warn!(error = %err, "database unavailable");
            return crate::ApiError::unavailable("the database is unavailable, try again shortly");
        }
        match err {
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

/// How long a pooled connection may sit unused before it is verified with a round trip on its
/// next checkout. A connection in steady use has its death noticed by the query that meets it
/// (Postgres closes its backends' sockets on shutdown, which marks them closed); one that sat
/// idle is the one a restart or a cut network may have broken unnoticed. Verifying every
/// checkout instead cost a second round trip per request: the profile of the hot path showed
/// the Postgres connections' `send` calls as a fifth of genie's CPU time (gateway README).
pub const VERIFY_AFTER_IDLE: Duration = Duration::from_secs(1);

/// A pool of at most `max_size` connections. Connections open lazily, so a service starts (and
/// reports itself unready) while the database is down. Taking a connection waits at most
/// `settings.pool_wait_timeout` for a free one and `settings.connect_timeout` to open a new one;
/// one closed is never handed out, and one idle for [`VERIFY_AFTER_IDLE`] is verified first.
pub fn pool(url: &str, max_size: usize, settings: &Settings) -> Result<Pool, DbError> {
    let manager = Manager::from_config(
        settings.connection_config(url, true)?,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let builder: PoolBuilder = Pool::builder(manager)
        .max_size(max_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(settings.pool_wait_timeout))
        .create_timeout(Some(settings.connect_timeout))
        .recycle_timeout(Some(settings.connect_timeout));
    let deadline = settings.connect_timeout;
    Ok(builder
        .pre_recycle(Hook::async_fn(move |client, metrics| {
            Box::pin(async move {
                if metrics.last_used() < VERIFY_AFTER_IDLE {
                    return Ok(());
                }
                match tokio::time::timeout(deadline, client.simple_query("")).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(error)) => Err(HookError::Backend(error)),
                    Err(_) => Err(HookError::message("the idle connection did not answer")),
                }
            })
        }))
        .build()?)
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

/// The outcome of a write whose answer may be lost (the connection broke after the commit, or
/// the read after it failed): on an error, `look_up` says whether the write happened after all;
/// what it finds stands, else the write's error. For writes whose failure undoes something else
/// (a refund), which must not happen for a row that exists.
pub async fn written_or_found<T, E>(
    write: impl Future<Output = Result<T, E>>,
    look_up: impl Future<Output = Result<Option<T>, E>>,
) -> Result<T, E> {
    let err = match write.await {
        Ok(written) => return Ok(written),
        Err(err) => err,
    };
    match look_up.await {
        Ok(Some(found)) => Ok(found),
        _ => Err(err),
    }
}

/// Wakes `wake` on every `NOTIFY` on `channel`, and once after each (re)connection, since what
/// was notified while disconnected is lost; reconnects with a backoff. Runs until dropped. For
/// work other processes signal through the database (a job finished, so there is room to
/// publish), without polling for it.
pub async fn follow_notifications(
    url: String,
    channel: &'static str,
    connect_timeout: Duration,
    wake: std::sync::Arc<tokio::sync::Notify>,
) {
    const MIN_BACKOFF: Duration = Duration::from_millis(200);
    const MAX_BACKOFF: Duration = Duration::from_secs(5);
    let mut backoff = MIN_BACKOFF;
    loop {
        match tokio::time::timeout(connect_timeout, tokio_postgres::connect(&url, NoTls)).await {
            Ok(Ok((client, mut connection))) => {
                let wake_on_notify = std::sync::Arc::clone(&wake);
                // The connection carries the answers to the client's calls as well as the
                // notifications, so it is driven on its own while the client listens.
                let mut driver = tokio::spawn(async move {
                    while let Some(Ok(message)) =
                        std::future::poll_fn(|cx| connection.poll_message(cx)).await
                    {
                        if let tokio_postgres::AsyncMessage::Notification(_) = message {
                            wake_on_notify.notify_one();
                        }
                    }
                });
                match client.batch_execute(&format!("LISTEN \"{channel}\"")).await {
                    Ok(()) => {
                        backoff = MIN_BACKOFF;
                        wake.notify_one();
                        let _ = (&mut driver).await;
                        tracing::warn!(
                            channel,
                            "the connection listening for notifications closed"
                        );
                    }
                    Err(err) => tracing::warn!(%err, channel, "LISTEN failed"),
                }
                driver.abort();
            }
            Ok(Err(err)) => tracing::warn!(%err, channel, "could not connect to listen"),
            Err(_) => tracing::warn!(channel, "connecting to listen timed out"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// The database check a service's health follows ([`crate::grpc::serve`] runs it every
/// [`Settings::health_interval`]).
///
/// It holds a connection of its own, outside the pool, so that it measures whether the database
/// answers, not whether the service's calls keep every pooled connection busy; a failed check
/// drops that connection and the next one opens a new one.
pub struct Probe {
    config: tokio_postgres::Config,
    deadline: Duration,
    interval: Duration,
    client: Option<tokio_postgres::Client>,
}

impl Probe {
    pub fn new(url: &str, settings: &Settings) -> Result<Self, DbError> {
        Ok(Self {
            config: settings.connection_config(url, false)?,
            deadline: settings.connect_timeout,
            interval: settings.health_interval,
            client: None,
        })
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// `SELECT 1` answered within the deadline (connecting first when needed).
    pub async fn check(&mut self) -> Result<(), DbError> {
        let answered = tokio::time::timeout(self.deadline, self.ping()).await;
        let result = answered.unwrap_or(Err(DbError::Timeout(self.deadline)));
        if result.is_err() {
            self.client = None;
        }
        result
    }

    async fn ping(&mut self) -> Result<(), DbError> {
        let client = match self.client.take() {
            Some(client) if !client.is_closed() => client,
            _ => {
                let (client, connection) =
                    self.config.connect(NoTls).await.map_err(DbError::Connect)?;
                // Ends when the client is dropped or the server goes away.
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                client
            }
        };
        client.simple_query("SELECT 1").await?;
        self.client = Some(client);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::ApiError;

    /// The shared test cluster (`TEST_DATABASE_ADMIN_URL`); these tests only read from it and end
    /// their own connections.
    fn url() -> String {
        std::env::var("TEST_DATABASE_ADMIN_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
    }

    /// `url()` with an application name to find its connections by.
    fn named_url(name: &str) -> String {
        let url = url();
        let separator = if url.contains('?') { '&' } else { '?' };
        format!("{url}{separator}application_name={name}")
    }

    async fn connect(url: &str) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
        tokio::spawn(connection);
        client
    }

    /// Ends every connection named `name`, as a Postgres restart or an administrator would.
    async fn terminate(name: &str) -> u64 {
        let admin = connect(&url()).await;
        let rows = admin
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                &[&name],
            )
            .await
            .unwrap();
        rows.len() as u64
    }

    fn unique(prefix: &str) -> String {
        format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
    }

    fn status(err: DbError) -> u16 {
        ApiError::from(err).http_status_code()
    }

    #[tokio::test]
    async fn a_connection_ended_under_the_service_is_unavailable_not_internal() {
        let name = unique("genie_terminated");
        let client = connect(&named_url(&name)).await;
        assert_eq!(terminate(&name).await, 1);
        let err = client.simple_query("SELECT 1").await.unwrap_err();
        assert!(DbError::from(err).is_unavailable());

        let name = unique("genie_terminated");
        let client = connect(&named_url(&name)).await;
        terminate(&name).await;
        let err = client.simple_query("SELECT 1").await.unwrap_err();
        let api = ApiError::from(DbError::from(err));
        assert_eq!(api.http_status_code(), 503);
        assert_eq!(api.reason, "service_unavailable");
    }

    #[tokio::test]
    async fn a_query_that_is_wrong_stays_internal() {
        let client = connect(&url()).await;
        let err = client
            .simple_query("SELECT * FROM no_such_table_here")
            .await
            .unwrap_err();
        assert_eq!(status(DbError::from(err)), 500);
        let err = client
            .query_one("SELECT 1 WHERE false", &[])
            .await
            .unwrap_err();
        assert_eq!(status(DbError::from(err)), 500);
    }

    #[tokio::test]
    async fn the_statement_timeout_ends_a_slow_statement_as_unavailable() {
        let settings = Settings {
            statement_timeout: Duration::from_millis(200),
            ..Settings::default()
        };
        let pool = pool(&url(), 1, &settings).unwrap();
        let client = pool.get().await.unwrap();
        let started = Instant::now();
        let err = client
            .simple_query("SELECT pg_sleep(10)")
            .await
            .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(
            err.code(),
            Some(&tokio_postgres::error::SqlState::QUERY_CANCELED)
        );
        assert_eq!(status(DbError::from(err)), 503);
    }

    #[tokio::test]
    async fn the_statement_timeout_keeps_the_options_of_the_url() {
        let settings = Settings {
            statement_timeout: Duration::from_millis(1234),
            ..Settings::default()
        };
        let url = format!("{}?options=-c%20lock_timeout%3D4321", url());
        let pool = pool(&url, 1, &settings).unwrap();
        let client = pool.get().await.unwrap();
        let statement: String = client
            .query_one("SHOW statement_timeout", &[])
            .await
            .unwrap()
            .get(0);
        let lock: String = client
            .query_one("SHOW lock_timeout", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!((statement.as_str(), lock.as_str()), ("1234ms", "4321ms"));
    }

    #[tokio::test]
    async fn a_full_pool_refuses_after_the_wait_timeout() {
        let settings = Settings {
            pool_wait_timeout: Duration::from_millis(200),
            ..Settings::default()
        };
        let pool = pool(&url(), 1, &settings).unwrap();
        let _held = pool.get().await.unwrap();
        let started = Instant::now();
        let err = pool.get().await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(status(DbError::from(err)), 503);
    }

    /// A server that accepts connections and never says a word: a frozen or half-open database.
    async fn silent_server() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        format!("postgres://postgres@{addr}/postgres")
    }

    #[tokio::test]
    async fn a_database_that_never_answers_is_a_quick_unavailable() {
        let url = silent_server().await;
        let settings = Settings {
            connect_timeout: Duration::from_millis(300),
            ..Settings::default()
        };
        let pool = pool(&url, 1, &settings).unwrap();
        let started = Instant::now();
        let err = pool.get().await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(status(DbError::from(err)), 503);

        let mut probe = Probe::new(&url, &settings).unwrap();
        let started = Instant::now();
        let err = probe.check().await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert!(matches!(err, DbError::Timeout(_)), "{err}");
        assert_eq!(status(err), 503);
    }

    #[tokio::test]
    async fn a_refused_connection_is_unavailable() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        let pool = pool(&url, 1, &Settings::default()).unwrap();
        assert_eq!(status(DbError::from(pool.get().await.unwrap_err())), 503);
        let mut probe = Probe::new(&url, &Settings::default()).unwrap();
        assert_eq!(status(probe.check().await.unwrap_err()), 503);
    }

    async fn backend_pid(pool: &Pool) -> Result<i32, DbError> {
        let client = pool.get().await?;
        let row = client.query_one("SELECT pg_backend_pid()", &[]).await?;
        Ok(row.get(0))
    }

    #[tokio::test]
    async fn the_pool_replaces_a_connection_a_restart_ended() {
        let name = unique("genie_pooled");
        let pool = pool(&named_url(&name), 1, &Settings::default()).unwrap();
        let before = backend_pid(&pool).await.unwrap();
        assert_eq!(terminate(&name).await, 1);
        // Postgres closes the socket of a backend it ends, which marks the client closed, and
        // a closed client is never handed out again; at worst the one call that meets the
        // socket before its closing was read fails.
        let deadline = Instant::now() + Duration::from_secs(5);
        let after = loop {
            match backend_pid(&pool).await {
                Ok(pid) => break pid,
                Err(error) => {
                    assert!(error.is_unavailable(), "{error}");
                    assert!(Instant::now() < deadline, "no working connection: {error}");
                }
            }
        };
        assert_ne!(before, after);
        assert_eq!(backend_pid(&pool).await.unwrap(), after);
    }

    #[tokio::test]
    async fn an_idle_connection_whose_network_path_broke_is_replaced_before_it_is_handed_out() {
        let proxy = crate::testing::proxy::TcpProxy::start(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            5432,
        )))
        .await;
        let url = format!("postgres://postgres@{}/postgres", proxy.addr());
        let settings = Settings {
            connect_timeout: Duration::from_millis(300),
            ..Settings::default()
        };
        let pool = pool(&url, 1, &settings).unwrap();
        let before = backend_pid(&pool).await.unwrap();
        // Nothing closes: the connection only stops carrying bytes, which no client notices
        // until it asks something.
        proxy.stall_open_connections();
        tokio::time::sleep(VERIFY_AFTER_IDLE).await;
        let started = Instant::now();
        let after = backend_pid(&pool).await.unwrap();
        assert_ne!(before, after);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the check waits at most the connect timeout: {:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn the_probe_opens_a_new_connection_when_its_own_ended() {
        let name = unique("genie_probe");
        let mut probe = Probe::new(&named_url(&name), &Settings::default()).unwrap();
        probe.check().await.unwrap();
        probe.check().await.unwrap();
        assert_eq!(
            terminate(&name).await,
            1,
            "one connection, kept between checks"
        );
        // The check that meets the ended connection may fail; the next one reconnects.
        let first = probe.check().await;
        if first.is_err() {
            probe.check().await.unwrap();
        }
        assert_eq!(terminate(&name).await, 1);
    }
}
