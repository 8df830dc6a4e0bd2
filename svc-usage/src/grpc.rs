//! `genie.usage.v1.Usage` over gRPC: translates messages to and from [`UsageService`] calls.

use std::sync::Arc;

use common::grpc::identity;
use proto::usage::v1 as pb;
use tonic::{Request, Response, Status};

use crate::cycle::Cycle;
use crate::service::{Answer, GaugeAnswer, UsageService};

fn rfc3339(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn cycle_strings(cycle: Cycle) -> (String, String) {
    (rfc3339(cycle.start), rfc3339(cycle.end))
}

impl From<Answer> for pb::QuotaAnswer {
    fn from(answer: Answer) -> Self {
        let (cycle_start, cycle_end) = cycle_strings(answer.cycle);
        Self {
            granted: answer.granted,
            operation: answer.operation,
            used: answer.used,
            limit: answer.limit,
            remaining: answer.remaining,
            cycle_start,
            cycle_end,
            replayed: answer.replayed,
            refunded: answer.refunded,
        }
    }
}

impl From<GaugeAnswer> for pb::GaugeAnswer {
    fn from(answer: GaugeAnswer) -> Self {
        Self {
            granted: answer.granted,
            operation: answer.operation,
            used: answer.used,
            limit: answer.limit,
            remaining: answer.remaining,
            replayed: answer.replayed,
            released: answer.released,
        }
    }
}

#[derive(Clone)]
pub struct UsageGrpc {
    service: Arc<UsageService>,
}

impl UsageGrpc {
    pub fn new(service: Arc<UsageService>) -> Self {
        Self { service }
    }
}

#[tonic::async_trait]
impl pb::usage_server::Usage for UsageGrpc {
    async fn check(
        &self,
        request: Request<pb::CheckRequest>,
    ) -> Result<Response<pb::QuotaAnswer>, Status> {
        let caller = identity(&request)?;
        let body = request.into_inner();
        let answer = self
            .service
            .check(
                &caller,
                &body.user_id,
                &body.tier,
                &body.operation,
                body.amount,
            )
            .await?;
        Ok(Response::new(answer.into()))
    }

    async fn consume(
        &self,
        request: Request<pb::ConsumeRequest>,
    ) -> Result<Response<pb::QuotaAnswer>, Status> {
        let caller = identity(&request)?;
        let body = request.into_inner();
        let answer = self
            .service
            .consume(
                &caller,
                &body.user_id,
                &body.tier,
                &body.operation,
                body.amount,
                &body.idempotency_key,
            )
            .await?;
        Ok(Response::new(answer.into()))
    }

    async fn acquire_gauge(
        &self,
        request: Request<pb::AcquireGaugeRequest>,
    ) -> Result<Response<pb::GaugeAnswer>, Status> {
        let caller = identity(&request)?;
        let body = request.into_inner();
        let answer = self
            .service
            .acquire_gauge(
                &caller,
                &body.user_id,
                &body.tier,
                &body.operation,
                &body.idempotency_key,
            )
            .await?;
        Ok(Response::new(answer.into()))
    }

    async fn release_gauge(
        &self,
        request: Request<pb::ReleaseGaugeRequest>,
    ) -> Result<Response<pb::ReleaseGaugeAnswer>, Status> {
        let caller = identity(&request)?;
        let body = request.into_inner();
        let release = self
            .service
            .release_gauge(
                &caller,
                &body.user_id,
                &body.operation,
                &body.idempotency_key,
            )
            .await?;
        Ok(Response::new(pb::ReleaseGaugeAnswer {
            released: release.released,
            operation: release.operation,
            used: release.used,
        }))
    }

    async fn refund(
        &self,
        request: Request<pb::RefundRequest>,
    ) -> Result<Response<pb::RefundAnswer>, Status> {
        let caller = identity(&request)?;
        let body = request.into_inner();
        let refund = self
            .service
            .refund(&caller, &body.user_id, &body.idempotency_key)
            .await?;
        Ok(Response::new(pb::RefundAnswer {
            refunded: refund.refunded,
            operation: refund.operation,
            amount: refund.amount,
        }))
    }

    async fn report(
        &self,
        request: Request<pb::ReportRequest>,
    ) -> Result<Response<pb::UsageReport>, Status> {
        let caller = identity(&request)?;
        let body = request.into_inner();
        let report = self
            .service
            .report(&caller, &body.user_id, &body.tier)
            .await?;
        let (cycle_start, cycle_end) = cycle_strings(report.cycle);
        Ok(Response::new(pb::UsageReport {
            tier: report.tier,
            cycle_start,
            cycle_end,
            operations: report
                .operations
                .into_iter()
                .map(|(operation, used, limit, remaining)| pb::OperationUsage {
                    operation,
                    used,
                    limit,
                    remaining,
                })
                .collect(),
        }))
    }

    async fn set_cycle_anchor(
        &self,
        request: Request<pb::SetCycleAnchorRequest>,
    ) -> Result<Response<pb::CycleAnchor>, Status> {
        let caller = identity(&request)?;
        let body = request.into_inner();
        let (anchor, cycle) = self
            .service
            .set_cycle_anchor(&caller, &body.user_id, &body.anchor)
            .await?;
        let (cycle_start, cycle_end) = cycle_strings(cycle);
        Ok(Response::new(pb::CycleAnchor {
            user_id: body.user_id,
            anchor: anchor.map(rfc3339).unwrap_or_default(),
            cycle_start,
            cycle_end,
        }))
    }
}
