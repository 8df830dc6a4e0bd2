//! The gateway over real HTTP with svc-auth, svc-usage and svc-credentials down (their URLs point
//! at closed ports): everything the gateway decides on its own, and that an unreachable upstream
//! is a quick 503.

// Benchmark and test support: a failed setup step should stop the run with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use common::secret::Secret;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

const DIRECTUS_SECRET: &str = "directus secret of the gateway tests 0123456789";
const INTERNAL_TOKEN: &str = "internal token of the gateway tests 0123456789";
const RBAC_SECRET: &str = "rbac secret of the gateway tests";

struct Gateway {
    address: String,
    client: reqwest::Client,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

/// A port nothing listens on: bound, then released.
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

async fn spawn_with(adjust: impl FnOnce(&mut gateway::Config)) -> Gateway {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = gateway::Config::local(
        closed_port_url(),
        Secret::new(DIRECTUS_SECRET),
        Secret::new(INTERNAL_TOKEN),
        Secret::new(RBAC_SECRET),
    );
    config.usage_grpc_url = closed_port_url();
    config.credentials_grpc_url = closed_port_url();
    config.skills_grpc_url = closed_port_url();
    config.queue_grpc_url = closed_port_url();
    adjust(&mut config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = gateway::build(config, listener).unwrap();
    let handle = server.handle();
    tokio::spawn(server);
    Gateway {
        address: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
        handle,
    }
}

async fn spawn() -> Gateway {
    spawn_with(|_| {}).await
}

struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Gateway {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("the gateway answers");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(self.client.get(self.url(path))).await
    }

    fn rbac_sync(&self) -> reqwest::RequestBuilder {
        self.client
            .post(self.url("/api/rbac-sync"))
            .header("X-RBAC-SYNC-SECRET", RBAC_SECRET)
    }
}

/// Asserts our error body (docs/DESIGN.md §4) and returns its reason.
fn error_reason(reply: &Reply, status: StatusCode) -> String {
    assert_eq!(reply.status, status, "{:?}", reply.body);
    assert_eq!(reply.body["ok"], false, "{:?}", reply.body);
    assert_eq!(reply.body["success"], false, "{:?}", reply.body);
    assert!(reply.body["error"].is_string(), "{:?}", reply.body);
    reply.body["reason"].as_str().expect("a reason").to_owned()
}

fn token(claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(DIRECTUS_SECRET.as_bytes()),
    )
    .unwrap()
}

fn directus_claims(exp_from_now: i64) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "id": uuid::Uuid::new_v4(),
        "role": uuid::Uuid::new_v4(),
        "app_access": true,
        "admin_access": false,
        "iat": now,
        "exp": now + exp_from_now,
        "iss": "directus",
    })
}

#[tokio::test]
async fn health_is_up_and_readiness_reports_the_missing_upstream() {
    let gateway = spawn().await;
    for path in ["/health", "/health/live"] {
        let health = gateway.get(path).await;
        assert_eq!(health.status, StatusCode::OK);
        assert_eq!(health.body["status"], "ok");
        let timestamp = health.body["timestamp"].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(timestamp).is_ok(),
            "{timestamp}"
        );
    }
    let ready = gateway.get("/health/ready").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.body["status"], "unavailable");
    let upstreams = ready.body["upstreams"].as_array().unwrap();
    let names: Vec<_> = upstreams
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "svc-auth",
            "svc-usage",
            "svc-credentials",
            "svc-skills",
            "svc-queue"
        ]
    );
    assert!(
        upstreams.iter().all(|u| u["status"] != "serving"),
        "{upstreams:?}"
    );

    let detailed = gateway.get("/health/detailed").await;
    assert_eq!(detailed.status, StatusCode::OK);
    assert_eq!(detailed.body["status"], "degraded");
    assert!(detailed.body["upstreams"][0]["latency_ms"].is_number());
    assert_eq!(detailed.body["upstreams"][1]["name"], "svc-usage");
    assert!(detailed.body["upstreams"][1]["latency_ms"].is_number());
}

