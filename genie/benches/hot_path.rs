//! The hot paths of the running platform against the database's own ceiling, in one run:
//! `pgbench` select-only (`-S`) and simple-update (`-N`) on a scratch database, then the release
//! `genie up` (a child process started with environment variables only, on a fresh database)
//! driven over HTTP through the gateway, each route for 10 s on 32 keep-alive connections. Prints
//! req/s, p50, p99, the ratio to each pgbench ceiling, where the machine's CPU went, and the
//! genie process's peak memory under load; then one table, also as Markdown.
//!
//! `cargo bench -p genie --bench hot_path` (or `./deploy/bench.sh`, which starts PostgreSQL
//! first). Needs `pgbench` on PATH and PostgreSQL at `TEST_DATABASE_ADMIN_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`, trust). The client, genie and PostgreSQL share
//! the machine's cores.

// A benchmark is a measuring program run by hand: a step that cannot run (no database, pgbench
// missing, a refused call) ends it with the reason, as a failed test would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(dead_code)] // `measure` carries more than this benchmark uses

#[path = "../../tests/benches/measure.rs"]
mod measure;

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::testing::{admin_url, connect};
use futures_util::StreamExt as _;
use measure::{Sample, measure_each};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tests::{GENIE_RBAC_SECRET, GenieProcess};

/// Concurrent keep-alive connections of every HTTP phase, and pgbench's clients.
const CONNECTIONS: usize = 32;
/// Each phase's measured length, and the untimed warm-up before it.
const PHASE: Duration = Duration::from_secs(10);
const WARM_UP: Duration = Duration::from_secs(2);
/// pgbench's scale: 1,000,000 accounts.
const PGBENCH_SCALE: &str = "10";
const ADMIN_EMAIL: &str = "admin@example.com";
const ADMIN_PASSWORD: &str = "hot path benchmark administrator";
const PASSWORD: &str = "hot path benchmark creator";

/// What one measured load gave.
struct Row {
    name: String,
    /// Requests (or transactions) per second.
    throughput: f64,
    /// p50 and p99 in ms; pgbench reports only its average latency (`p99` is then `None`).
    p50: f64,
    p99: Option<f64>,
    /// Shares of the machine's CPU time over the phase: genie, this client, everything else
    /// (PostgreSQL, pgbench, the rest of the machine); and the share left idle.
    cpu: Cpu,
    /// genie's CPU by thread name, as shares of the machine's CPU time, largest first.
    threads: Vec<(String, f64)>,
    /// Requests not answered 200 (each still counted in the figures), and the first of them.
    errors: u64,
    first_error: Option<String>,
}

#[derive(Clone, Copy)]
struct Cpu {
    genie: f64,
    client: f64,
    rest: f64,
    idle: f64,
}

/// Cumulative CPU ticks of the machine and of the two processes we know.
#[derive(Clone, Copy)]
struct Ticks {
    total: u64,
    idle: u64,
    genie: u64,
    client: u64,
}

fn process_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let Some((_, after)) = stat.rsplit_once(')') else {
        return 0;
    };
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    field(14).unwrap_or(0) + field(15).unwrap_or(0)
}

/// Ticks of each of `pid`'s threads, summed by thread name (`/proc/<pid>/task/*/comm`).
fn thread_ticks(pid: u32) -> std::collections::BTreeMap<String, u64> {
    let mut by_name = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return by_name;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        let ticks = stat.rsplit_once(')').map_or(0, |(_, after)| {
            let fields: Vec<&str> = after.split_whitespace().collect();
            let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
            field(14).unwrap_or(0) + field(15).unwrap_or(0)
        });
        *by_name.entry(name.trim().to_owned()).or_insert(0) += ticks;
    }
    by_name
}

fn ticks(genie: Option<u32>) -> Ticks {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let cpu: Vec<u64> = stat
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total = cpu.iter().take(8).sum();
    Ticks {
        total,
        idle: cpu[3] + cpu[4],
        genie: genie.map_or(0, process_ticks),
        client: process_ticks(std::process::id()),
    }
}

