//! gRPC plumbing shared by every service: the server bootstrap (health following the database,
//! reflection behind the internal token, tracing, graceful shutdown), the internal-token check, and the client side (lazy channels, outgoing
//! requests carrying identity and trace context).

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::time::MissedTickBehavior;
use tonic::metadata::MetadataValue;
use tonic::server::NamedService;
use tonic::service::interceptor::InterceptedService;
use tonic::service::{Interceptor, Routes};
use tonic::transport::{Channel, Endpoint, Server};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::config::ConfigError;
use crate::db::Probe;
use crate::error::ApiError;
use crate::identity::Identity;
use crate::secret::Secret;
use crate::telemetry;

/// Rejects calls without `authorization: Bearer <INTERNAL_TOKEN>` and hands the caller's
/// [`Identity`] to the handler through the request extensions.
#[derive(Clone)]
pub struct InternalAuth {
    token: Secret,
}

impl InternalAuth {
    pub fn new(token: Secret) -> Self {
        Self { token }
    }
}

impl Interceptor for InternalAuth {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        match presented {
            Some(token) if self.token.matches(token) => {}
            _ => {
                return Err(ApiError::unauthenticated(
                    "internal_token_invalid",
                    "missing or wrong internal token",
                )
                .into());
            }
        }
        let identity = Identity::read_from(request.metadata())?;
        request.extensions_mut().insert(identity);
        Ok(request)
    }
}

/// The identity [`InternalAuth`] established for this call.
pub fn identity<T>(request: &tonic::Request<T>) -> Result<Identity, tonic::Status> {
    request
        .extensions()
        .get::<Identity>()
        .cloned()
        .ok_or_else(|| ApiError::internal().into())
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("gRPC transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("the listener: {0}")]
    Listener(#[from] std::io::Error),
    #[error(transparent)]
    Database(#[from] crate::db::DbError),
}

pub const REFLECTION_VARIABLE: &str = "GRPC_REFLECTION";

/// What every gRPC server reads from the environment alike.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerSettings {
    /// Serve gRPC server reflection (`GRPC_REFLECTION=true`; off by default), and then only to
    /// callers holding the internal token.
    pub reflection: bool,
}

impl ServerSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            reflection: crate::config::var(REFLECTION_VARIABLE, false)?,
        })
    }
}

/// What [`serve`] needs of a service's configuration.
pub struct Setup<'a> {
    /// The service's name in logs (`svc-auth`).
    pub name: &'a str,
    /// The database health follows.
    pub database_url: &'a str,
    pub database: &'a crate::db::Settings,
    /// The token every call must carry (reflection's too).
    pub internal_token: &'a Secret,
    pub settings: &'a ServerSettings,
}

/// Serves `service` behind [`InternalAuth`], with `grpc.health.v1` (and, when configured,
/// server reflection) beside it until `shutdown` resolves, then drains in-flight calls.
///
/// Health answers anyone, without a token, for probes (Kubernetes, the gateway's readiness): the
/// whole server (`""`) and the service's own name are SERVING while the service's database
/// answers its [`Probe`], checked every [`crate::db::Settings::health_interval`], NOT_SERVING
/// from the first failed check until one succeeds again (and before the first check).
/// Reflection is served only with [`ServerSettings::reflection`], and only to callers holding
/// the internal token.
pub async fn serve<S>(
    listener: TcpListener,
    service: S,
    setup: Setup<'_>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError>
where
    S: tonic::codegen::Service<
            tonic::codegen::http::Request<tonic::body::Body>,
            Response = tonic::codegen::http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        > + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let probe = Probe::new(setup.database_url, setup.database)?;
    let auth = InternalAuth::new(setup.internal_token.clone());
    let mut routes = Routes::new(InterceptedService::new(service, auth.clone()));
    if setup.settings.reflection {
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        routes = routes.add_service(InterceptedService::new(reflection, auth));
    }
    let (health, health_service) = tonic_health::server::health_reporter();
    let names: Vec<String> = vec![String::new(), S::NAME.to_owned()];
    for name in &names {
        health
            .set_service_status(name, ServingStatus::NotServing)
            .await;
    }
    let _follower = AbortOnDrop(tokio::spawn(follow_database(health, names, probe)));
    tracing::info!(addr = %listener.local_addr()?, "{} listening", setup.name);
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    Server::builder()
        .trace_fn(telemetry::grpc_server_span)
        .add_routes(routes)
        .add_service(health_service)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}

