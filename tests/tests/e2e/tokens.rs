//! Every way a token can be wrong, through the gateway, and the exact token Directus issues.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn sign(claims: &Value, algorithm: Algorithm, key: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(algorithm),
        claims,
        &EncodingKey::from_secret(key.as_bytes()),
    )
    .unwrap()
}

/// The claims a real Directus 11 puts in an access token, and nothing else.
fn directus_claims(user_id: &Value, role_id: &Value) -> Value {
    json!({
        "id": user_id,
        "role": role_id,
        "app_access": true,
        "admin_access": false,
        "iat": now(),
        "exp": now() + 900,
        "iss": "directus",
    })
}

async fn creator(app: &TestApp) -> (Value, Value) {
    let (user, token) = app.new_creator("creator@genie.test").await;
    let me = app.get("/users/me", Some(&token)).await;
    (user["id"].clone(), me.body["data"]["role"].clone())
}

#[tokio::test]
async fn a_token_with_exactly_directus_claims_is_accepted() {
    let app = spawn_app().await;
    let (id, role) = creator(&app).await;
    assert!(role.is_string(), "role is the role's uuid: {role}");
    let token = sign(
        &directus_claims(&id, &role),
        Algorithm::HS256,
        DIRECTUS_SECRET,
    );
    let onboarding = app.get("/api/onboarding", Some(&token)).await;
    assert_eq!(onboarding.status, StatusCode::OK, "{:?}", onboarding.body);
    assert_eq!(onboarding.body["user_id"], id);

    let no_role = sign(
        &directus_claims(&id, &Value::Null),
        Algorithm::HS256,
        DIRECTUS_SECRET,
    );
    assert_eq!(
        app.get("/api/onboarding", Some(&no_role)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn every_forged_or_stale_token_is_401_on_the_api() {
    let app = spawn_app().await;
    let (id, role) = creator(&app).await;
    let valid = directus_claims(&id, &role);
    let with = |key: &str, value: Value| {
        let mut claims = valid.clone();
        claims[key] = value;
        claims
    };
    let without = |key: &str| {
        let mut claims = valid.clone();
        claims.as_object_mut().unwrap().remove(key);
        claims
    };
    let header_none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(valid.to_string());
    let genuine = sign(&valid, Algorithm::HS256, DIRECTUS_SECRET);
    let mut parts: Vec<&str> = genuine.split('.').collect();
    let elevated = URL_SAFE_NO_PAD.encode(with("admin_access", json!(true)).to_string());
    parts[1] = &elevated;
    let tampered = parts.join(".");

    let cases = [
        (
            "alg none",
            format!("{header_none}.{payload}."),
            "token_invalid",
        ),
        (
            "HS512",
            sign(&valid, Algorithm::HS512, DIRECTUS_SECRET),
            "token_invalid",
        ),
        (
            "HS384",
            sign(&valid, Algorithm::HS384, DIRECTUS_SECRET),
            "token_invalid",
        ),
        (
            "wrong key",
            sign(
                &valid,
                Algorithm::HS256,
                "some other secret that is long enough",
            ),
            "token_invalid",
        ),
        ("tampered payload", tampered, "token_invalid"),
        (
            "expired",
            sign(
                &with("exp", json!(now() - 120)),
                Algorithm::HS256,
                DIRECTUS_SECRET,
            ),
            "token_expired",
        ),
        (
            "wrong issuer",
            sign(
                &with("iss", json!("evil")),
                Algorithm::HS256,
                DIRECTUS_SECRET,
            ),
            "token_invalid",
        ),
        (
            "no issuer",
            sign(&without("iss"), Algorithm::HS256, DIRECTUS_SECRET),
            "token_invalid",
        ),
        (
            "no id",
            sign(&without("id"), Algorithm::HS256, DIRECTUS_SECRET),
            "token_invalid",
        ),
        (
            "no role",
            sign(&without("role"), Algorithm::HS256, DIRECTUS_SECRET),
            "token_invalid",
        ),
        (
            "no app_access",
            sign(&without("app_access"), Algorithm::HS256, DIRECTUS_SECRET),
            "token_invalid",
        ),
        (
            "no admin_access",
            sign(&without("admin_access"), Algorithm::HS256, DIRECTUS_SECRET),
            "token_invalid",
        ),
        (
            "no exp",
            sign(&without("exp"), Algorithm::HS256, DIRECTUS_SECRET),
            "token_invalid",
        ),
        (
            "unknown user",
            sign(
                &with("id", json!(uuid::Uuid::new_v4())),
                Algorithm::HS256,
                DIRECTUS_SECRET,
            ),
            "token_invalid",
        ),
        ("garbage", "not.a.token".to_owned(), "token_invalid"),
    ];
    for (name, token, reason) in cases {
        let response = app.get("/api/onboarding", Some(&token)).await;
        assert_eq!(
            assert_error(&response, StatusCode::UNAUTHORIZED),
            reason,
            "{name}"
        );
    }
    let none = app.get("/api/onboarding", None).await;
    assert_eq!(
        assert_error(&none, StatusCode::UNAUTHORIZED),
        "token_missing"
    );

    let within_leeway = sign(
        &with("exp", json!(now() - 10)),
        Algorithm::HS256,
        DIRECTUS_SECRET,
    );
    assert_eq!(
        app.get("/api/onboarding", Some(&within_leeway))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn directus_routes_answer_token_failures_in_directus_codes() {
    let app = spawn_app().await;
    let (id, role) = creator(&app).await;
    let mut expired = directus_claims(&id, &role);
    expired["exp"] = json!(now() - 120);
    let expired = sign(&expired, Algorithm::HS256, DIRECTUS_SECRET);
    let response = app.get("/users/me", Some(&expired)).await;
    assert_eq!(
        assert_directus_error(&response, StatusCode::UNAUTHORIZED),
        "TOKEN_EXPIRED"
    );

    let forged = sign(
        &directus_claims(&id, &role),
        Algorithm::HS256,
        "some other secret that is long enough",
    );
    let response = app.get("/users/me", Some(&forged)).await;
    assert_eq!(
        assert_directus_error(&response, StatusCode::FORBIDDEN),
        "INVALID_TOKEN"
    );
}

#[tokio::test]
async fn the_token_may_come_from_the_query_or_the_session_cookie_but_not_twice() {
    let app = spawn_app().await;
    let (_, token) = app.new_creator("creator@genie.test").await;
    let by_query = app
        .get(&format!("/api/onboarding?access_token={token}"), None)
        .await;
    assert_eq!(by_query.status, StatusCode::OK, "{:?}", by_query.body);
    let by_cookie = app
        .send(
            app.client
                .get(app.url("/users/me"))
                .header("cookie", format!("directus_session_token={token}")),
        )
        .await;
    assert_eq!(by_cookie.status, StatusCode::OK, "{:?}", by_cookie.body);
    let both = app
        .get(
            &format!("/api/onboarding?access_token={token}"),
            Some(&token),
        )
        .await;
    assert_error(&both, StatusCode::BAD_REQUEST);
}