fn cpu_between(before: Ticks, after: Ticks) -> Cpu {
    let total = (after.total - before.total).max(1) as f64;
    let idle = (after.idle - before.idle) as f64;
    let genie = (after.genie - before.genie) as f64;
    let client = (after.client - before.client) as f64;
    Cpu {
        genie: genie / total,
        client: client / total,
        rest: ((total - idle - genie - client) / total).max(0.0),
        idle: idle / total,
    }
}

/// One pgbench run on `database`: (tps, average latency in ms).
fn pgbench(database: &str, mode: &str) -> (f64, f64) {
    let output = std::process::Command::new("pgbench")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-n", mode])
        .args(["-c", &CONNECTIONS.to_string(), "-j", "2"])
        .args(["-T", &PHASE.as_secs().to_string(), database])
        .output()
        .expect("run pgbench (is it on PATH?)");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "pgbench {mode}: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let number_after = |label: &str| -> f64 {
        let line = text
            .lines()
            .find(|line| line.starts_with(label))
            .unwrap_or_else(|| panic!("pgbench printed no {label:?}: {text}"));
        line[label.len()..]
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("pgbench's {label:?} is no number: {line}"))
    };
    (number_after("tps ="), number_after("latency average ="))
}

/// pgbench `-S` and `-N` on a scratch database of their own, dropped afterwards.
async fn ceilings() -> (Row, Row) {
    let admin = connect(&admin_url()).await;
    let name = format!("genie_bench_pgbench_{}", std::process::id());
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .await
        .expect("drop a scratch database left behind");
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create pgbench's scratch database");
    println!("pgbench -i -s {PGBENCH_SCALE} on {name} …");
    let init = std::process::Command::new("pgbench")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-i", "-q"])
        .args(["-s", PGBENCH_SCALE, &name])
        .output()
        .expect("run pgbench -i (is it on PATH?)");
    assert!(
        init.status.success(),
        "pgbench -i: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let mut rows = Vec::new();
    for (mode, label) in [
        ("-S", "pgbench select-only (-S)"),
        ("-N", "pgbench simple-update (-N)"),
    ] {
        println!("{label}: {CONNECTIONS} clients, -j 2, {PHASE:?} …");
        let before = ticks(None);
        let (tps, average) = {
            let name = name.clone();
            tokio::task::spawn_blocking(move || pgbench(&name, mode))
                .await
                .unwrap()
        };
        let cpu = cpu_between(before, ticks(None));
        rows.push(Row {
            name: label.to_owned(),
            throughput: tps,
            p50: average,
            p99: None,
            cpu,
            threads: Vec::new(),
            errors: 0,
            first_error: None,
        });
    }
    admin
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .expect("drop pgbench's scratch database");
    let update = rows.pop().unwrap();
    let select = rows.pop().unwrap();
    (select, update)
}

/// The release `genie up`, on a fresh database, with nothing but environment variables.
struct Genie {
    process: GenieProcess,
}

impl Genie {
    async fn up() -> Self {
        let env = vec![
            ("ADMIN_EMAIL", ADMIN_EMAIL.to_owned()),
            ("ADMIN_PASSWORD", ADMIN_PASSWORD.to_owned()),
            // The set-up registers and logs in one user per connection from one address.
            ("GATEWAY_REGISTER_LIMIT", "1000".to_owned()),
            ("GATEWAY_LOGIN_LIMIT", "1000".to_owned()),
        ];
        let log = std::fs::File::create(genie_log()).expect("create genie's log file");
        let process = GenieProcess::up(
            env!("CARGO_BIN_EXE_genie"),
            env,
            Stdio::from(log),
            Duration::from_secs(30),
        )
        .await;
        Self { process }
    }

    fn url(&self, path: &str) -> String {
        self.process.url(path)
    }

    fn pid(&self) -> u32 {
        self.process.pid()
    }

    fn memory(&self, field: &str) -> u64 {
        self.process.memory(field)
    }

    /// Resets the process's peak resident set (VmHWM) to its current one (`clear_refs`, 5).
    fn reset_peak_memory(&self) -> bool {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5").is_ok()
    }

    /// Established TCP connections accepted by the gateway's port (IPv4 loopback).
    fn open_connections(&self) -> usize {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        let local = format!("0100007F:{:04X}", self.process.port);
        table
            .lines()
            .skip(1)
            .filter(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                fields.get(1) == Some(&local.as_str()) && fields.get(3) == Some(&"01")
            })
            .count()
    }

    async fn stop(mut self) {
        self.process.kill().await;
        let admin = connect(&admin_url()).await;
        let _ = admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.process.database
            ))
            .await;
    }
}