/// Stops a background task when the server it belongs to stops (or its future is dropped).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sets every name's health to the outcome of each check, logging each change.
async fn follow_database(health: HealthReporter, names: Vec<String>, mut probe: Probe) {
    let mut ticks = tokio::time::interval(probe.interval());
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut serving = None;
    loop {
        ticks.tick().await;
        let checked = probe.check().await;
        let now_serving = checked.is_ok();
        if serving == Some(now_serving) {
            continue;
        }
        match (&checked, serving) {
            (Err(err), _) => {
                tracing::warn!(error = %err, "the database does not answer: not serving")
            }
            (Ok(()), Some(false)) => tracing::info!("the database answers again: serving"),
            (Ok(()), _) => {}
        }
        let status = if now_serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        for name in &names {
            health.set_service_status(name, status).await;
        }
        serving = Some(now_serving);
    }
}

/// A channel that connects on first use, so a service starts while its upstreams are still down;
/// each call then fails fast with UNAVAILABLE instead of hanging.
pub fn lazy_channel(
    variable: &str,
    url: &str,
    connect_timeout: Duration,
) -> Result<Channel, ConfigError> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|err| ConfigError::new(variable, format!("not a valid URL: {err}")))?;
    Ok(endpoint
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true)
        .connect_lazy())
}

