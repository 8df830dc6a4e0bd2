//! What a client sees when things go wrong around the services: a dependency down, too many
//! registrations, oversized or malformed bodies; and the health and documentation endpoints.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn svc_auth_down_is_a_quick_503_with_the_error_body() {
    let mut app = spawn_app().await;
    let (_, token) = app.new_creator("creator@genie.test").await;
    assert_eq!(app.get("/health/ready", None).await.status, StatusCode::OK);

    app.stop_auth().await;
    let started = Instant::now();
    let onboarding = app.get("/api/onboarding", Some(&token)).await;
    assert_eq!(
        assert_error(&onboarding, StatusCode::SERVICE_UNAVAILABLE),
        "service_unavailable"
    );
    let register = app
        .post(
            "/api/register",
            json!({"email": "a@genie.test", "password": "long enough", "invite_code": "x"}),
            None,
        )
        .await;
    assert_eq!(
        assert_error(&register, StatusCode::SERVICE_UNAVAILABLE),
        "service_unavailable"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let body = onboarding.body.to_string();
    assert!(
        !body.contains("127.0.0.1") && !body.contains("tcp"),
        "no internals: {body}"
    );

    let ready = app.get("/health/ready", None).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    let live = app.get("/health/live", None).await;
    assert_eq!(live.status, StatusCode::OK, "the gateway itself is alive");
}

#[tokio::test]
async fn the_eleventh_registration_in_the_window_is_rate_limited() {
    let app = spawn_app().await;
    let attempt =
        json!({"email": "a@genie.test", "password": "long enough", "invite_code": "wrong"});
    for _ in 0..10 {
        let response = app.post("/api/register", attempt.clone(), None).await;
        assert_eq!(
            assert_error(&response, StatusCode::FORBIDDEN),
            "invalid_invite"
        );
    }
    let limited = app.post("/api/register", attempt, None).await;
    assert_eq!(
        assert_error(&limited, StatusCode::TOO_MANY_REQUESTS),
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
async fn bodies_too_large_or_malformed_are_refused_clearly() {
    let app = spawn_app().await;
    let (_, token) = app.new_creator("creator@genie.test").await;
    let huge = json!({"state": "x".repeat(2 * 1024 * 1024)});
    let too_large = app.patch("/api/onboarding", huge, &token).await;
    assert_eq!(
        assert_error(&too_large, StatusCode::PAYLOAD_TOO_LARGE),
        "payload_too_large"
    );
    let malformed = app
        .send(
            app.client
                .patch(app.url("/api/onboarding"))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body("{\"state\":"),
        )
        .await;
    assert_eq!(
        assert_error(&malformed, StatusCode::BAD_REQUEST),
        "invalid_body"
    );
    let unknown = app.get("/api/nothing-here", Some(&token)).await;
    assert_eq!(assert_error(&unknown, StatusCode::NOT_FOUND), "not_found");
}

#[tokio::test]
async fn health_and_documentation() {
    let app = spawn_app().await;
    let health = app.get("/health", None).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body["status"], "ok");
    assert!(health.body["timestamp"].is_string());
    let detailed = app.get("/health/detailed", None).await;
    assert_eq!(detailed.status, StatusCode::OK, "{:?}", detailed.body);
    let upstream = &detailed.body["upstreams"][0];
    assert_eq!(upstream["name"], "svc-auth");
    assert!(upstream["latency_ms"].is_number());

    let openapi = app.get("/openapi.json", None).await;
    assert_eq!(openapi.status, StatusCode::OK);
    assert!(openapi.body["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = openapi.body["paths"].as_object().unwrap();
    for path in [
        "/auth/login",
        "/auth/refresh",
        "/auth/logout",
        "/users/me",
        "/api/invites",
        "/api/register",
        "/api/onboarding",
        "/api/rbac-sync",
        "/api/impersonate",
        "/api/user-proxy",
        "/health/ready",
    ] {
        assert!(paths.contains_key(path), "{path} is documented");
    }
    let docs = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    let page = docs.text().await.unwrap();
    assert!(page.contains("/openapi.json"));
    assert!(
        !page.contains("https://"),
        "the docs page loads nothing from elsewhere"
    );
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let echoed = app
        .send(
            app.client
                .get(app.url("/health"))
                .header("x-request-id", "abc-123"),
        )
        .await;
    assert_eq!(echoed.headers["x-request-id"], "abc-123");
    let generated = app.get("/health", None).await;
    assert!(!generated.headers["x-request-id"].is_empty());
    let hostile = app
        .send(
            app.client
                .get(app.url("/health"))
                .header("x-request-id", "<script>".repeat(20)),
        )
        .await;
    assert_ne!(
        hostile.headers["x-request-id"],
        "<script>".repeat(20).as_str()
    );
}

#[tokio::test]
async fn services_refuse_callers_that_skip_the_gateway() {
    let app = spawn_app().await;
    let (user, _) = app.new_creator("creator@genie.test").await;
    let mut direct = proto::auth::v1::auth_client::AuthClient::connect(app.auth_url.clone())
        .await
        .unwrap();
    let mut claimed = tonic::Request::new(proto::auth::v1::MeRequest {});
    // Identity metadata alone proves nothing without the internal token.
    claimed
        .metadata_mut()
        .insert("x-user-id", user["id"].as_str().unwrap().parse().unwrap());
    claimed
        .metadata_mut()
        .insert("x-user-role", "administrator".parse().unwrap());
    let refused = direct.me(claimed).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
}

#[tokio::test]
async fn the_vault_refuses_callers_that_skip_the_gateway() {
    let app = spawn_app().await;
    let (user, _) = app.new_creator("creator@genie.test").await;
    let mut direct = proto::credentials::v1::credentials_client::CredentialsClient::connect(
        app.credentials_url.clone(),
    )
    .await
    .unwrap();
    let mut claimed = tonic::Request::new(proto::credentials::v1::ListVaultRequest::default());
    claimed
        .metadata_mut()
        .insert("x-user-id", user["id"].as_str().unwrap().parse().unwrap());
    claimed
        .metadata_mut()
        .insert("x-user-role", "system".parse().unwrap());
    let refused = direct.list_vault(claimed).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
}
