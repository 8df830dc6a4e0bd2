//! `genie up`, the operator's binary, started with nothing but environment variables (as the
//! README documents them) and driven over HTTP.

use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tests::{
    DIRECTUS_SECRET, Directus, GENIE_INTERNAL_TOKEN as INTERNAL_TOKEN, GenieProcess, OwnPostgres,
    http_client,
};

/// `genie up` with exactly `env` (and PATH), driven over HTTP; killed when dropped.
struct Genie {
    process: GenieProcess,
    http: reqwest::Client,
}

impl Genie {
    async fn up(env: Vec<(&str, String)>) -> Self {
        let process = GenieProcess::up(
            env!("CARGO_BIN_EXE_genie"),
            env,
            Stdio::null(),
            Duration::from_secs(20),
        )
        .await;
        Self {
            process,
            http: http_client(),
        }
    }

    fn url(&self, path: &str) -> String {
        self.process.url(path)
    }

    /// The most memory the process has held so far (VmHWM), in bytes.
    fn peak_memory(&self) -> u64 {
        self.process.memory("VmHWM")
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn login(&self, email: &str, password: &str) -> String {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/auth/login",
                None,
                Some(json!({"email": email, "password": password})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"]["access_token"].as_str().unwrap().to_owned()
    }
}

/// Tests that measure latency or start Directus or a Postgres of their own (each takes both cores
/// for a while) run one at a time: a login flood measured beside another test's `initdb` measures
/// the neighbour.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn directus_mode_from_the_environment_logs_in_resolves_and_registers_through_directus() {
    let _heavy = HEAVY.lock().await;
    let directus = Directus::start().await;
    directus
        .admin(
            reqwest::Method::POST,
            "/roles",
            Some(json!({"name": "Creator"})),
        )
        .await;
    let genie = Genie::up(vec![
        ("AUTH_MODE", "directus".to_owned()),
        ("DIRECTUS_URL", directus.url.clone()),
        ("DIRECTUS_ADMIN_TOKEN", Directus::ADMIN_TOKEN.to_owned()),
        ("AUTH_DIRECTUS_MIRROR_TTL_SECS", "0".to_owned()),
    ])
    .await;

    // A login through the gateway is Directus' own; its user resolves here with Directus' id.
    let admin = genie.login(Directus::ADMIN, Directus::ADMIN_PASSWORD).await;
    let in_directus = directus
        .admin(reqwest::Method::GET, "/users/me", None)
        .await;
    let (status, me) = genie
        .call(reqwest::Method::GET, "/users/me", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["data"]["id"], in_directus["data"]["id"]);
    assert_eq!(me["data"]["email"], Directus::ADMIN);

    // Registration through the gateway creates the user in Directus, who then logs in there.
    let (status, invite) = genie
        .call(
            reqwest::Method::POST,
            "/api/invites",
            Some(&admin),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{invite}");
    let (status, registered) = genie
        .call(
            reqwest::Method::POST,
            "/api/register",
            None,
            Some(
                json!({"email": "operator@example.com", "password": "operator password",
                        "invite_code": invite["code"]}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{registered}");
    let id = registered["user"]["id"].as_str().unwrap();
    let created = directus
        .admin(reqwest::Method::GET, &format!("/users/{id}"), None)
        .await;
    assert_eq!(created["data"]["email"], "operator@example.com");
    let directus_tokens = directus
        .login("operator@example.com", "operator password")
        .await;
    let creator = genie
        .login("operator@example.com", "operator password")
        .await;
    let (status, me) = genie
        .call(reqwest::Method::GET, "/users/me", Some(&creator), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["data"]["role"], created["data"]["role"]);
    assert!(directus_tokens["access_token"].is_string());
}

/// What `genie up` printed when it refused to start with exactly `env`.
async fn refused_start_up(env: [(&str, &str); 3]) -> String {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_genie"))
        .arg("up")
        .env_clear()
        .envs(env)
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn a_misspelt_mode_stops_start_up_naming_the_variable() {
    let stderr = refused_start_up([
        ("AUTH_MODE", "directos"),
        ("INTERNAL_TOKEN", INTERNAL_TOKEN),
        ("DIRECTUS_SECRET", DIRECTUS_SECRET),
    ])
    .await;
    assert!(stderr.contains("AUTH_MODE"), "{stderr}");
}

#[tokio::test]
async fn directus_mode_without_its_url_stops_start_up_naming_it() {
    let stderr = refused_start_up([
        ("AUTH_MODE", "directus"),
        ("INTERNAL_TOKEN", INTERNAL_TOKEN),
        ("DIRECTUS_SECRET", DIRECTUS_SECRET),
    ])
    .await;
    assert!(stderr.contains("DIRECTUS_URL"), "{stderr}");
}

/// 200 connections trying logins for `length`, each from another forwarded address and email,
/// from a runtime of their own at the lowest CPU priority: they stand for clients on other
/// machines, so the two cores measure the server rather than the test's own client. Every
/// answer's status, or the transport error.
fn login_flood(
    url: String,
    length: Duration,
) -> std::thread::JoinHandle<Vec<Result<StatusCode, String>>> {
    std::thread::spawn(move || {
        let lowest = || {
            let _ =
                thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min);
        };
        lowest();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .on_thread_start(lowest)
            .build()
            .unwrap();
        runtime.block_on(async move {
            let started = std::time::Instant::now();
            let attackers: Vec<_> = (0..200u32)
                .map(|attacker| {
                    let url = url.clone();
                    tokio::spawn(async move {
                        let http = http_client();
                        let mut answers = Vec::new();
                        let mut attempt = 0u32;
                        while started.elapsed() < length {
                            attempt += 1;
                            let address =
                                format!("10.{}.{}.{}", attacker % 250, attempt / 250 % 250, attempt % 250);
                            let reply = http
                                .post(format!("{url}/auth/login"))
                                .header("X-Forwarded-For", address)
                                .json(&json!({"email": format!("flood-{attacker}-{attempt}@example.com"),
                                              "password": "guessed password"}))
                                .send()
                                .await;
                            answers.push(reply.map(|r| r.status()).map_err(|e| format!("{e:?}")));
                        }
                        answers
                    })
                })
                .collect();
            let mut answers = Vec::new();
            for attacker in attackers {
                answers.extend(attacker.await.unwrap());
            }
            answers
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_from_many_addresses_neither_starves_other_users_nor_eats_memory() {
    let _heavy = HEAVY.lock().await;
    let genie = Genie::up(vec![
        ("ADMIN_EMAIL", "bystander@example.com".to_owned()),
        ("ADMIN_PASSWORD", "bystander password".to_owned()),
        // Every attempt comes from another forwarded address, so only the hashing bound stands
        // between the flood and the CPU.
        ("TRUSTED_PROXIES", "127.0.0.1".to_owned()),
    ])
    .await;
    let bystander = genie
        .login("bystander@example.com", "bystander password")
        .await;
    let flood_for = Duration::from_secs(10);
    let flood = login_flood(genie.process.url.clone(), flood_for);
    let started = std::time::Instant::now();
    // Let the flood build up before measuring the bystander.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut latencies = Vec::new();
    while started.elapsed() < flood_for - Duration::from_millis(500) {
        let call = std::time::Instant::now();
        let (status, body) = genie
            .call(
                reqwest::Method::GET,
                "/api/onboarding",
                Some(&bystander),
                None,
            )
            .await;
        latencies.push(call.elapsed());
        assert_eq!(status, StatusCode::OK, "{body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let answers = tokio::task::spawn_blocking(move || flood.join().unwrap())
        .await
        .unwrap();
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    let peak = genie.peak_memory();
    let count = |wanted: StatusCode| answers.iter().filter(|a| **a == Ok(wanted)).count();
    let (wrong, busy) = (
        count(StatusCode::UNAUTHORIZED),
        count(StatusCode::SERVICE_UNAVAILABLE),
    );
    // 408: an attacker, at the lowest priority, did not send its request within the server's
    // 5 s. When that happens on a connection it had not written on yet, hyper sees the 408 arrive
    // unasked and reports `UnexpectedMessage` rather than a status: late too. Any other transport
    // error is lost (a keep-alive connection closed as it was reused). All of these are on the
    // starved attackers' side; nothing else may appear.
    let late_unread = answers
        .iter()
        .filter(|a| matches!(a, Err(e) if e.contains("UnexpectedMessage")))
        .count();
    let late = count(StatusCode::REQUEST_TIMEOUT) + late_unread;
    let lost = answers.iter().filter(|a| a.is_err()).count() - late_unread;
    eprintln!(
        "login flood: {} attempts ({wrong} checked and wrong, {busy} refused busy, {late} late, {lost} lost), bystander p50 {:?} p99 {p99:?} over {} calls, peak memory {} MiB",
        answers.len(),
        latencies[latencies.len() / 2],
        latencies.len(),
        peak >> 20
    );
    assert_eq!(
        wrong + busy + late + lost,
        answers.len(),
        "only wrong credentials and busy refusals: {:?}",
        answers.iter().find(|a| !matches!(
            a,
            Ok(StatusCode::UNAUTHORIZED
                | StatusCode::SERVICE_UNAVAILABLE
                | StatusCode::REQUEST_TIMEOUT)
        ))
    );
    // How late the attackers get depends on how little CPU the lowest priority leaves them (on a
    // machine busy with anything else, many of theirs are late); a server that stalled would show
    // in the bystander's p99 below. The bounds catch one that times out or drops connections
    // wholesale.
    assert!(late < answers.len() / 2, "{late} late of {}", answers.len());
    assert!(
        lost < answers.len() / 50,
        "{lost} lost of {}",
        answers.len()
    );
    assert!(busy > 0, "the flood went beyond the hashing bound");
    assert!(p99 < Duration::from_millis(250), "bystander p99 {p99:?}");
    assert!(peak < 1 << 30, "peak memory {} MiB", peak >> 20);
}

#[tokio::test]
async fn a_burst_of_compressed_bombs_is_refused_without_inflating_memory() {
    let _heavy = HEAVY.lock().await;
    // About 400 KB of gzip that would inflate to 400 MB.
    let bomb = {
        use std::io::Write as _;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let spaces = vec![b' '; 1 << 20];
        for _ in 0..400 {
            encoder.write_all(&spaces).unwrap();
        }
        encoder.finish().unwrap()
    };
    assert!(bomb.len() < 1 << 20, "{}", bomb.len());
    let genie = Genie::up(vec![]).await;
    let before = genie.peak_memory();
    let burst: Vec<_> = (0..8)
        .map(|_| {
            genie
                .http
                .post(genie.url("/auth/login"))
                .header("content-type", "application/json")
                .header("content-encoding", "gzip")
                .body(bomb.clone())
                .send()
        })
        .collect();
    for reply in futures_util::future::join_all(burst).await {
        let reply = reply.unwrap();
        assert_eq!(reply.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let body: Value = reply.json().await.unwrap();
        assert_eq!(body["errors"][0]["extensions"]["code"], "CONTENT_TOO_LARGE");
    }
    let grown = genie.peak_memory().saturating_sub(before);
    assert!(grown < 64 << 20, "peak memory grew by {} MiB", grown >> 20);
}

/// Polls `/health/ready` every 50 ms until it answers `wanted`; how long that took.
async fn ready_turns(genie: &Genie, wanted: StatusCode, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let status = genie
            .http
            .get(genie.url("/health/ready"))
            .send()
            .await
            .map(|response| response.status());
        if status.as_ref().ok() == Some(&wanted) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "/health/ready was not {wanted} within {within:?}: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_database_outage_is_unready_and_503_within_seconds_and_everything_recovers_alone() {
    let _heavy = HEAVY.lock().await;
    let postgres = OwnPostgres::start().await;
    let url = postgres.url("postgres");
    let genie = Genie::up(vec![
        ("AUTH_DATABASE_URL", url.clone()),
        ("USAGE_DATABASE_URL", url.clone()),
        ("CREDENTIALS_DATABASE_URL", url.clone()),
        ("SKILLS_DATABASE_URL", url.clone()),
        ("QUEUE_DATABASE_URL", url),
        ("ADMIN_EMAIL", "admin@genie.test".to_owned()),
        ("ADMIN_PASSWORD", "admin password of the outage".to_owned()),
        ("DATABASE_HEALTH_INTERVAL_MS", "1000".to_owned()),
    ])
    .await;
    let admin = genie
        .login("admin@genie.test", "admin password of the outage")
        .await;
    // Each reads its own service's database (svc-auth, svc-usage, svc-credentials, svc-skills,
    // svc-queue).
    let reads = [
        "/api/onboarding",
        "/api/usage",
        "/api/vault",
        "/api/skills",
        "/api/queue/jobs",
    ];
    for path in reads {
        let (status, body) = genie
            .call(reqwest::Method::GET, path, Some(&admin), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }

    // Measured from the moment the stop begins: pg_ctl ends the sessions first, then waits for
    // the server to exit.
    let stopping = Instant::now();
    postgres.stop().await;
    let stop_took = stopping.elapsed();
    ready_turns(
        &genie,
        StatusCode::SERVICE_UNAVAILABLE,
        Duration::from_secs(5),
    )
    .await;
    let unready = stopping.elapsed();
    // Unready because each service reports its database, not because a service is gone: each
    // of the four turns NOT_SERVING on its own next check.
    loop {
        let (_, detailed) = genie
            .call(reqwest::Method::GET, "/health/detailed", None, None)
            .await;
        let upstreams = detailed["upstreams"].as_array().unwrap();
        assert_eq!(upstreams.len(), 5, "{detailed}");
        if upstreams
            .iter()
            .all(|upstream| upstream["status"] == "not_serving")
        {
            break;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(5),
            "not every service reports NOT_SERVING: {detailed}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all_unready = stopping.elapsed();
    for path in reads {
        let started = Instant::now();
        let (status, body) = genie
            .call(reqwest::Method::GET, path, Some(&admin), None)
            .await;
        let took = started.elapsed();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {body}");
        assert_eq!(body["reason"], "service_unavailable", "{path}: {body}");
        assert!(took < Duration::from_secs(3), "{path} took {took:?}");
        eprintln!("database down: {path} answered 503 in {took:?}");
    }
    let (status, _) = genie
        .call(
            reqwest::Method::POST,
            "/auth/login",
            None,
            Some(json!({"email": "admin@genie.test", "password": "admin password of the outage"})),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "a login too");

    // Measured from the moment Postgres accepts connections again.
    postgres.resume().await;
    let ready = ready_turns(&genie, StatusCode::OK, Duration::from_secs(5)).await;
    for path in reads {
        let (status, body) = genie
            .call(reqwest::Method::GET, path, Some(&admin), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{path} after the restart: {body}");
    }
    genie
        .login("admin@genie.test", "admin password of the outage")
        .await;
    eprintln!(
        "/health/ready: 503 {unready:?} after the stop began (pg_ctl stop took {stop_took:?}; \
         all four services NOT_SERVING after {all_unready:?}), 200 {ready:?} after Postgres \
         accepted connections again"
    );
}

#[tokio::test]
async fn a_bad_database_timeout_stops_start_up_naming_the_variable() {
    for (variable, value) in [
        ("DATABASE_STATEMENT_TIMEOUT_MS", "soon"),
        ("DATABASE_POOL_WAIT_TIMEOUT_MS", "0"),
        ("DATABASE_HEALTH_INTERVAL_MS", "10"),
        ("GRPC_REFLECTION", "yes"),
    ] {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_genie"))
            .arg("up")
            .env_clear()
            .envs([
                (variable, value),
                ("INTERNAL_TOKEN", INTERNAL_TOKEN),
                ("DIRECTUS_SECRET", DIRECTUS_SECRET),
            ])
            .output()
            .await
            .unwrap();
        assert!(!output.status.success(), "{variable}={value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(variable), "{variable}: {stderr}");
    }
}