/// Builds a call to one of our services: internal token, the caller's identity, the current
/// trace context, and a deadline.
pub fn outgoing<T>(
    message: T,
    identity: &Identity,
    token: &Secret,
    timeout: Duration,
) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    let metadata = request.metadata_mut();
    if let Ok(value) = MetadataValue::try_from(format!("Bearer {}", token.expose())) {
        metadata.insert("authorization", value);
    }
    identity.write_to(metadata);
    telemetry::inject_into_metadata(metadata);
    request
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;

    use tokio::sync::watch;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};

    use super::*;
    use crate::db;

    const TOKEN: &str = "internal token of common's own tests, 0123456789";
    const NAME: &str = "genie.test.v1.Nothing";

    fn database_url() -> String {
        std::env::var("TEST_DATABASE_ADMIN_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
    }

    /// A service whose every call is UNIMPLEMENTED, standing for a service's own routes.
    #[derive(Clone)]
    struct Nothing;

    impl NamedService for Nothing {
        const NAME: &'static str = NAME;
    }

    impl tonic::codegen::Service<tonic::codegen::http::Request<tonic::body::Body>> for Nothing {
        type Response = tonic::codegen::http::Response<tonic::body::Body>;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: tonic::codegen::http::Request<tonic::body::Body>) -> Self::Future {
            std::future::ready(Ok(tonic::Status::unimplemented("nothing here").into_http()))
        }
    }

    /// A server with no routes of its own, whose health follows the database at `url`, checked
    /// every 100 ms. Stops when the sender is dropped.
    async fn start(url: &str, reflection: bool) -> (Channel, tokio::sync::oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let settings = db::Settings {
            health_interval: Duration::from_millis(100),
            connect_timeout: Duration::from_millis(500),
            ..db::Settings::default()
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let url = url.to_owned();
        tokio::spawn(async move {
            let setup = Setup {
                name: "nothing",
                database_url: &url,
                database: &settings,
                internal_token: &Secret::new(TOKEN),
                settings: &ServerSettings { reflection },
            };
            serve(listener, Nothing, setup, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_lazy();
        (channel, stop)
    }

    /// The health of `service` as a probe without any token sees it.
    async fn health(channel: &Channel, service: &str) -> Result<ServingStatus, tonic::Status> {
        let reply = HealthClient::new(channel.clone())
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await?;
        Ok(reply.into_inner().status())
    }

    /// Waits up to `within` for every reported name to be `wanted`; how long it took.
    async fn until(channel: &Channel, wanted: ServingStatus, within: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let all = [health(channel, "").await, health(channel, NAME).await];
            if all
                .iter()
                .all(|status| status.as_ref().ok() == Some(&wanted))
            {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < within,
                "not {wanted:?} within {within:?}: {all:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn list_services(
        channel: &Channel,
        token: Option<&str>,
    ) -> Result<Vec<String>, tonic::Status> {
        let mut request = tonic::Request::new(tokio_stream::once(ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        }));
        if let Some(token) = token {
            request.metadata_mut().insert(
                "authorization",
                MetadataValue::try_from(format!("Bearer {token}")).unwrap(),
            );
        }
        let mut replies = ServerReflectionClient::new(channel.clone())
            .server_reflection_info(request)
            .await?
            .into_inner();
        let reply: ServerReflectionResponse = replies.message().await?.unwrap();
        match reply.message_response {
            Some(MessageResponse::ListServicesResponse(list)) => Ok(list
                .service
                .into_iter()
                .map(|service| service.name)
                .collect()),
            other => panic!("not a list of services: {other:?}"),
        }
    }

    #[tokio::test]
    async fn reflection_answers_only_with_the_internal_token_and_health_without_one() {
        let (channel, _stop) = start(&database_url(), true).await;
        until(&channel, ServingStatus::Serving, Duration::from_secs(5)).await;

        let refused = list_services(&channel, None).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
        let wrong = list_services(&channel, Some("not the internal token at all, no"))
            .await
            .unwrap_err();
        assert_eq!(wrong.code(), tonic::Code::Unauthenticated);
        let services = list_services(&channel, Some(TOKEN)).await.unwrap();
        assert!(
            services.iter().any(|name| name == "genie.auth.v1.Auth"),
            "{services:?}"
        );
    }

    #[tokio::test]
    async fn reflection_is_off_unless_configured() {
        let (channel, _stop) = start(&database_url(), false).await;
        until(&channel, ServingStatus::Serving, Duration::from_secs(5)).await;
        let off = list_services(&channel, Some(TOKEN)).await.unwrap_err();
        assert_eq!(off.code(), tonic::Code::Unimplemented);
    }

    /// A TCP relay to the test database that can be cut (open connections closed, new ones
    /// closed at once) and restored, as a database going down and coming back looks to a client.
    struct Relay {
        url: String,
        up: Arc<AtomicBool>,
        cut: watch::Sender<u64>,
    }

    impl Relay {
        async fn start() -> Self {
            let target: tokio_postgres::Config = database_url().parse().unwrap();
            let host = match &target.get_hosts()[0] {
                tokio_postgres::config::Host::Tcp(host) => host.clone(),
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(_) => panic!("the test database is on TCP"),
            };
            let port = target.get_ports().first().copied().unwrap_or(5432);
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let up = Arc::new(AtomicBool::new(true));
            let (cut, _) = watch::channel(0u64);
            let relay = Self {
                url: database_url().replacen(&format!("{host}:{port}"), &addr.to_string(), 1),
                up: Arc::clone(&up),
                cut: cut.clone(),
            };
            assert_ne!(relay.url, database_url(), "the URL names host:port");
            tokio::spawn(async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        continue;
                    }
                    let mut cuts = cut.subscribe();
                    let target = format!("{host}:{port}");
                    tokio::spawn(async move {
                        let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            _ = cuts.changed() => {}
                        }
                    });
                }
            });
            relay
        }

        fn cut(&self) {
            self.up.store(false, Ordering::SeqCst);
            self.cut.send_modify(|cuts| *cuts += 1);
        }

        fn restore(&self) {
            self.up.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn health_follows_the_database_down_and_back() {
        let relay = Relay::start().await;
        let (channel, _stop) = start(&relay.url, false).await;
        until(&channel, ServingStatus::Serving, Duration::from_secs(5)).await;

        relay.cut();
        let down = until(&channel, ServingStatus::NotServing, Duration::from_secs(2)).await;
        relay.restore();
        let back = until(&channel, ServingStatus::Serving, Duration::from_secs(2)).await;
        assert!(down < Duration::from_secs(1), "{down:?}");
        assert!(back < Duration::from_secs(1), "{back:?}");
    }

    #[tokio::test]
    async fn health_is_not_serving_while_the_database_was_never_there() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let (channel, _stop) = start(
            &format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            false,
        )
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            health(&channel, "").await.unwrap(),
            ServingStatus::NotServing
        );
        assert_eq!(
            health(&channel, NAME).await.unwrap(),
            ServingStatus::NotServing
        );
    }
}