/// Where genie's log lines (JSON, warnings and errors) go.
fn genie_log() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("hot-path-genie-{}.log", std::process::id()))
}

/// One HTTP/1.1 keep-alive connection: a client used by one caller at a time, allowed a single
/// pooled connection.
fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("build the benchmark's HTTP client")
}

async fn call(request: reqwest::RequestBuilder, wanted: StatusCode) -> Value {
    let response = request.send().await.expect("send");
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(status, wanted, "{body}");
    body
}

/// A creator on the unlimited `studio` tier with a creator profile holding credentials.
struct User {
    token: String,
    profile: String,
}

async fn new_user(genie: &Genie, http: &reqwest::Client, admin: &str, index: usize) -> User {
    let email = format!("bench-{index}@example.com");
    let invite = call(
        http.post(genie.url("/api/invites"))
            .bearer_auth(admin)
            .json(&json!({})),
        StatusCode::OK,
    )
    .await;
    let registered = call(
        http.post(genie.url("/api/register"))
            .json(&json!({"email": email, "password": PASSWORD, "invite_code": invite["code"]})),
        StatusCode::OK,
    )
    .await;
    let id = registered["user"]["id"].clone();
    call(
        http.post(genie.url("/api/rbac-sync"))
            .header("X-RBAC-SYNC-SECRET", GENIE_RBAC_SECRET)
            .json(&json!({"user_id": id, "pricing_tier": "studio"})),
        StatusCode::OK,
    )
    .await;
    let token = login(genie, http, &email, PASSWORD).await;
    let created = call(
        http.post(genie.url("/api/credentials/create-profile"))
            .bearer_auth(&token)
            .json(&json!({
                "platform": "onlyfans",
                "username": format!("bench{index}"),
                "credentials": {"email": email, "password": "correct-horse-battery-staple-42"},
            })),
        StatusCode::OK,
    )
    .await;
    User {
        token,
        profile: created["profile"]["id"].as_str().unwrap().to_owned(),
    }
}

async fn login(genie: &Genie, http: &reqwest::Client, email: &str, password: &str) -> String {
    let body = call(
        http.post(genie.url("/auth/login"))
            .json(&json!({"email": email, "password": password})),
        StatusCode::OK,
    )
    .await;
    body["data"]["access_token"].as_str().unwrap().to_owned()
}

/// What a phase sends: one request of connection `caller`'s user.
type Build = Arc<dyn Fn(&reqwest::Client, &User) -> reqwest::RequestBuilder + Send + Sync>;

