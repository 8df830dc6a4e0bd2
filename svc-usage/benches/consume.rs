//! `Consume` over gRPC at 64 concurrent callers against `pgbench -b simple-update` (one UPDATE,
//! one SELECT, one INSERT per transaction) on the same database, in alternating rounds so that a
//! shared machine's noise hits both alike. Then counts over-grants: a user granted more than the
//! limit, or a grant the counters do not show. Must be 0.
//!
//! `cargo bench -p svc-usage --bench consume` (release build; needs `pgbench` on PATH).
// A benchmark is a measuring program run by hand, not a service: a step that cannot run (no
// database, pgbench missing, a refused call) ends it with the reason, as a failed test would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::identity::{Identity, Principal};
use common::secret::Secret;
use common::testing::{fresh_database, random_listener};
use proto::usage::v1 as pb;
use proto::usage::v1::usage_client::UsageClient;
use tokio_postgres::NoTls;
use uuid::Uuid;

const CALLERS: usize = 64;
const ROUND: Duration = Duration::from_secs(5);
const ROUNDS: usize = 2;
/// Few enough users that many reach their limit (creator: 50 captions), so denials are exercised.
const USERS: usize = 200;
const LIMIT: i64 = 50;

struct Run {
    latencies: Vec<Duration>,
    elapsed: Duration,
}

fn percentile_ms(latencies: &mut [Duration], p: f64) -> f64 {
    latencies.sort_unstable();
    let index = ((latencies.len() as f64 - 1.0) * p).round() as usize;
    latencies[index].as_secs_f64() * 1000.0
}

/// One pgbench round; returns transactions per second.
fn pgbench(database: &str, seconds: u64) -> anyhow::Result<(f64, f64)> {
    let output = std::process::Command::new("pgbench")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-n",
            "-b",
            "simple-update",
        ])
        .args([
            "-c",
            &CALLERS.to_string(),
            "-j",
            "2",
            "-T",
            &seconds.to_string(),
            database,
        ])
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "pgbench: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let number_after = |label: &str| -> anyhow::Result<f64> {
        let line = text
            .lines()
            .find(|line| line.starts_with(label))
            .ok_or_else(|| anyhow::anyhow!("pgbench printed no {label:?}: {text}"))?;
        let value = line[label.len()..]
            .split_whitespace()
            .next()
            .unwrap_or_default();
        Ok(value.parse()?)
    };
    Ok((number_after("tps =")?, number_after("latency average =")?))
}

