//! Health endpoints: liveness of the gateway itself, readiness of what it depends on.

use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, get, web};
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

/// Directus' ping: the text `pong`, as `text/html` (Express' default for a string).
#[utoipa::path(
    tag = "directus",
    responses((status = 200, description = "`pong`", body = String, content_type = "text/html", example = "pong"))
)]
#[get("/server/ping")]
pub async fn server_ping() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body("pong")
}

/// An upstream check slower than this is `warn` (Directus' default threshold of its own checks
/// is 150 ms; ours cross a gRPC hop and share the machine).
const WARN_AFTER_MS: f64 = 250.0;

/// Directus' health answer (draft-inadarei-api-health-check): `status` for everyone, the
/// checks for administrators.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerHealth {
    /// `ok`; `warn` when an upstream answered its check slower than 250 ms; `error` (503) when
    /// one is down, not serving or did not answer within 800 ms.
    #[schema(example = "ok")]
    pub status: &'static str,
    /// The gateway's version (administrators only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub release_id: Option<&'static str>,
    /// Administrators only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, example = "genie-gateway")]
    pub service_id: Option<&'static str>,
    /// Per upstream (`svc-auth:responseTime`, …), administrators only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub checks: Option<BTreeMap<String, Vec<HealthCheck>>>,
}

/// One check, as Directus writes its own.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    /// `ok`, `warn` or `error`.
    #[schema(example = "ok")]
    pub status: &'static str,
    /// `system`: a service this one depends on.
    #[schema(example = "system")]
    pub component_type: &'static str,
    /// How long the gRPC health check took.
    pub observed_value: f64,
    #[schema(example = "ms")]
    pub observed_unit: &'static str,
    /// Above it (ms), `warn`.
    pub threshold: f64,
    /// Why it is not `ok`: `not_serving`, `unreachable` or `timeout`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub output: Option<&'static str>,
}

fn check_of(upstream: &UpstreamHealth) -> HealthCheck {
    let status = match upstream.status {
        "serving" if upstream.latency_ms > WARN_AFTER_MS => "warn",
        "serving" => "ok",
        _ => "error",
    };
    HealthCheck {
        status,
        component_type: "system",
        observed_value: (upstream.latency_ms * 1000.0).round() / 1000.0,
        observed_unit: "ms",
        threshold: WARN_AFTER_MS,
        output: (status == "error").then_some(upstream.status),
    }
}

/// The worst of the checks: `error` over `warn` over `ok`.
fn overall(checks: &[HealthCheck]) -> &'static str {
    if checks.iter().any(|check| check.status == "error") {
        "error"
    } else if checks.iter().any(|check| check.status == "warn") {
        "warn"
    } else {
        "ok"
    }
}

/// Directus' health: every upstream's gRPC health, as `ok`, `warn` or `error` (503). An
/// administrator's token adds the checks; any other caller, a bad token included, gets the
/// status alone (a health probe is never refused for its token).
#[utoipa::path(
    tag = "directus",
    security((), ("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "`ok` or `warn`", body = ServerHealth, content_type = "application/health+json"),
        (status = 503, description = "`error`: an upstream is down or not serving", body = ServerHealth, content_type = "application/health+json"),
    )
)]
#[get("/server/health")]
pub async fn server_health(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let (upstreams, admin) = futures_util::future::join(check_all(&state), async {
        crate::session::authenticate(&req)
            .await
            .is_ok_and(|caller| caller.require_admin().is_ok())
    })
    .await;
    let checks: Vec<HealthCheck> = upstreams.iter().map(check_of).collect();
    let status = overall(&checks);
    let body = ServerHealth {
        status,
        release_id: admin.then_some(env!("CARGO_PKG_VERSION")),
        service_id: admin.then_some("genie-gateway"),
        checks: admin.then(|| {
            upstreams
                .iter()
                .zip(checks)
                .map(|(upstream, check)| (format!("{}:responseTime", upstream.name), vec![check]))
                .collect()
        }),
    };
    let mut response = if status == "error" {
        HttpResponse::ServiceUnavailable()
    } else {
        HttpResponse::Ok()
    };
    response
        .content_type("application/health+json; charset=utf-8")
        .body(serde_json::to_string(&body).unwrap_or_else(|_| r#"{"status":"error"}"#.to_owned()))
}

pub fn routes(routes: &mut Routes) {
    routes
        .add(health)
        .add(health_live)
        .add(health_ready)
        .add(health_detailed)
        .add(server_ping)
        .add(server_health);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(status: &'static str, latency_ms: f64) -> UpstreamHealth {
        UpstreamHealth {
            name: "svc-auth",
            status,
            latency_ms,
        }
    }

    #[test]
    fn checks_map_readiness_to_ok_warn_and_error() {
        let ok = check_of(&upstream("serving", 3.0));
        assert_eq!((ok.status, ok.output), ("ok", None));
        let slow = check_of(&upstream("serving", 400.0));
        assert_eq!(slow.status, "warn");
        for down in ["not_serving", "unreachable", "timeout"] {
            let check = check_of(&upstream(down, 1.0));
            assert_eq!((check.status, check.output), ("error", Some(down)));
        }
        assert_eq!(overall(&[check_of(&upstream("serving", 1.0))]), "ok");
        assert_eq!(overall(&[ok, slow]), "warn");
        assert_eq!(
            overall(&[
                check_of(&upstream("serving", 400.0)),
                check_of(&upstream("timeout", 800.0))
            ]),
            "error"
        );
        assert_eq!(overall(&[]), "ok");
    }
}
