//! The quota client every billable service calls before doing its work (docs/DESIGN.md §2): it
//! consumes from svc-usage (or, for a standing gauge such as `platforms`, takes a unit of it),
//! refuses when the limit is reached, and is fail-closed: any error, timeout or unreachable
//! svc-usage denies with reason `quota_check_failed`, never lets the work through.

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

/// The reason of a denial because svc-usage could not answer.
pub const CHECK_FAILED: &str = "quota_check_failed";

fn check_failed() -> ApiError {
    ApiError::new(
        Kind::PermissionDenied,
        CHECK_FAILED,
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

/// A retry with the key of a gauge's unit that was given back (the work it was taken for failed,
/// or the key was released before its acquire arrived): nothing is taken again under that key.
pub fn key_released() -> ApiError {
    ApiError::conflict(
        "idempotency_key_released",
        "the unit taken under this key was given back; send the request again with a new key",
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
    /// back: not when it was given back before, nor when nothing was ever consumed under the key
    /// (a job that failed before its consumption). Errors are the caller's to log (the user's
    /// request has failed already).
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
            Ok(Err(status)) if status.code() == tonic::Code::NotFound => Ok(false),
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

    /// Takes one unit of the gauge `operation` (a standing count, such as `platforms`) for the
    /// calling user, held under `key`: the name of what will hold it (`creator_profile:<id>`), made
    /// before the call so that a retry never takes two. Granted: the answer (`replayed` when the
    /// unit was taken under this key before). Limit reached: 403 `limit_reached`. A key whose
    /// unit was given back: 409 `idempotency_key_released`. The caller's own mistakes come back as
    /// they are; anything else denies with `quota_check_failed` (and then the unit may or may not
    /// have been taken: [`Self::held`] gives it back).
    pub async fn acquire(
        &self,
        identity: &Identity,
        operation: &str,
        key: &str,
    ) -> Result<pb::GaugeAnswer, ApiError> {
        let user = identity.require_user()?;
        let request = pb::AcquireGaugeRequest {
            user_id: user.id.to_string(),
            tier: user.tier.clone(),
            operation: operation.to_owned(),
            idempotency_key: key.to_owned(),
        };
        let call = crate::grpc::outgoing(request, identity, &self.token, self.timeout);
        let mut client = self.client.clone();
        match tokio::time::timeout(self.timeout, client.acquire_gauge(call)).await {
            Ok(Ok(answer)) if answer.get_ref().granted => Ok(answer.into_inner()),
            Ok(Ok(answer)) if answer.get_ref().released => Err(key_released()),
            Ok(Ok(_)) => Err(limit_reached()),
            Ok(Err(status)) => match ApiError::from(status) {
                err if matches!(err.kind, Kind::InvalidArgument | Kind::Conflict) => Err(err),
                err => {
                    tracing::warn!(reason = %err.reason, operation, "gauge acquire failed: denying");
                    Err(check_failed())
                }
            },
            Err(_) => {
                tracing::warn!(operation, timeout = ?self.timeout, "gauge acquire timed out: denying");
                Err(check_failed())
            }
        }
    }

    /// Gives back the unit of `operation` held under `key`; idempotent (a second release gives
    /// nothing), never below 0, and a key never acquired is remembered as released so that a late
    /// acquire under it takes nothing. Whether a unit was given back; errors are the caller's to
    /// log or retry.
    pub async fn release(
        &self,
        identity: &Identity,
        operation: &str,
        key: &str,
    ) -> Result<bool, ApiError> {
        let user = identity.require_user()?;
        let request = pb::ReleaseGaugeRequest {
            user_id: user.id.to_string(),
            operation: operation.to_owned(),
            idempotency_key: key.to_owned(),
        };
        let call = crate::grpc::outgoing(request, identity, &self.token, self.timeout);
        let mut client = self.client.clone();
        match tokio::time::timeout(self.timeout, client.release_gauge(call)).await {
            Ok(Ok(answer)) => Ok(answer.into_inner().released),
            Ok(Err(status)) => Err(status.into()),
            Err(_) => Err(ApiError::unavailable(
                "svc-usage did not answer the release in time",
            )),
        }
    }

    /// Takes a unit of the gauge under `key`, runs `work` (which creates what `key` names), and
    /// gives the unit back if the work fails, so that a failed request holds nothing. When the
    /// acquire's outcome is unknown (svc-usage late or gone: `quota_check_failed`), the unit is
    /// given back too, in case it was taken and only the answer lost; the work never runs then.
    /// A replayed grant (the unit was taken under `key` before) runs the work: the unit is the
    /// one `key` holds, and the work is what makes it held. `key` must therefore be new for each
    /// thing it names.
    pub async fn held<T, F, Fut>(
        &self,
        identity: &Identity,
        operation: &str,
        key: &str,
        work: F,
    ) -> Result<T, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        if let Err(err) = self.acquire(identity, operation, key).await {
            if err.reason == CHECK_FAILED
                && let Err(release) = self.release(identity, operation, key).await
            {
                tracing::warn!(reason = %release.reason, operation, "release after a failed acquire failed");
            }
            return Err(err);
        }
        let outcome = work().await;
        if outcome.is_err()
            && let Err(err) = self.release(identity, operation, key).await
        {
            tracing::error!(reason = %err.reason, operation, "release after a failed operation failed: one unit stays held");
        }
        outcome
    }
}
