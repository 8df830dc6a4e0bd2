//! What the gateway hop costs: `GET /users/me` through the gateway against the same user lookup
//! (`Auth.Me`) straight from svc-auth over gRPC, measured in one run, alternating rounds so that
//! noise from a shared machine hits both sides alike.
//!
//! `cargo bench -p tests --bench gateway_hop` (release build). Client, gateway and svc-auth share
//! the machine's cores, so the figures are for comparison, not capacity planning.

// Benchmark and test support: a failed setup step should stop the run with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(dead_code)] // the e2e helpers and `measure` carry more than the benchmark uses

#[path = "../tests/e2e/helpers.rs"]
mod helpers;
mod measure;

use std::time::Duration;

use common::identity::{Identity, UserIdentity};
use common::secret::Secret;
use helpers::*;
use measure::{Sample, measure};
use proto::auth::v1 as pb;

/// Callers of the throughput phase: enough to saturate the machine.
const LOADED: usize = 16;
/// The latency phase has one caller, so that no request waits behind another and the p50
/// difference is the hop itself.
const ALONE: usize = 1;
const ROUND: Duration = Duration::from_secs(3);
const ROUNDS: usize = 3;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let app = spawn_app_with_resolve_cache(Duration::from_secs(30)).await;
    let (user, token) = app.new_creator("bench@genie.test").await;
    let identity = Identity::user(
        UserIdentity {
            id: user["id"].as_str().unwrap().parse()?,
            role: "creator".into(),
            tier: "starter".into(),
            impersonated_by: None,
        },
        "bench",
    );
    let channel = tonic::transport::Channel::from_shared(app.auth_url.clone())?
        .connect()
        .await?;
    let internal = Secret::new(INTERNAL_TOKEN);

    let direct = {
        let client = pb::auth_client::AuthClient::new(channel);
        move || {
            let mut client = client.clone();
            let request = common::grpc::outgoing(
                pb::MeRequest {},
                &identity,
                &internal,
                Duration::from_secs(5),
            );
            async move { client.me(request).await.is_ok() }
        }
    };
    let through_gateway = {
        let client = app.client.clone();
        let url = app.url("/users/me");
        move || {
            let request = client.get(&url).bearer_auth(&token);
            async move {
                match request.send().await {
                    Ok(response) => {
                        response.status().is_success() && response.bytes().await.is_ok()
                    }
                    Err(_) => false,
                }
            }
        }
    };

    measure(LOADED, Duration::from_secs(1), direct.clone()).await;
    measure(LOADED, Duration::from_secs(1), through_gateway.clone()).await;
    println!("gateway hop benchmark: {ROUNDS} alternating rounds of {ROUND:?} per phase");
    for callers in [ALONE, LOADED] {
        let (mut grpc, mut http) = (Sample::default(), Sample::default());
        for _ in 0..ROUNDS {
            grpc.merge(measure(callers, ROUND, direct.clone()).await);
            http.merge(measure(callers, ROUND, through_gateway.clone()).await);
        }
        report(callers, &mut grpc, &mut http);
    }
    Ok(())
}

fn report(callers: usize, grpc: &mut Sample, http: &mut Sample) {
    let (grpc_p50, grpc_p99) = (grpc.percentile_ms(0.50), grpc.percentile_ms(0.99));
    let (http_p50, http_p99) = (http.percentile_ms(0.50), http.percentile_ms(0.99));
    println!("{callers} concurrent caller(s):");
    println!(
        "  direct gRPC Auth.Me      {:>9.0} req/s   p50 {grpc_p50:.3} ms   p99 {grpc_p99:.3} ms   ({} calls)",
        grpc.throughput(),
        grpc.latencies.len()
    );
    println!(
        "  gateway GET /users/me    {:>9.0} req/s   p50 {http_p50:.3} ms   p99 {http_p99:.3} ms   ({} calls)",
        http.throughput(),
        http.latencies.len()
    );
    println!("  gateway added at p50     {:.3} ms", http_p50 - grpc_p50);
    println!(
        "  throughput kept          {:.2} (gateway / direct)",
        http.throughput() / grpc.throughput()
    );
}
