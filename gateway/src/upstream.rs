//! Calls to the services behind the gateway. Every call goes through [`Service::call`], so every
//! call carries the internal token, the caller's identity, the trace context and a deadline, and
//! every failure becomes an [`ApiError`] through the one mapping of docs/DESIGN.md §4.

use std::future::Future;
use std::time::Duration;

use common::ApiError;
use common::identity::Identity;
use common::secret::Secret;
use tonic::transport::Channel;

use crate::kit::{Envelope, Reply};

/// The reason `common::grpc::InternalAuth` gives when the internal token is wrong.
const INTERNAL_TOKEN_REFUSED: &str = "internal_token_invalid";

pub type AuthClient = proto::auth::v1::auth_client::AuthClient<Channel>;
pub type UsageClient = proto::usage::v1::usage_client::UsageClient<Channel>;
pub type CredentialsClient = proto::credentials::v1::credentials_client::CredentialsClient<Channel>;
pub type SkillsClient = proto::skills::v1::skills_client::SkillsClient<Channel>;
pub type QueueClient = proto::queue::v1::queue_client::QueueClient<Channel>;

/// The generated gRPC client of one of our services, with the names it goes by.
pub trait ServiceClient: Clone {
    /// The service's name in logs and in the health endpoints.
    const NAME: &'static str;
    /// The gRPC service whose `grpc.health.v1` status tells whether it is ready.
    const HEALTH_SERVICE: &'static str;

    fn on(channel: Channel) -> Self;
}

impl ServiceClient for AuthClient {
    const NAME: &'static str = "svc-auth";
    const HEALTH_SERVICE: &'static str = proto::auth::v1::auth_server::SERVICE_NAME;

    fn on(channel: Channel) -> Self {
        Self::new(channel)
    }
}

impl ServiceClient for UsageClient {
    const NAME: &'static str = "svc-usage";
    const HEALTH_SERVICE: &'static str = proto::usage::v1::usage_server::SERVICE_NAME;

    fn on(channel: Channel) -> Self {
        Self::new(channel)
    }
}

impl ServiceClient for CredentialsClient {
    const NAME: &'static str = "svc-credentials";
    const HEALTH_SERVICE: &'static str = proto::credentials::v1::credentials_server::SERVICE_NAME;

    fn on(channel: Channel) -> Self {
        Self::new(channel)
    }
}

impl ServiceClient for SkillsClient {
    const NAME: &'static str = "svc-skills";
    const HEALTH_SERVICE: &'static str = proto::skills::v1::skills_server::SERVICE_NAME;

    fn on(channel: Channel) -> Self {
        Self::new(channel)
    }
}

impl ServiceClient for QueueClient {
    const NAME: &'static str = "svc-queue";
    const HEALTH_SERVICE: &'static str = proto::queue::v1::queue_server::SERVICE_NAME;

    fn on(channel: Channel) -> Self {
        Self::new(channel)
    }
}

/// One service behind the gateway, called on behalf of the request's identity.
#[derive(Clone)]
pub struct Service<C> {
    client: C,
    token: Secret,
    timeout: Duration,
}

pub type AuthService = Service<AuthClient>;
pub type UsageService = Service<UsageClient>;
pub type CredentialsService = Service<CredentialsClient>;
pub type SkillsService = Service<SkillsClient>;
pub type QueueService = Service<QueueClient>;

impl<C: ServiceClient> Service<C> {
    pub fn new(channel: Channel, token: Secret, timeout: Duration) -> Self {
        Self {
            client: C::on(channel),
            token,
            timeout,
        }
    }

    /// Calls one RPC on behalf of `identity`:
    /// `auth.call(&identity, pb::MeRequest {}, rpc!(me))`.
    pub async fn call<Req, Resp, F, Fut>(
        &self,
        identity: &Identity,
        message: Req,
        rpc: F,
    ) -> Result<Resp, ApiError>
    where
        F: FnOnce(C, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let request = common::grpc::outgoing(message, identity, &self.token, self.timeout);
        with_deadline(C::NAME, self.timeout, rpc(self.client.clone(), request)).await
    }
}

impl<C: ServiceClient> Service<C> {
    /// [`Service::call`], then the reply converted into the route's answer and enveloped:
    /// `state.usage.forward(&identity, request, rpc!(report)).await`.
    pub async fn forward<Req, Resp, T, F, Fut>(
        &self,
        identity: &Identity,
        message: Req,
        rpc: F,
    ) -> Reply<T>
    where
        T: TryFrom<Resp>,
        ApiError: From<T::Error>,
        F: FnOnce(C, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let reply = self.call(identity, message, rpc).await?;
        Ok(Envelope::new(T::try_from(reply)?))
    }
}

/// `grpc-timeout` asks the server to give up in time, but a server that stopped reading (a frozen
/// process, a half-open connection) never answers at all; this timer bounds the wait here too.
pub async fn with_deadline<Resp>(
    upstream: &'static str,
    timeout: Duration,
    call: impl Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
) -> Result<Resp, ApiError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => {
            let reason = status
                .metadata()
                .get(common::error::REASON_METADATA)
                .and_then(|value| value.to_str().ok());
            if reason == Some(INTERNAL_TOKEN_REFUSED) {
                // Our misconfiguration, not the client's fault: a 401 would blame their token.
                tracing::error!(
                    upstream,
                    "the upstream refused the internal token: INTERNAL_TOKEN differs between the \
                     gateway and the service"
                );
                return Err(ApiError::internal());
            }
            if reason.is_none() {
                // Transport failures and unexpected statuses: the client sees only a generic
                // message, so the details go to the log.
                tracing::warn!(
                    upstream,
                    code = ?status.code(),
                    message = status.message(),
                    "upstream call failed"
                );
            }
            Err(ApiError::from(status))
        }
        Err(_) => {
            tracing::warn!(upstream, ?timeout, "upstream call timed out");
            Err(ApiError::unavailable(
                "a service did not answer in time, try again shortly",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::Kind;
    use tonic::metadata::MetadataValue;

    async fn outcome(
        call: impl Future<Output = Result<tonic::Response<()>, tonic::Status>>,
    ) -> ApiError {
        with_deadline("test", Duration::from_millis(50), call)
            .await
            .unwrap_err()
    }

    #[tokio::test]
    async fn a_silent_upstream_is_unavailable_at_the_deadline() {
        let started = std::time::Instant::now();
        let err = outcome(std::future::pending()).await;
        assert_eq!(err.kind, Kind::Unavailable);
        assert_eq!(err.reason, "service_unavailable");
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn statuses_map_through_the_common_table() {
        let refused =
            outcome(async { Err(tonic::Status::unavailable("tcp connect error 127.0.0.1:1")) })
                .await;
        assert_eq!(refused.kind, Kind::Unavailable);
        assert!(!refused.message.contains("127.0.0.1"));

        let forbidden = outcome(async {
            Err(tonic::Status::from(ApiError::forbidden(
                "administrators only",
            )))
        })
        .await;
        assert_eq!(forbidden.http_status().as_u16(), 403);
        assert_eq!(forbidden.reason, "forbidden");
    }

    #[tokio::test]
    async fn a_refused_internal_token_is_our_fault_not_the_client_s() {
        let err = outcome(async {
            let mut status = tonic::Status::unauthenticated("missing or wrong internal token");
            status.metadata_mut().insert(
                common::error::REASON_METADATA,
                MetadataValue::from_static(INTERNAL_TOKEN_REFUSED),
            );
            Err(status)
        })
        .await;
        assert_eq!(err.kind, Kind::Internal);
        assert_eq!(err.http_status().as_u16(), 500);
    }
}
