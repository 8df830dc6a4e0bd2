//! gRPC plumbing shared by every service: the server bootstrap (health, reflection, tracing,
//! graceful shutdown), the internal-token check, and the client side (lazy channels, outgoing
//! requests carrying identity and trace context).

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::metadata::MetadataValue;
use tonic::service::{Interceptor, Routes};
use tonic::transport::{Channel, Endpoint, Server};
use tonic_health::ServingStatus;

use crate::config::ConfigError;
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
}

/// Serves `routes` with `grpc.health.v1` and server reflection beside them until `shutdown`
/// resolves, then drains in-flight calls. Health reports SERVING for each of `service_names`.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    service_names: &[&str],
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    for name in service_names {
        health
            .set_service_status(*name, ServingStatus::Serving)
            .await;
    }
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    Server::builder()
        .trace_fn(telemetry::grpc_server_span)
        .add_routes(routes)
        .add_service(health_service)
        .add_service(reflection)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
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
