//! svc-auth in directus mode against a real Directus (`tests::Directus`): logins go to Directus,
//! users are mirrored from it, and its own tokens work at the gateway.

use std::time::Duration;

use common::secret::Secret;
use reqwest::StatusCode;
use serde_json::json;
use svc_auth::config::{DirectusConfig, Mode};
use tests::Directus;

use crate::helpers::*;

const DIRECTUS_ADMIN: &str = Directus::ADMIN;
const DIRECTUS_ADMIN_PASSWORD: &str = Directus::ADMIN_PASSWORD;
const DIRECTUS_ADMIN_TOKEN: &str = Directus::ADMIN_TOKEN;

#[tokio::test]
async fn directus_mode_logs_in_at_directus_and_mirrors_its_users() {
    let directus = Directus::start().await;
    directus
        .admin(
            reqwest::Method::POST,
            "/roles",
            Some(json!({"name": "Creator"})),
        )
        .await;
    let app = spawn_app_with(|auth| {
        auth.mode = Mode::Directus(DirectusConfig {
            url: directus.url.clone(),
            admin_token: Secret::new(DIRECTUS_ADMIN_TOKEN),
            mirror_ttl: Duration::ZERO,
            timeout: Duration::from_secs(5),
        });
    })
    .await;

    // A token Directus issued itself works at the gateway, and its user is mirrored with
    // Directus' own role uuid.
    let from_directus = token_of(
        &directus
            .login(DIRECTUS_ADMIN, DIRECTUS_ADMIN_PASSWORD)
            .await,
    );
    let directus_me = directus
        .admin(reqwest::Method::GET, "/users/me", None)
        .await;
    let me = app.get("/users/me", Some(&from_directus)).await;
    assert_eq!(me.status, StatusCode::OK, "{:?}", me.body);
    assert_eq!(me.body["data"]["email"], DIRECTUS_ADMIN);
    assert_eq!(me.body["data"]["id"], directus_me["data"]["id"]);
    assert_eq!(me.body["data"]["role"], directus_me["data"]["role"]);

    // Directus' Administrator is our administrator: invites work with its token.
    let invite = app
        .post("/api/invites", json!({}), Some(&from_directus))
        .await;
    assert_eq!(invite.status, StatusCode::OK, "{:?}", invite.body);

    // Registration creates the user in Directus; logging in through the gateway asks Directus.
    let registered = app
        .post(
            "/api/register",
            json!({"email": "maker@example.com", "password": "maker password", "invite_code": invite.body["code"]}),
            None,
        )
        .await;
    assert_eq!(registered.status, StatusCode::OK, "{:?}", registered.body);
    let user = &registered.body["user"];
    assert_eq!(user["role"], "creator");
    assert_eq!(user["onboarding_state"], "EXTENSION_INSTALL");
    let in_directus = directus
        .admin(
            reqwest::Method::GET,
            &format!("/users/{}", user["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(in_directus["data"]["email"], "maker@example.com");

    let tokens = app.login("maker@example.com", "maker password").await;
    let maker = token_of(&tokens);
    let header = maker.split('.').next().unwrap();
    assert_eq!(
        header, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
        "issued by Directus"
    );
    let wrong = app
        .post(
            "/auth/login",
            json!({"email": "maker@example.com", "password": "not it"}),
            None,
        )
        .await;
    assert_eq!(
        assert_directus_error(&wrong, StatusCode::UNAUTHORIZED),
        "INVALID_CREDENTIALS"
    );
    let moved = app
        .patch(
            "/api/onboarding",
            json!({"state": "DATA_COLLECTION"}),
            &maker,
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);

    // PATCH /users/me changes the user in Directus, and the mirror follows.
    let changed = app
        .patch(
            "/users/me?fields=first_name,email",
            json!({"first_name": "Mae", "email": "mae@example.com"}),
            &maker,
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{:?}", changed.body);
    assert_eq!(
        changed.body,
        json!({"data": {"first_name": "Mae", "email": "mae@example.com"}})
    );
    let in_directus = directus
        .admin(
            reqwest::Method::GET,
            &format!("/users/{}", user["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(in_directus["data"]["first_name"], "Mae");
    assert_eq!(in_directus["data"]["email"], "mae@example.com");
    let taken = app
        .patch("/users/me", json!({"email": DIRECTUS_ADMIN}), &maker)
        .await;
    assert_eq!(
        assert_directus_error(&taken, StatusCode::BAD_REQUEST),
        "RECORD_NOT_UNIQUE"
    );

    // Refresh rotates at Directus; the spent token is refused.
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let rotated = app
        .post("/auth/refresh", json!({"refresh_token": refresh}), None)
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{:?}", rotated.body);
    let replayed = app
        .post("/auth/refresh", json!({"refresh_token": refresh}), None)
        .await;
    assert_eq!(
        assert_directus_error(&replayed, StatusCode::UNAUTHORIZED),
        "INVALID_CREDENTIALS"
    );

    // Suspended in Directus: the next mirror locks the user out here too.
    directus
        .admin(
            reqwest::Method::PATCH,
            &format!("/users/{}", user["id"].as_str().unwrap()),
            Some(json!({"status": "suspended"})),
        )
        .await;
    let locked_out = app.get("/api/onboarding", Some(&maker)).await;
    assert_eq!(
        assert_error(&locked_out, StatusCode::UNAUTHORIZED),
        "user_suspended"
    );

    // Directus down: logins fail as an upstream failure; mirrored users keep working.
    drop(directus);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let login = app
        .post(
            "/auth/login",
            json!({"email": DIRECTUS_ADMIN, "password": DIRECTUS_ADMIN_PASSWORD}),
            None,
        )
        .await;
    assert_eq!(login.status, StatusCode::BAD_GATEWAY, "{:?}", login.body);
    let still_mirrored = app.get("/api/onboarding", Some(&from_directus)).await;
    assert_eq!(
        still_mirrored.status,
        StatusCode::OK,
        "{:?}",
        still_mirrored.body
    );
}
