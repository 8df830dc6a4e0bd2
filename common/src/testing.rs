//! Test helpers: a fresh database per test, a service on a random port with a client channel,
//! the identities calls are made for, and the requests that carry them.
//!
//! This module is test support, compiled only with the `testing` feature that only tests enable:
//! a helper that cannot do its job fails the test at once, with a message, rather than returning
//! an error every test would unwrap.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, TimeDelta, Utc};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_postgres::NoTls;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use uuid::Uuid;

use crate::clock::Clock;
use crate::identity::{ADMINISTRATOR, Identity, UserIdentity};
use crate::secret::Secret;

pub mod proxy;

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

/// The internal token of every service a test starts (put it in the service's config); the
/// requests of [`request`] carry it.
pub const INTERNAL_TOKEN: &str = "internal token of the Genie tests, 0123456789abcdef";

/// [`INTERNAL_TOKEN`] as the services' config takes it.
pub fn internal_token() -> Secret {
    Secret::new(INTERNAL_TOKEN)
}

/// The `x-request-id` of the identities below.
pub const REQUEST_ID: &str = "test";

/// How long a test's call may take before it fails with `DEADLINE_EXCEEDED`.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A call to a test service for `identity`: the internal token, the identity metadata and a
/// deadline, exactly as the gateway sends it.
pub fn request<T>(message: T, identity: &Identity) -> tonic::Request<T> {
    crate::grpc::outgoing(message, identity, &internal_token(), CALL_TIMEOUT)
}

/// No one in particular (login, register).
pub fn anonymous() -> Identity {
    Identity::anonymous(REQUEST_ID)
}

/// A server-to-server caller that proved the shared secret.
pub fn system() -> Identity {
    Identity::system(REQUEST_ID)
}

/// User `id` with this role and tier, not impersonated.
pub fn user(id: Uuid, role: &str, tier: &str) -> Identity {
    Identity::user(
        UserIdentity {
            id,
            role: role.into(),
            tier: tier.into(),
            impersonated_by: None,
        },
        REQUEST_ID,
    )
}

/// User `id` as a new user is: a creator on the starter tier.
pub fn creator(id: Uuid) -> Identity {
    user(id, "creator", "starter")
}

/// User `id` as an administrator on the studio tier.
pub fn administrator(id: Uuid) -> Identity {
    user(id, ADMINISTRATOR, "studio")
}

/// What a service started by [`start_service`] runs until: it resolves when the [`TestService`]
/// is dropped.
pub struct Stop(oneshot::Receiver<()>);

impl Future for Stop {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

/// A service serving on a random loopback port for one test. Dropping it stops the service.
pub struct TestService {
    pub addr: SocketAddr,
    /// A channel to the service; clone it into the service's generated client.
    pub channel: Channel,
    _stop: oneshot::Sender<()>,
}

/// How long a service may take to migrate its database and start serving.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts a service on a random loopback port and waits until it serves. `run` is the service's
/// `run`, given the listener and the future to stop on:
///
/// ```ignore
/// let service = try_start_service(|listener, stop| svc_auth::run(config, listener, stop)).await?;
/// let client = AuthClient::new(service.channel.clone());
/// ```
///
/// Serving means its gRPC health answers SERVING, which [`crate::grpc::serve`] reports once the
/// service's own start-up (migrations, checks) is done. A start-up that fails returns its error;
/// one that takes longer than 30 s fails the test.
pub async fn try_start_service<F, Fut, E>(run: F) -> Result<TestService, E>
where
    F: FnOnce(TcpListener, Stop) -> Fut,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Send + 'static,
{
    let (listener, addr) = random_listener().await;
    let (stop, stopped) = oneshot::channel();
    let mut task = tokio::spawn(run(listener, Stop(stopped)));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("a loopback URL is valid")
        .connect_lazy();
    let serving = tokio::time::timeout(START_TIMEOUT, async {
        tokio::select! {
            ended = &mut task => Err(ended),
            () = wait_until_serving(channel.clone()) => Ok(()),
        }
    });
    match serving.await {
        Ok(Ok(())) => Ok(TestService {
            addr,
            channel,
            _stop: stop,
        }),
        Ok(Err(Ok(Err(err)))) => Err(err),
        Ok(Err(Ok(Ok(())))) => panic!("the service on {addr} stopped before it served"),
        Ok(Err(Err(join))) => panic!("the service on {addr} panicked while starting: {join}"),
        Err(_) => panic!("the service on {addr} did not serve within {START_TIMEOUT:?}"),
    }
}

/// [`try_start_service`] for a service that must start: a failed start-up fails the test.
pub async fn start_service<F, Fut, E>(run: F) -> TestService
where
    F: FnOnce(TcpListener, Stop) -> Fut,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Debug + Send + 'static,
{
    match try_start_service(run).await {
        Ok(service) => service,
        Err(err) => panic!("the service did not start: {err:?}"),
    }
}

async fn wait_until_serving(channel: Channel) {
    let mut health = HealthClient::new(channel);
    loop {
        let mut check = tonic::Request::new(HealthCheckRequest {
            service: String::new(),
        });
        check.set_timeout(Duration::from_secs(5));
        if let Ok(answer) = health.check(check).await
            && answer.into_inner().status == ServingStatus::Serving as i32
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A clock that stands still until the test moves it.
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Mutex::new(at))
    }

    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap() = at;
    }

    pub fn advance(&self, by: TimeDelta) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// Names of the test's own on the shared broker: `genie_test_<unix seconds>_<uuid>.`.
///
/// A test never deletes its queues: RabbitMQ 3.10 can lose its at-least-once dead-lettering for
/// the whole node when such a queue is deleted while its dead-letter worker is still starting
/// (svc-queue/README.md). Queues of runs older than an hour, long settled, are deleted in the
/// background, where `rabbitmqctl` may be run.
pub fn broker_prefix() -> String {
    static CLEAN_UP: std::sync::Once = std::sync::Once::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    CLEAN_UP.call_once(|| {
        std::thread::spawn(move || delete_stale_queues(now));
    });
    format!("genie_test_{now}_{}.", Uuid::new_v4().simple())
}

fn delete_stale_queues(now: u64) {
    let rabbitmqctl = |args: &[&str]| {
        std::process::Command::new("rabbitmqctl")
            .args(args)
            .output()
    };
    let Ok(listed) = rabbitmqctl(&["-q", "list_queues", "name"]) else {
        return;
    };
    for queue in String::from_utf8_lossy(&listed.stdout).lines() {
        let started = queue
            .strip_prefix("genie_test_")
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        if started.is_some_and(|started| started + 3600 < now) {
            let _ = rabbitmqctl(&["-q", "delete_queue", queue]);
        }
    }
}