async fn consume_round(
    client: &UsageClient<tonic::transport::Channel>,
    token: &Secret,
    users: &Arc<Vec<Uuid>>,
    granted: &Arc<Mutex<HashMap<Uuid, i64>>>,
    with_keys: bool,
) -> Run {
    let started = Instant::now();
    let deadline = started + ROUND;
    let workers: Vec<_> = (0..CALLERS)
        .map(|worker| {
            let (mut client, token, users, granted) = (
                client.clone(),
                token.clone(),
                Arc::clone(users),
                Arc::clone(granted),
            );
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut next = worker;
                while Instant::now() < deadline {
                    next = (next * 31 + 17) % users.len();
                    let user = users[next];
                    let request = pb::ConsumeRequest {
                        user_id: user.to_string(),
                        tier: "creator".into(),
                        operation: "captions".into(),
                        amount: 1,
                        idempotency_key: if with_keys {
                            Uuid::new_v4().to_string()
                        } else {
                            String::new()
                        },
                    };
                    let call = common::grpc::outgoing(
                        request,
                        &Identity {
                            principal: Principal::System,
                            request_id: "bench".into(),
                        },
                        &token,
                        Duration::from_secs(10),
                    );
                    let sent = Instant::now();
                    let answer = client
                        .consume(call)
                        .await
                        .expect("consume answers")
                        .into_inner();
                    latencies.push(sent.elapsed());
                    if answer.granted {
                        *granted.lock().unwrap().entry(user).or_default() += 1;
                    }
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await.expect("worker"));
    }
    Run {
        latencies,
        elapsed: started.elapsed(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let database = fresh_database().await;
    let token = Secret::new("internal token of the consume benchmark 0123456789");
    let mut config = svc_usage::Config::local(database.url.clone(), token.clone());
    config.database_pool_size = 32;
    let (listener, addr) = random_listener().await;
    tokio::spawn(svc_usage::run(config, listener, std::future::pending()));
    let client = UsageClient::new(
        tonic::transport::Channel::from_shared(format!("http://{addr}"))?.connect_lazy(),
    );

    let init = std::process::Command::new("pgbench")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-i",
            "-q",
            "-s",
            "4",
            &database.name,
        ])
        .output()?;
    anyhow::ensure!(
        init.status.success(),
        "pgbench -i: {}",
        String::from_utf8_lossy(&init.stderr)
    );

    let users: Arc<Vec<Uuid>> = Arc::new((0..USERS).map(|_| Uuid::new_v4()).collect());
    let granted = Arc::new(Mutex::new(HashMap::new()));
    let (mut pg_tps, mut pg_latency) = (Vec::new(), Vec::new());
    let mut plain = Run {
        latencies: Vec::new(),
        elapsed: Duration::ZERO,
    };
    let mut keyed = Run {
        latencies: Vec::new(),
        elapsed: Duration::ZERO,
    };
    for _ in 0..ROUNDS {
        let (tps, latency) = pgbench(&database.name, ROUND.as_secs())?;
        pg_tps.push(tps);
        pg_latency.push(latency);
        let round = consume_round(&client, &token, &users, &granted, false).await;
        plain.latencies.extend(round.latencies);
        plain.elapsed += round.elapsed;
        let round = consume_round(&client, &token, &users, &granted, true).await;
        keyed.latencies.extend(round.latencies);
        keyed.elapsed += round.elapsed;
    }

    let (db, connection) = tokio_postgres::connect(&database.url, NoTls).await?;
    tokio::spawn(connection);
    let mut over_grants = 0;
    let granted = granted.lock().unwrap().clone();
    for user in users.iter() {
        let counted: i64 = db
            .query_opt(
                "SELECT used FROM usage.counters WHERE user_id = $1",
                &[user],
            )
            .await?
            .map_or(0, |row| row.get(0));
        let seen = granted.get(user).copied().unwrap_or(0);
        over_grants += (seen - LIMIT).max(0) + (seen - counted).abs() + (counted - LIMIT).max(0);
    }

    let pg = pg_tps.iter().sum::<f64>() / pg_tps.len() as f64;
    let pg_avg_latency = pg_latency.iter().sum::<f64>() / pg_latency.len() as f64;
    println!(
        "consume benchmark: {CALLERS} concurrent callers, {ROUNDS} alternating rounds of {ROUND:?}, {USERS} users, limit {LIMIT}"
    );
    println!("  pgbench simple-update        {pg:>9.0} tx/s   latency avg {pg_avg_latency:.3} ms");
    for (name, run) in [
        ("Consume (no key)", &mut plain),
        ("Consume (idempotency key)", &mut keyed),
    ] {
        let throughput = run.latencies.len() as f64 / run.elapsed.as_secs_f64();
        let (p50, p99) = (
            percentile_ms(&mut run.latencies, 0.50),
            percentile_ms(&mut run.latencies, 0.99),
        );
        println!(
            "  {name:<28} {throughput:>9.0} req/s  p50 {p50:.3} ms  p99 {p99:.3} ms   ratio to pgbench {:.2}",
            throughput / pg
        );
    }
    let total_granted: i64 = granted.values().sum();
    println!(
        "  granted {total_granted} of {} requests; over-grants: {over_grants}",
        plain.latencies.len() + keyed.latencies.len()
    );
    anyhow::ensure!(over_grants == 0, "over-grants must be 0");
    Ok(())
}
