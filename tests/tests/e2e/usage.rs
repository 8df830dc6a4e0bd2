//! Quotas through the gateway: the report, increments until the tier's limit, idempotent
//! retries, and fail-closed when svc-usage is down.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn a_starter_creator_uses_their_captions_until_the_limit() {
    let app = spawn_app().await;
    let (_, token) = app.new_creator("quota@genie.test").await;

    let report = app.get("/api/usage", Some(&token)).await;
    assert_eq!(report.status, StatusCode::OK, "{:?}", report.body);
    assert_eq!(report.body["tier"], "starter");
    assert!(report.body["cycle_start"].is_string() && report.body["cycle_end"].is_string());
    assert_eq!(
        report.body["usage"]["captions"],
        json!({"used": 0, "limit": 3, "remaining": 3})
    );
    assert_eq!(report.body["usage"]["platforms"]["limit"], 1);

    for used in 1..=3 {
        let increment = app
            .post(
                "/api/usage/increment",
                json!({"operation": "captions"}),
                Some(&token),
            )
            .await;
        assert_eq!(increment.status, StatusCode::OK, "{:?}", increment.body);
        assert_eq!(increment.body["used"], used);
        assert_eq!(increment.body["remaining"], 3 - used);
    }
    let refused = app
        .post(
            "/api/usage/increment",
            json!({"operation": "captions"}),
            Some(&token),
        )
        .await;
    assert_eq!(
        assert_error(&refused, StatusCode::FORBIDDEN),
        "limit_reached"
    );
    assert_eq!(refused.body["error"], "tier_limit_reached");
    assert!(
        refused.body["message"]
            .as_str()
            .unwrap()
            .contains("Upgrade")
    );
    let report = app.get("/api/usage", Some(&token)).await;
    assert_eq!(
        report.body["usage"]["captions"],
        json!({"used": 3, "limit": 3, "remaining": 0})
    );
}

#[tokio::test]
async fn retries_with_an_idempotency_key_count_once() {
    let app = spawn_app().await;
    let (_, token) = app.new_creator("retry@genie.test").await;
    let body = json!({"operation": "ai_media_ops", "amount": 2, "idempotency_key": "upload-42"});
    let first = app
        .post("/api/usage/increment", body.clone(), Some(&token))
        .await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    assert_eq!(first.body["replayed"], false);
    let again = app.post("/api/usage/increment", body, Some(&token)).await;
    assert_eq!(again.body["replayed"], true);
    assert_eq!(again.body["used"], 2);
    let by_header = app
        .send(
            app.client
                .post(app.url("/api/usage/increment"))
                .bearer_auth(&token)
                .header("Idempotency-Key", "upload-42")
                .json(&json!({"operation": "ai_media_ops", "amount": 2})),
        )
        .await;
    assert_eq!(by_header.body["replayed"], true, "{:?}", by_header.body);
    let reused = app
        .post(
            "/api/usage/increment",
            json!({"operation": "ai_media_ops", "amount": 3, "idempotency_key": "upload-42"}),
            Some(&token),
        )
        .await;
    assert_eq!(
        assert_error(&reused, StatusCode::CONFLICT),
        "idempotency_key_reused"
    );
    let report = app.get("/api/usage", Some(&token)).await;
    assert_eq!(report.body["usage"]["ai_media_ops"]["used"], 2);
}

#[tokio::test]
async fn bad_increments_name_the_field() {
    let app = spawn_app().await;
    let (_, token) = app.new_creator("fields@genie.test").await;
    for (body, field) in [
        (json!({}), "operation"),
        (json!({"operation": "juggling"}), "operation"),
        (json!({"operation": "captions", "amount": 0}), "amount"),
        (json!({"operation": "captions", "amount": "two"}), "amount"),
    ] {
        let response = app
            .post("/api/usage/increment", body.clone(), Some(&token))
            .await;
        assert_error(&response, StatusCode::BAD_REQUEST);
        assert_eq!(response.body["field"], field, "{body}");
    }
    let no_token = app
        .post(
            "/api/usage/increment",
            json!({"operation": "captions"}),
            None,
        )
        .await;
    assert_eq!(
        assert_error(&no_token, StatusCode::UNAUTHORIZED),
        "token_missing"
    );
}

#[tokio::test]
async fn svc_usage_down_denies_increments_quickly_and_the_report_is_503() {
    let mut app = spawn_app().await;
    let (_, token) = app.new_creator("down@genie.test").await;
    app.stop_usage().await;
    let started = Instant::now();
    let denied = app
        .post(
            "/api/usage/increment",
            json!({"operation": "captions"}),
            Some(&token),
        )
        .await;
    assert_eq!(
        assert_error(&denied, StatusCode::FORBIDDEN),
        "quota_check_failed"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    let report = app.get("/api/usage", Some(&token)).await;
    assert_eq!(
        assert_error(&report, StatusCode::SERVICE_UNAVAILABLE),
        "service_unavailable"
    );
    assert_eq!(
        app.get("/health/ready", None).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
}