#[tokio::test]
async fn the_usage_routes_need_a_token_before_anything_else() {
    let gateway = spawn().await;
    let report = gateway.get("/api/usage").await;
    assert_eq!(
        error_reason(&report, StatusCode::UNAUTHORIZED),
        "token_missing"
    );
    let increment = gateway
        .send(
            gateway
                .client
                .post(gateway.url("/api/usage/increment"))
                .header("Idempotency-Key", "key-1")
                .json(&json!({"operation": "captions", "amount": 1})),
        )
        .await;
    assert_eq!(
        error_reason(&increment, StatusCode::UNAUTHORIZED),
        "token_missing"
    );
    // A bad token with a bad body is answered about the token.
    let expired = gateway
        .send(
            gateway
                .client
                .post(gateway.url("/api/usage/increment"))
                .bearer_auth(token(&directus_claims(-120)))
                .json(&json!({"amount": "lots"})),
        )
        .await;
    assert_eq!(
        error_reason(&expired, StatusCode::UNAUTHORIZED),
        "token_expired"
    );

    let wrong_method = gateway
        .send(gateway.client.post(gateway.url("/api/usage")))
        .await;
    assert_eq!(
        error_reason(&wrong_method, StatusCode::METHOD_NOT_ALLOWED),
        "method_not_allowed"
    );
    assert_eq!(wrong_method.headers["allow"], "GET");
    let wrong_method = gateway.get("/api/usage/increment").await;
    assert_eq!(wrong_method.headers["allow"], "POST");

    // Past the token, the user is resolved through svc-auth, which is down here.
    let started = Instant::now();
    let valid = gateway
        .send(
            gateway
                .client
                .get(gateway.url("/api/usage"))
                .bearer_auth(token(&directus_claims(900))),
        )
        .await;
    assert_eq!(
        error_reason(&valid, StatusCode::SERVICE_UNAVAILABLE),
        "service_unavailable"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn the_skills_routes_need_a_token_before_anything_else() {
    let gateway = spawn().await;
    for path in [
        "/api/skills",
        "/api/skills/caption-hooks",
        "/api/skills/caption-hooks/related",
    ] {
        let reply = gateway.get(path).await;
        assert_eq!(
            error_reason(&reply, StatusCode::UNAUTHORIZED),
            "token_missing",
            "{path}"
        );
    }
    for path in ["/api/skills", "/api/skills/search", "/api/skills/activate"] {
        // A body that is wrong as well: the caller is checked first.
        let reply = gateway
            .send(
                gateway
                    .client
                    .post(gateway.url(path))
                    .json(&json!({"limit": "lots"})),
            )
            .await;
        assert_eq!(
            error_reason(&reply, StatusCode::UNAUTHORIZED),
            "token_missing",
            "{path}"
        );
    }
    let expired = gateway
        .send(
            gateway
                .client
                .delete(gateway.url("/api/skills/caption-hooks"))
                .bearer_auth(token(&directus_claims(-120))),
        )
        .await;
    assert_eq!(
        error_reason(&expired, StatusCode::UNAUTHORIZED),
        "token_expired"
    );
}

#[tokio::test]
async fn a_valid_token_with_svc_auth_down_is_a_quick_503() {
    let gateway = spawn().await;
    let started = Instant::now();
    let reply = gateway
        .send(
            gateway
                .client
                .get(gateway.url("/api/onboarding"))
                .bearer_auth(token(&directus_claims(900))),
        )
        .await;
    assert_eq!(
        error_reason(&reply, StatusCode::SERVICE_UNAVAILABLE),
        "service_unavailable"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let body = reply.body.to_string();
    assert!(
        !body.contains("127.0.0.1") && !body.contains("tcp"),
        "{body}"
    );

    let login = gateway
        .send(
            gateway
                .client
                .post(gateway.url("/auth/login"))
                .json(&json!({"email": "a@example.com", "password": "secret password"})),
        )
        .await;
    assert_eq!(login.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        login.body["errors"][0]["extensions"]["code"],
        "SERVICE_UNAVAILABLE"
    );
    assert!(!login.body.to_string().contains("secret password"));

    let update_me = gateway
        .send(
            gateway
                .client
                .patch(gateway.url("/users/me"))
                .bearer_auth(token(&directus_claims(900)))
                .json(&json!({"first_name": "Ada"})),
        )
        .await;
    assert_eq!(update_me.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        update_me.body["errors"][0]["extensions"]["code"],
        "SERVICE_UNAVAILABLE"
    );
}

#[tokio::test]
async fn bad_tokens_are_refused_before_any_upstream_call() {
    let gateway = spawn().await;
    let genuine = token(&directus_claims(900));
    let mut parts: Vec<&str> = genuine.split('.').collect();
    let forged_payload = {
        use base64::Engine as _;
        let mut claims = directus_claims(900);
        claims["admin_access"] = json!(true);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string())
    };
    parts[1] = &forged_payload;
    let tampered = parts.join(".");
    let reply = gateway
        .send(
            gateway
                .client
                .get(gateway.url("/api/onboarding"))
                .bearer_auth(&tampered),
        )
        .await;
    assert_eq!(
        error_reason(&reply, StatusCode::UNAUTHORIZED),
        "token_invalid"
    );

    let expired = token(&directus_claims(-120));
    let reply = gateway
        .send(
            gateway
                .client
                .get(gateway.url("/api/onboarding"))
                .bearer_auth(&expired),
        )
        .await;
    assert_eq!(
        error_reason(&reply, StatusCode::UNAUTHORIZED),
        "token_expired"
    );

    let none = gateway.get("/api/onboarding").await;
    assert_eq!(
        error_reason(&none, StatusCode::UNAUTHORIZED),
        "token_missing"
    );

    let both = gateway
        .send(
            gateway
                .client
                .get(gateway.url(&format!("/api/onboarding?access_token={genuine}")))
                .bearer_auth(&genuine),
        )
        .await;
    error_reason(&both, StatusCode::BAD_REQUEST);

    // The Directus-compatible routes answer the same failures in Directus' codes.
    let me_expired = gateway
        .send(
            gateway
                .client
                .get(gateway.url("/users/me"))
                .bearer_auth(&expired),
        )
        .await;
    assert_eq!(me_expired.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        me_expired.body["errors"][0]["extensions"]["code"],
        "TOKEN_EXPIRED"
    );
    let me_forged = gateway
        .send(
            gateway
                .client
                .get(gateway.url("/users/me"))
                .bearer_auth(&tampered),
        )
        .await;
    assert_eq!(me_forged.status, StatusCode::FORBIDDEN);
    assert_eq!(
        me_forged.body["errors"][0]["extensions"]["code"],
        "INVALID_TOKEN"
    );
    let me_none = gateway.get("/users/me").await;
    assert_eq!(me_none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        me_none.body["errors"][0]["extensions"]["code"],
        "INVALID_CREDENTIALS"
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_our_format() {
    let gateway = spawn().await;
    let unknown = gateway.get("/api/nothing-here").await;
    assert_eq!(error_reason(&unknown, StatusCode::NOT_FOUND), "not_found");
    let wrong_method = gateway
        .send(gateway.client.delete(gateway.url("/api/onboarding")))
        .await;
    assert_eq!(
        error_reason(&wrong_method, StatusCode::METHOD_NOT_ALLOWED),
        "method_not_allowed"
    );
    assert_eq!(wrong_method.headers["allow"], "GET, PATCH");
}

#[tokio::test]
async fn bodies_too_large_malformed_or_incomplete_are_refused_clearly() {
    let gateway = spawn().await;
    let huge = json!({"user_id": "x".repeat(2 * 1024 * 1024)});
    let too_large = gateway.send(gateway.rbac_sync().json(&huge)).await;
    assert_eq!(
        error_reason(&too_large, StatusCode::PAYLOAD_TOO_LARGE),
        "payload_too_large"
    );

    let malformed = gateway
        .send(
            gateway
                .rbac_sync()
                .header("content-type", "application/json")
                .body("{\"user_id\":"),
        )
        .await;
    assert_eq!(
        error_reason(&malformed, StatusCode::BAD_REQUEST),
        "invalid_body"
    );

    let missing = gateway
        .send(gateway.rbac_sync().json(&json!({"role": "viewer"})))
        .await;
    assert_eq!(
        error_reason(&missing, StatusCode::BAD_REQUEST),
        "missing_field"
    );
    assert_eq!(missing.body["field"], "user_id");

    let wrong_type = gateway
        .send(gateway.rbac_sync().json(&json!({"user_id": "not-a-uuid"})))
        .await;
    assert_eq!(
        error_reason(&wrong_type, StatusCode::BAD_REQUEST),
        "invalid_body"
    );
    assert_eq!(wrong_type.body["field"], "user_id");

    let directus = gateway
        .send(
            gateway
                .client
                .post(gateway.url("/auth/login"))
                .json(&json!({"email": "a@example.com"})),
        )
        .await;
    assert_eq!(directus.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        directus.body["errors"][0]["extensions"]["code"],
        "INVALID_PAYLOAD"
    );
}

#[tokio::test]
async fn rbac_sync_needs_the_shared_secret() {
    let gateway = spawn().await;
    let body = json!({"user_id": uuid::Uuid::new_v4(), "role": "viewer"});
    let without = gateway
        .send(
            gateway
                .client
                .post(gateway.url("/api/rbac-sync"))
                .json(&body),
        )
        .await;
    assert_eq!(
        error_reason(&without, StatusCode::UNAUTHORIZED),
        "invalid_secret"
    );
    let wrong = gateway
        .send(
            gateway
                .client
                .post(gateway.url("/api/rbac-sync"))
                .header("X-RBAC-SYNC-SECRET", "rbac secret of the gateway testz")
                .json(&body),
        )
        .await;
    assert_eq!(
        error_reason(&wrong, StatusCode::UNAUTHORIZED),
        "invalid_secret"
    );
    let with_a_token = gateway
        .send(
            gateway
                .client
                .post(gateway.url("/api/rbac-sync"))
                .bearer_auth(token(&directus_claims(900)))
                .json(&body),
        )
        .await;
    assert_eq!(
        error_reason(&with_a_token, StatusCode::UNAUTHORIZED),
        "invalid_secret"
    );
    let right = gateway.send(gateway.rbac_sync().json(&body)).await;
    assert_eq!(
        error_reason(&right, StatusCode::SERVICE_UNAVAILABLE),
        "service_unavailable",
        "past the secret, the call reaches for svc-auth"
    );
}

fn register_attempt(gateway: &Gateway, forwarded_for: &str) -> reqwest::RequestBuilder {
    gateway
        .client
        .post(gateway.url("/api/register"))
        .header("X-Forwarded-For", forwarded_for)
        .json(&json!({"email": "a@example.com", "password": "long enough", "invite_code": "x"}))
}

#[tokio::test]
async fn the_eleventh_registration_from_one_address_is_rate_limited() {
    let gateway = spawn().await;
    // The peer (127.0.0.1) is not a trusted proxy: the forwarded addresses are ignored and
    // every attempt counts against the peer.
    for attempt in 0..10 {
        let reply = gateway
            .send(register_attempt(&gateway, &format!("203.0.113.{attempt}")))
            .await;
        assert_eq!(
            error_reason(&reply, StatusCode::SERVICE_UNAVAILABLE),
            "service_unavailable",
            "attempt {attempt}"
        );
    }
    let limited = gateway
        .send(register_attempt(&gateway, "198.51.100.1"))
        .await;
    assert_eq!(
        error_reason(&limited, StatusCode::TOO_MANY_REQUESTS),
        "rate_limited"
    );
    let retry_after: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_is_counted_apart() {
    let gateway = spawn_with(|config| {
        config.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        config.register_limit.count = 2;
    })
    .await;
    for client in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        for _ in 0..2 {
            let reply = gateway.send(register_attempt(&gateway, client)).await;
            assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{client}");
        }
    }
    let third = gateway
        .send(register_attempt(&gateway, "203.0.113.1"))
        .await;
    assert_eq!(
        error_reason(&third, StatusCode::TOO_MANY_REQUESTS),
        "rate_limited"
    );
    let spoofed = gateway
        .send(register_attempt(&gateway, "198.51.100.7, 203.0.113.1"))
        .await;
    assert_eq!(
        spoofed.status,
        StatusCode::TOO_MANY_REQUESTS,
        "a made-up left-most entry does not make a new client"
    );
}

fn login_attempt(gateway: &Gateway, forwarded_for: &str, email: &str) -> reqwest::RequestBuilder {
    gateway
        .client
        .post(gateway.url("/auth/login"))
        .header("X-Forwarded-For", forwarded_for)
        .json(&json!({"email": email, "password": "a password"}))
}

fn directus_code(reply: &Reply) -> &str {
    reply.body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_default()
}

#[tokio::test]
async fn logins_are_limited_per_address_and_per_email() {
    let gateway = spawn_with(|config| {
        config.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        config.login_limit.count = 3;
        config.login_email_limit.count = 2;
    })
    .await;
    for attempt in 0..3 {
        let reply = gateway
            .send(login_attempt(
                &gateway,
                "203.0.113.1",
                &format!("user{attempt}@example.com"),
            ))
            .await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{attempt}");
    }
    let by_address = gateway
        .send(login_attempt(&gateway, "203.0.113.1", "other@example.com"))
        .await;
    assert_eq!(by_address.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(directus_code(&by_address), "REQUESTS_EXCEEDED");
    assert!(by_address.headers.contains_key("retry-after"));

    // One email tried from many addresses: the third try is refused whatever its address, and
    // the email's case and spaces do not make another email.
    for (client, email) in [
        ("198.51.100.1", "victim@example.com"),
        ("198.51.100.2", " Victim@Example.com"),
    ] {
        let reply = gateway.send(login_attempt(&gateway, client, email)).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{client}");
    }
    let by_email = gateway
        .send(login_attempt(
            &gateway,
            "198.51.100.3",
            "VICTIM@example.com",
        ))
        .await;
    assert_eq!(by_email.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(directus_code(&by_email), "REQUESTS_EXCEEDED");
    let retry_after: u64 = by_email.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry_after), "{retry_after}");
    let someone_else = gateway
        .send(login_attempt(
            &gateway,
            "198.51.100.3",
            "someone@example.com",
        ))
        .await;
    assert_eq!(someone_else.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn every_answer_is_no_store_unless_the_route_caches_on_purpose() {
    let gateway = spawn().await;
    for request in [
        gateway.client.get(gateway.url("/health")),
        gateway.client.get(gateway.url("/api/onboarding")),
        gateway.client.get(gateway.url("/no/such/route")),
        gateway
            .client
            .post(gateway.url("/auth/login"))
            .json(&json!({"email": "a@example.com", "password": "p"})),
    ] {
        let reply = gateway.send(request).await;
        assert_eq!(
            reply
                .headers
                .get("cache-control")
                .map(|v| v.to_str().unwrap()),
            Some("no-store"),
            "{}",
            reply.status
        );
    }
    let page = gateway.send(gateway.client.get(gateway.url("/docs"))).await;
    assert_eq!(page.headers["cache-control"], "no-cache");
}

#[tokio::test]
async fn request_ids_are_echoed_or_made() {
    let gateway = spawn().await;
    let echoed = gateway
        .send(
            gateway
                .client
                .get(gateway.url("/health"))
                .header("x-request-id", "abc-123"),
        )
        .await;
    assert_eq!(echoed.headers["x-request-id"], "abc-123");
    let hostile = gateway
        .send(
            gateway
                .client
                .get(gateway.url("/health"))
                .header("x-request-id", "<b>x</b>"),
        )
        .await;
    let made = hostile.headers["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(made).is_ok(), "{made}");
    let error = gateway.get("/nowhere").await;
    assert!(error.headers.contains_key("x-request-id"));
}

#[tokio::test]
async fn cors_allows_only_the_configured_origins() {
    let gateway = spawn_with(|config| {
        config.cors_allowed_origins = vec!["http://app.example".into()];
    })
    .await;
    let allowed = gateway
        .send(
            gateway
                .client
                .get(gateway.url("/health"))
                .header("origin", "http://app.example"),
        )
        .await;
    assert_eq!(
        allowed.headers["access-control-allow-origin"],
        "http://app.example"
    );
    assert_eq!(allowed.headers["access-control-allow-credentials"], "true");
    let other = gateway
        .send(
            gateway
                .client
                .get(gateway.url("/health"))
                .header("origin", "http://evil.example"),
        )
        .await;
    assert_eq!(other.status, StatusCode::OK);
    assert!(!other.headers.contains_key("access-control-allow-origin"));

    let closed = spawn().await;
    let reply = closed
        .send(
            closed
                .client
                .get(closed.url("/health"))
                .header("origin", "http://app.example"),
        )
        .await;
    assert!(!reply.headers.contains_key("access-control-allow-origin"));

    let open = spawn_with(|config| config.cors_allowed_origins = vec!["*".into()]).await;
    let reply = open
        .send(
            open.client
                .get(open.url("/health"))
                .header("origin", "http://anywhere.example"),
        )
        .await;
    assert_eq!(reply.headers["access-control-allow-origin"], "*");
    assert!(
        !reply
            .headers
            .contains_key("access-control-allow-credentials")
    );
}

#[tokio::test]
async fn the_openapi_document_and_the_docs_page() {
    let gateway = spawn().await;
    let document = gateway.get("/openapi.json").await;
    assert_eq!(document.status, StatusCode::OK);
    assert!(
        document.body["openapi"]
            .as_str()
            .unwrap()
            .starts_with("3.1")
    );
    assert!(document.body["paths"]["/api/register"]["post"].is_object());
    assert!(document.body["paths"]["/api/usage"]["get"].is_object());
    assert!(document.body["paths"]["/api/usage/increment"]["post"].is_object());

    let page = gateway
        .client
        .get(gateway.url("/docs"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("/openapi.json"));
    assert!(!html.contains("https://") && !html.contains("http://"));
}

#[test]
fn build_refuses_a_bad_config() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _guard = runtime.enter();
    let mut config = gateway::Config::local(
        closed_port_url(),
        Secret::new(DIRECTUS_SECRET),
        Secret::new(INTERNAL_TOKEN),
        Secret::new(RBAC_SECRET),
    );
    config.resolve_cache_ttl = Duration::from_secs(60);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let err = gateway::build(config, listener).err().expect("refused");
    assert!(
        err.to_string().contains("GATEWAY_RESOLVE_CACHE_SECS"),
        "{err}"
    );
}
