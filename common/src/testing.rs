//! Test helpers: a fresh database per test and listeners on random ports.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::net::TcpListener;
use tokio_postgres::NoTls;

/// Where tests create their databases; `TEST_DATABASE_ADMIN_URL` overrides.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

const PREFIX: &str = "genie_test_";
/// Databases of earlier runs older than this are dropped by the next run.
const STALE_AFTER_SECS: u64 = 3600;

/// A database of its own for one test, so tests never see each other's rows. The database is
/// left behind when the test ends (a test that fails can be inspected) and dropped by a run an
/// hour later.
pub struct TestDatabase {
    pub url: String,
    pub name: String,
}

pub async fn fresh_database() -> TestDatabase {
    let admin = admin_url();
    let (client, connection) = tokio_postgres::connect(&admin, NoTls)
        .await
        .expect("tests need PostgreSQL at TEST_DATABASE_ADMIN_URL (default 127.0.0.1:5432)");
    tokio::spawn(connection);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    drop_stale_databases(&client, now).await;
    let name = format!("{PREFIX}{now}_{}", uuid::Uuid::new_v4().simple());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create the test database");
    let base = admin
        .rsplit_once('/')
        .map_or(admin.as_str(), |(base, _)| base);
    TestDatabase {
        url: format!("{base}/{name}"),
        name,
    }
}

async fn drop_stale_databases(client: &tokio_postgres::Client, now: u64) {
    let rows = client
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE 'genie\\_test\\_%'",
            &[],
        )
        .await
        .expect("list test databases");
    for row in rows {
        let name: String = row.get(0);
        let created = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        if created.is_some_and(|created| created + STALE_AFTER_SECS < now) {
            // Another run may be dropping it at the same time; that is fine.
            let _ = client
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
        }
    }
}

/// A listener on a random free port of the loopback interface.
pub async fn random_listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a random loopback port");
    let addr = listener.local_addr().expect("listener address");
    (listener, addr)
}

/// The stable reason code a service put in a gRPC status (empty when none).
pub fn status_reason(status: &tonic::Status) -> &str {
    status_metadata(status, crate::error::REASON_METADATA)
}

/// The request field a service named in a gRPC status (empty when none).
pub fn status_field(status: &tonic::Status) -> &str {
    status_metadata(status, crate::error::FIELD_METADATA)
}

fn status_metadata<'a>(status: &'a tonic::Status, key: &str) -> &'a str {
    status
        .metadata()
        .get(key)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
}

/// A plain connection to `url`, for what a test checks or changes in SQL.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("tests need PostgreSQL at the test database's URL");
    tokio::spawn(connection);
    client
}
