//! Health endpoints: liveness of the gateway itself, readiness of what it depends on.

use std::time::{Duration, Instant};

use actix_web::{HttpResponse, get, web};
use chrono::{SecondsFormat, Utc};
use serde::Serialize;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use utoipa::ToSchema;

use crate::kit::Routes;
use crate::state::AppState;
use crate::upstream::ServiceClient;

/// A readiness probe must answer well within a kubelet's probe timeout (1 s by default).
const CHECK_TIMEOUT: Duration = Duration::from_millis(800);

/// A service the gateway forwards to, as the health endpoints see it.
pub struct Upstream {
    name: &'static str,
    /// The name its `grpc.health.v1` reports, so that a server up without this service is not
    /// taken for ready.
    service: &'static str,
    channel: Channel,
}

impl Upstream {
    pub fn new(name: &'static str, service: &'static str, channel: Channel) -> Self {
        Self {
            name,
            service,
            channel,
        }
    }

    /// The service `C` is the client of, reached through `channel`.
    pub fn of<C: ServiceClient>(channel: Channel) -> Self {
        Self::new(C::NAME, C::HEALTH_SERVICE, channel)
    }

    async fn check(&self) -> UpstreamHealth {
        let started = Instant::now();
        let mut client = HealthClient::new(self.channel.clone());
        let mut request = tonic::Request::new(HealthCheckRequest {
            service: self.service.to_owned(),
        });
        request.set_timeout(CHECK_TIMEOUT);
        let status = match tokio::time::timeout(CHECK_TIMEOUT, client.check(request)).await {
            Ok(Ok(reply)) if reply.get_ref().status == ServingStatus::Serving as i32 => "serving",
            Ok(Ok(_)) => "not_serving",
            Ok(Err(_)) => "unreachable",
            Err(_) => "timeout",
        };
        UpstreamHealth {
            name: self.name,
            status,
            latency_ms: started.elapsed().as_secs_f64() * 1000.0,
        }
    }
}

async fn check_all(state: &AppState) -> Vec<UpstreamHealth> {
    futures_util::future::join_all(state.upstreams.iter().map(Upstream::check)).await
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`
    #[schema(example = "ok")]
    pub status: &'static str,
    /// RFC 3339
    pub timestamp: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UpstreamHealth {
    #[schema(example = "svc-auth")]
    pub name: &'static str,
    /// `serving`, `not_serving`, `unreachable` or `timeout`
    #[schema(example = "serving")]
    pub status: &'static str,
    pub latency_ms: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UpstreamsHealth {
    /// `ok` when every upstream is serving; `unavailable` (readiness) or `degraded` (detailed)
    /// otherwise.
    pub status: &'static str,
    /// RFC 3339
    pub timestamp: String,
    pub upstreams: Vec<UpstreamHealth>,
}

fn live() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok",
        timestamp: now(),
    })
}

/// The gateway is up.
#[utoipa::path(
    tag = "health",
    responses((status = 200, description = "The gateway answers", body = Health))
)]
#[get("/health")]
pub async fn health() -> HttpResponse {
    live()
}

/// Liveness: the gateway answers (its upstreams are not consulted).
#[utoipa::path(
    tag = "health",
    responses((status = 200, description = "The gateway answers", body = Health))
)]
#[get("/health/live")]
pub async fn health_live() -> HttpResponse {
    live()
}

/// Readiness: every upstream's gRPC health check answers SERVING.
#[utoipa::path(
    tag = "health",
    responses(
        (status = 200, description = "Every upstream is serving", body = UpstreamsHealth),
        (status = 503, description = "An upstream is down or not serving", body = UpstreamsHealth),
    )
)]
#[get("/health/ready")]
pub async fn health_ready(state: web::Data<AppState>) -> HttpResponse {
    let upstreams = check_all(&state).await;
    let ready = upstreams
        .iter()
        .all(|upstream| upstream.status == "serving");
    let body = UpstreamsHealth {
        status: if ready { "ok" } else { "unavailable" },
        timestamp: now(),
        upstreams,
    };
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Every upstream with its health and the latency of the check (always 200: it informs, the
/// readiness endpoint decides).
#[utoipa::path(
    tag = "health",
    responses((status = 200, description = "Each upstream's health", body = UpstreamsHealth))
)]
#[get("/health/detailed")]
pub async fn health_detailed(state: web::Data<AppState>) -> HttpResponse {
    let upstreams = check_all(&state).await;
    let ready = upstreams
        .iter()
        .all(|upstream| upstream.status == "serving");
    HttpResponse::Ok().json(UpstreamsHealth {
        status: if ready { "ok" } else { "degraded" },
        timestamp: now(),
        upstreams,
    })
}

pub fn routes(routes: &mut Routes) {
    routes
        .add(health)
        .add(health_live)
        .add(health_ready)
        .add(health_detailed);
}