/// Runs `build` on every connection, each for its own user: a warm-up, then `PHASE` measured.
async fn http_phase(
    genie: &Genie,
    clients: &Arc<Vec<reqwest::Client>>,
    users: &Arc<Vec<User>>,
    name: &str,
    build: Build,
    sent: &Arc<AtomicU64>,
) -> Row {
    println!("{name}: {CONNECTIONS} connections, {PHASE:?} …");
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let run = |length| {
        let (clients, users, build, sent, errors, first_error) = (
            Arc::clone(clients),
            Arc::clone(users),
            Arc::clone(&build),
            Arc::clone(sent),
            Arc::clone(&errors),
            Arc::clone(&first_error),
        );
        // A request answered otherwise than 200 is counted and reported, not hidden; the
        // connection goes on.
        measure_each(CONNECTIONS, length, move |caller| {
            let request = build(&clients[caller], &users[caller]);
            let (sent, errors, first_error) = (
                Arc::clone(&sent),
                Arc::clone(&errors),
                Arc::clone(&first_error),
            );
            async move {
                let error = match request.send().await {
                    Ok(response) if response.status() == StatusCode::OK => {
                        match response.bytes().await {
                            Ok(_) => None,
                            Err(error) => Some(error.to_string()),
                        }
                    }
                    Ok(response) => {
                        let status = response.status();
                        Some(format!(
                            "{status}: {}",
                            response.text().await.unwrap_or_default()
                        ))
                    }
                    Err(error) => Some(error.to_string()),
                };
                match error {
                    None => {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(error) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        first_error.lock().unwrap().get_or_insert(error);
                    }
                }
                true
            }
        })
    };
    run(WARM_UP).await;
    let warm_up_errors = errors.swap(0, Ordering::Relaxed);
    if warm_up_errors > 0 {
        println!(
            "  warm-up: {warm_up_errors} requests not answered 200, e.g. {:?}",
            first_error.lock().unwrap().take()
        );
    }
    let before = ticks(Some(genie.pid()));
    let threads_before = thread_ticks(genie.pid());
    let mut sample: Sample = run(PHASE).await;
    let after = ticks(Some(genie.pid()));
    let cpu = cpu_between(before, after);
    let total = (after.total - before.total).max(1) as f64;
    let mut threads: Vec<(String, f64)> = thread_ticks(genie.pid())
        .into_iter()
        .map(|(name, ticks)| {
            let earlier = threads_before.get(&name).copied().unwrap_or(0);
            (name, ticks.saturating_sub(earlier) as f64 / total)
        })
        .filter(|(_, share)| *share >= 0.005)
        .collect();
    threads.sort_by(|a, b| b.1.total_cmp(&a.1));
    let open = genie.open_connections();
    assert_eq!(
        open, CONNECTIONS,
        "the gateway should hold exactly one connection per caller"
    );
    Row {
        name: name.to_owned(),
        throughput: sample.throughput(),
        p50: sample.percentile_ms(0.50),
        p99: Some(sample.percentile_ms(0.99)),
        cpu,
        threads,
        errors: errors.load(Ordering::Relaxed),
        first_error: first_error.lock().unwrap().take(),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let (select, update) = ceilings().await;

    let genie = Genie::up().await;
    let setup = client();
    let admin = login(&genie, &setup, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    println!("creating {CONNECTIONS} studio creators with a creator profile each …");
    // Four at a time: each registration and login is an argon2 hash, and svc-auth refuses
    // hashes beyond its queue.
    let users: Vec<User> = futures_util::stream::iter(0..CONNECTIONS)
        .map(|index| new_user(&genie, &setup, &admin, index))
        .buffered(4)
        .collect()
        .await;
    let users = Arc::new(users);
    let clients: Arc<Vec<reqwest::Client>> = Arc::new((0..CONNECTIONS).map(|_| client()).collect());
    let peak_at_start = genie.memory("VmHWM");
    let reset = genie.reset_peak_memory();

    let increments = Arc::new(AtomicU64::new(0));
    let other = Arc::new(AtomicU64::new(0));
    let url = |path: &str| genie.url(path);
    let phases: Vec<(&str, Build, &Arc<AtomicU64>)> = vec![
        (
            "GET /users/me",
            {
                let url = url("/users/me");
                Arc::new(move |c: &reqwest::Client, u: &User| c.get(&url).bearer_auth(&u.token))
            },
            &other,
        ),
        (
            "GET /api/onboarding",
            {
                let url = url("/api/onboarding");
                Arc::new(move |c: &reqwest::Client, u: &User| c.get(&url).bearer_auth(&u.token))
            },
            &other,
        ),
        (
            "GET /api/usage",
            {
                let url = url("/api/usage");
                Arc::new(move |c: &reqwest::Client, u: &User| c.get(&url).bearer_auth(&u.token))
            },
            &other,
        ),
        (
            "POST /api/usage/increment, no key",
            {
                let url = url("/api/usage/increment");
                Arc::new(move |c: &reqwest::Client, u: &User| {
                    c.post(&url)
                        .bearer_auth(&u.token)
                        .json(&json!({"operation": "captions"}))
                })
            },
            &increments,
        ),
        (
            "POST /api/usage/increment, fresh Idempotency-Key",
            {
                let url = url("/api/usage/increment");
                Arc::new(move |c: &reqwest::Client, u: &User| {
                    c.post(&url)
                        .bearer_auth(&u.token)
                        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
                        .json(&json!({"operation": "captions"}))
                })
            },
            &increments,
        ),
        (
            "POST /api/credentials/reveal (audited)",
            {
                let url = url("/api/credentials/reveal");
                Arc::new(move |c: &reqwest::Client, u: &User| {
                    c.post(&url)
                        .bearer_auth(&u.token)
                        .json(&json!({"creator_profile_id": u.profile}))
                })
            },
            &other,
        ),
    ];
    let mut rows = Vec::new();
    for (name, build, sent) in phases {
        rows.push(http_phase(&genie, &clients, &users, name, build, sent).await);
    }
    let peak = genie.memory("VmHWM");
    let rss = genie.memory("VmRSS");

    // Every increment answered 200 must show in the counters: as many `captions` used in all.
    let mut used = 0;
    for user in users.iter() {
        let usage = call(
            setup.get(genie.url("/api/usage")).bearer_auth(&user.token),
            StatusCode::OK,
        )
        .await;
        assert_eq!(usage["tier"], "studio", "{usage}");
        let captions = usage["usage"]["captions"]["used"]
            .as_i64()
            .unwrap_or_else(|| panic!("no captions count in {usage}"));
        used += captions as u64;
    }
    let increments = increments.load(Ordering::Relaxed);
    genie.stop().await;

    report(
        &select,
        &update,
        &rows,
        peak,
        peak_at_start,
        rss,
        reset,
        cores,
    );
    assert_eq!(
        used, increments,
        "every increment answered 200 is counted, and nothing else"
    );
    println!("genie's log: {}", genie_log().display());
    println!("increments checked: {increments} sent and answered 200, {used} counted");
}

#[allow(clippy::too_many_arguments)]
fn report(
    select: &Row,
    update: &Row,
    rows: &[Row],
    peak: u64,
    peak_at_start: u64,
    rss: u64,
    reset: bool,
    cores: usize,
) {
    let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
    let cpu = |c: Cpu| {
        format!(
            "{:.0} / {:.0} / {:.0} / {:.0}",
            c.genie * 100.0,
            c.client * 100.0,
            c.rest * 100.0,
            c.idle * 100.0
        )
    };
    let mut table: Vec<[String; 8]> = Vec::new();
    for ceiling in [select, update] {
        table.push([
            ceiling.name.clone(),
            format!("{:.0} tx/s", ceiling.throughput),
            format!("{:.2} (average)", ceiling.p50),
            "—".into(),
            if std::ptr::eq(ceiling, select) {
                "1".into()
            } else {
                "—".into()
            },
            if std::ptr::eq(ceiling, update) {
                "1".into()
            } else {
                "—".into()
            },
            cpu(ceiling.cpu),
            "—".into(),
        ]);
    }
    for row in rows {
        table.push([
            row.name.clone(),
            format!("{:.0} req/s", row.throughput),
            format!("{:.2}", row.p50),
            row.p99.map_or("—".into(), |p| format!("{p:.2}")),
            format!("{:.2}", row.throughput / select.throughput),
            format!("{:.2}", row.throughput / update.throughput),
            cpu(row.cpu),
            row.errors.to_string(),
        ]);
    }
    let header = [
        "load (32 connections or clients, 10 s)",
        "throughput",
        "p50 ms",
        "p99 ms",
        "÷ pgbench -S",
        "÷ pgbench -N",
        "CPU % genie / client / rest / idle",
        "non-200",
    ];
    println!();
    println!(
        "hot path benchmark: {cores} cores shared by the load generator (this process, reqwest, one \
         HTTP/1.1 keep-alive connection per caller, {CONNECTIONS} callers), genie up (release) and \
         PostgreSQL; pgbench ran alone before genie was loaded, with {CONNECTIONS} clients, -j 2"
    );
    let widths: Vec<usize> = (0..8)
        .map(|i| {
            table
                .iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect::<Vec<_>>()
            .join("  ")
    };
    println!(
        "CPU: shares of the machine's CPU time over the phase; rest is everything else \
         (PostgreSQL, pgbench on its rows, interrupts, other processes)"
    );
    println!("{}", line(&header.map(String::from)));
    for row in &table {
        println!("{}", line(row));
    }
    for row in rows.iter().filter(|row| row.errors > 0) {
        println!(
            "ERRORS: {}: {} requests not answered 200 (counted in its figures), e.g. {}",
            row.name,
            row.errors,
            row.first_error.as_deref().unwrap_or("")
        );
    }
    let memory = format!(
        "genie peak memory under load (VmHWM{}): {:.1} MiB; resident at the end {:.1} MiB; peak \
         before the load (set-up: {CONNECTIONS} registrations and logins, argon2 64 MiB each) {:.1} MiB",
        if reset {
            ", reset after the set-up"
        } else {
            ", NOT reset: includes the set-up"
        },
        mib(peak),
        mib(rss),
        mib(peak_at_start)
    );
    println!("{memory}");
    let threads: Vec<String> = rows
        .iter()
        .map(|row| {
            let shares: Vec<String> = row
                .threads
                .iter()
                .map(|(name, share)| format!("{name} {:.0}", share * 100.0))
                .collect();
            format!("{}: {}", row.name, shares.join(", "))
        })
        .collect();
    println!(
        "genie's CPU by thread name (% of the machine's CPU time; `rest` is PostgreSQL and the other processes):"
    );
    for line in &threads {
        println!("  {line}");
    }

    let reads = &rows[0..3];
    let increments = &rows[3..5];
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    let min_ratio = |rows: &[Row], ceiling: &Row| {
        rows.iter()
            .map(|r| r.throughput / ceiling.throughput)
            .fold(f64::INFINITY, f64::min)
    };
    let read_ratio = min_ratio(reads, select);
    let increment_ratio = min_ratio(increments, update);
    let me_p99 = rows[0].p99.unwrap_or(f64::INFINITY);
    let aims = [
        format!(
            "reads (the three GETs) ≥ 0.5 of pgbench -S: lowest {read_ratio:.2}, {}",
            verdict(read_ratio >= 0.5)
        ),
        format!(
            "increments ≥ 0.6 of pgbench -N: lowest {increment_ratio:.2}, {}",
            verdict(increment_ratio >= 0.6)
        ),
        format!(
            "GET /users/me p99 < 10 ms at 32 connections: {me_p99:.2} ms, {}",
            verdict(me_p99 < 10.0)
        ),
        format!(
            "memory under load ≤ 100 MB: {:.1} MB ({:.1} MiB), {}",
            peak as f64 / 1e6,
            mib(peak),
            verdict(peak <= 100_000_000)
        ),
    ];
    for aim in &aims {
        println!("aim: {aim}");
    }

    println!();
    println!("| {} |", header.join(" | "));
    println!("|{}|", ["---"; 8].join("|"));
    for row in &table {
        println!("| {} |", row.join(" | "));
    }
    println!();
    for row in rows.iter().filter(|row| row.errors > 0) {
        println!(
            "- errors: {}: {} requests not answered 200, e.g. `{}`",
            row.name,
            row.errors,
            row.first_error.as_deref().unwrap_or("")
        );
    }
    println!("- {memory}");
    println!("- genie's CPU by thread name (% of the machine's CPU time):");
    for line in &threads {
        println!("  - {line}");
    }
    for aim in &aims {
        println!("- aim: {aim}");
    }
}
