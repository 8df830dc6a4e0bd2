//! The quota client every billable service calls before doing its work (docs/DESIGN.md §2): it
//! consumes from svc-usage, refuses when the limit is reached, and is fail-closed: any error,
//! timeout or unreachable svc-usage denies with reason `quota_check_failed`, never lets the work
//! through.

use std::future::Future;
use std::time::Duration;

use proto::usage::v1 as pb;
use proto::usage::v1::usage_client::UsageClient;
use tonic::transport::Channel;

use crate::error::{ApiError, Kind};
use crate::identity::Identity;
use crate::secret::Secret;

/// What the original told users whose plan ran out.
pub const UPGRADE_MESSAGE: &str =
    "You have reached your plan limit for this feature. Upgrade to continue.";

#[derive(Clone)]
pub struct QuotaClient {
    client: UsageClient<Channel>,
    token: Secret,
    timeout: Duration,
}

fn check_failed() -> ApiError {
    ApiError::new(
        Kind::PermissionDenied,
        "quota_check_failed",
        "the quota check failed, so the request was not carried out; try again shortly",
    )
}

pub fn limit_reached() -> ApiError {
    ApiError::new(Kind::QuotaExhausted, "limit_reached", UPGRADE_MESSAGE)
}

/// A retry with the key of a request that failed and was refunded: nothing is granted again
/// under that key.
pub fn key_refunded() -> ApiError {
    ApiError::conflict(
        "idempotency_key_refunded",
        "the request with this idempotency key failed and its quota was given back; send it again with a new key",
    )
    .with_field("idempotency_key")
}

/// What [`QuotaClient::guarded`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Guarded<T> {
    /// Consumed now, and the work ran and succeeded: its output.
    Done(T),
    /// The idempotency key was consumed (and granted) before: the work was not run again and
    /// nothing was refunded. The stored answer (`replayed: true`); the caller answers with what
    /// the first request produced.
    Replayed(pb::QuotaAnswer),
}

impl QuotaClient {
    /// `timeout` bounds each call; keep it short, a quota check sits in front of user requests.
    pub fn new(channel: Channel, token: Secret, timeout: Duration) -> Self {
        Self {
            client: UsageClient::new(channel),
            token,
            timeout,
        }
    }

    /// Consumes `amount` of `operation` for the calling user before the work is done. Granted:
    /// the answer (`replayed` when it is the stored answer of the same key and request). Limit
    /// reached: 403 `limit_reached`. A replay of a key whose consumption was refunded: 409
    /// `idempotency_key_refunded`. The caller's own mistakes (unknown operation, bad amount, a key
    /// reused with another request, 409 `idempotency_key_reused`) come back as they are; anything
    /// else denies with `quota_check_failed`.
    pub async fn consume(
        &self,
        identity: &Identity,
        operation: &str,
        amount: i64,
        idempotency_key: Option<&str>,
    ) -> Result<pb::QuotaAnswer, ApiError> {
        let user = identity.require_user()?;
        let request = pb::ConsumeRequest {
            user_id: user.id.to_string(),
            tier: user.tier.clone(),
            operation: operation.to_owned(),
            amount,
            idempotency_key: idempotency_key.unwrap_or_default().to_owned(),
        };
        let call = crate::grpc::outgoing(request, identity, &self.token, self.timeout);
        let mut client = self.client.clone();
        match tokio::time::timeout(self.timeout, client.consume(call)).await {
            Ok(Ok(answer)) if answer.get_ref().granted => Ok(answer.into_inner()),
            Ok(Ok(answer)) if answer.get_ref().refunded => Err(key_refunded()),
            Ok(Ok(_)) => Err(limit_reached()),
            Ok(Err(status)) => match ApiError::from(status) {
                err if matches!(err.kind, Kind::InvalidArgument | Kind::Conflict) => Err(err),
                err => {
                    tracing::warn!(reason = %err.reason, operation, "quota check failed: denying");
                    Err(check_failed())
                }
            },
            Err(_) => {
                tracing::warn!(operation, timeout = ?self.timeout, "quota check timed out: denying");
                Err(check_failed())
            }
        }
    }

    /// Gives back what the consumption with `idempotency_key` took. Whether anything was given
    /// back; errors are the caller's to log (the user's request has failed already).
    pub async fn refund(
        &self,
        identity: &Identity,
        idempotency_key: &str,
    ) -> Result<bool, ApiError> {
        let user = identity.require_user()?;
        let request = pb::RefundRequest {
            user_id: user.id.to_string(),
            idempotency_key: idempotency_key.to_owned(),
        };
        let call = crate::grpc::outgoing(request, identity, &self.token, self.timeout);
        let mut client = self.client.clone();
        match tokio::time::timeout(self.timeout, client.refund(call)).await {
            Ok(Ok(answer)) => Ok(answer.into_inner().refunded),
            Ok(Err(status)) => Err(status.into()),
            Err(_) => Err(ApiError::unavailable(
                "svc-usage did not answer the refund in time",
            )),
        }
    }

    /// Consumes, runs `work`, and refunds if the work fails, so a failed request costs nothing.
    /// Without a key of the caller's, one is made up so that the refund can name the consumption.
    ///
    /// A retry with a key consumed before never runs the work nor refunds: granted before, it
    /// returns [`Guarded::Replayed`] with the stored answer; refunded before (the first attempt
    /// failed), 409 `idempotency_key_refunded`; denied before, `limit_reached` again.
    pub async fn guarded<T, F, Fut>(
        &self,
        identity: &Identity,
        operation: &str,
        amount: i64,
        idempotency_key: Option<&str>,
        work: F,
    ) -> Result<Guarded<T>, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let key =
            idempotency_key.map_or_else(|| format!("auto-{}", uuid::Uuid::new_v4()), str::to_owned);
        let answer = self
            .consume(identity, operation, amount, Some(&key))
            .await?;
        if answer.replayed {
            return Ok(Guarded::Replayed(answer));
        }
        let outcome = work().await;
        if outcome.is_err() {
            match self.refund(identity, &key).await {
                Ok(_) => {}
                Err(err) => {
                    tracing::error!(reason = %err.reason, operation, "refund after a failed operation failed")
                }
            }
        }
        outcome.map(Guarded::Done)
    }
}
