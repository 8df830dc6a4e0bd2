//! The credentials vault through the gateway: store and reveal with a user's token or the
//! server-to-server secret, browser sessions, the vault API, ownership, and every unhappy path.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// A creator with a creator profile holding `credentials`; returns (token, profile id).
async fn creator_with_profile(app: &TestApp, email: &str, credentials: Value) -> (String, String) {
    let (_, token) = app.new_creator(email).await;
    let created = app
        .post(
            "/api/credentials/create-profile",
            json!({
                "platform": "onlyfans",
                "username": email.split('@').next().unwrap(),
                "credentials": credentials,
                "scrapeEnabled": true,
                "scrapeFrequency": "0 */6 * * *",
                "profileData": {"followers": 1200},
            }),
            Some(&token),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.body);
    let profile = &created.body["profile"];
    assert_eq!(profile["has_credentials"], true);
    assert_eq!(profile["profile_data"], json!({"followers": 1200}));
    (token, profile["id"].as_str().unwrap().to_owned())
}

async fn with_secret(app: &TestApp, path: &str, secret: &str, body: Value) -> Response {
    app.send(
        app.client
            .post(app.url(path))
            .header("X-RBAC-SYNC-SECRET", secret)
            .json(&body),
    )
    .await
}

#[tokio::test]
async fn a_creator_stores_and_reveals_credentials_and_a_server_does_with_the_secret() {
    let app = spawn_app().await;
    let login = json!({"email": "of@example.com", "password": "through-the-gateway-1"});
    let (token, profile) = creator_with_profile(&app, "vaulted@genie.test", login.clone()).await;

    let revealed = app
        .post(
            "/api/credentials/reveal",
            json!({"creatorProfileId": profile}),
            Some(&token),
        )
        .await;
    assert_eq!(revealed.status, StatusCode::OK, "{:?}", revealed.body);
    assert_eq!(revealed.body["ok"], true);
    assert_eq!(revealed.body["credentials"], login);
    assert_eq!(revealed.headers["cache-control"], "no-store");

    let replaced = json!({"email": "of@example.com", "password": "replaced-by-server-2"});
    let stored = with_secret(
        &app,
        "/api/credentials/store",
        RBAC_SECRET,
        json!({"creatorProfileId": profile, "credentials": replaced}),
    )
    .await;
    assert_eq!(stored.status, StatusCode::OK, "{:?}", stored.body);
    let by_server = with_secret(
        &app,
        "/api/credentials/reveal",
        RBAC_SECRET,
        json!({"creator_profile_id": profile}),
    )
    .await;
    assert_eq!(by_server.status, StatusCode::OK, "{:?}", by_server.body);
    assert_eq!(by_server.body["credentials"], replaced);

    let session = app
        .post(
            "/api/credentials/store-platform-session",
            json!({
                "creatorProfileId": profile,
                "cookies": [{"name": "sess", "value": "cookie-value-3"}],
                "userAgent": "Mozilla/5.0 (e2e)",
                "expiresAt": "2026-12-31T00:00:00Z",
            }),
            Some(&token),
        )
        .await;
    assert_eq!(session.status, StatusCode::OK, "{:?}", session.body);
    let fetched = with_secret(
        &app,
        "/api/credentials/get-platform-session",
        RBAC_SECRET,
        json!({"creatorProfileId": profile}),
    )
    .await;
    assert_eq!(fetched.status, StatusCode::OK, "{:?}", fetched.body);
    assert_eq!(
        fetched.body["session"]["cookies"],
        json!([{"name": "sess", "value": "cookie-value-3"}])
    );
    assert_eq!(fetched.body["session"]["user_agent"], "Mozilla/5.0 (e2e)");
    assert!(fetched.body["session"]["last_used_at"].is_string());
}

#[tokio::test]
async fn the_shared_secret_must_be_right_and_a_token_does_not_stand_in_for_it() {
    let app = spawn_app().await;
    let (token, profile) = creator_with_profile(&app, "secretive@genie.test", json!("pw")).await;
    let body = json!({"creatorProfileId": profile});

    let nothing = app
        .post("/api/credentials/reveal", body.clone(), None)
        .await;
    assert_eq!(
        assert_error(&nothing, StatusCode::UNAUTHORIZED),
        "token_missing"
    );
    let wrong = with_secret(
        &app,
        "/api/credentials/reveal",
        "not-the-secret",
        body.clone(),
    )
    .await;
    assert_eq!(
        assert_error(&wrong, StatusCode::UNAUTHORIZED),
        "invalid_secret"
    );
    let wrong_with_token = app
        .send(
            app.client
                .post(app.url("/api/credentials/reveal"))
                .header("X-RBAC-SYNC-SECRET", "not-the-secret")
                .bearer_auth(&token)
                .json(&body),
        )
        .await;
    assert_eq!(
        assert_error(&wrong_with_token, StatusCode::UNAUTHORIZED),
        "invalid_secret"
    );
    let expired = app
        .post(
            "/api/credentials/reveal",
            body.clone(),
            Some(&expired_token_of(&token)),
        )
        .await;
    assert_eq!(
        assert_error(&expired, StatusCode::UNAUTHORIZED),
        "token_expired"
    );
    // The shared secret is for server calls on creator profiles, not for a user's vault.
    let vault = app
        .send(
            app.client
                .get(app.url("/api/vault"))
                .header("X-RBAC-SYNC-SECRET", RBAC_SECRET),
        )
        .await;
    assert_eq!(
        assert_error(&vault, StatusCode::UNAUTHORIZED),
        "token_missing"
    );
}

#[tokio::test]
async fn another_users_profiles_and_entries_are_not_found() {
    let app = spawn_app().await;
    let (owner, profile) = creator_with_profile(&app, "owner@genie.test", json!("owner-pw")).await;
    let entry = app
        .post(
            "/api/vault",
            json!({"name": "download", "kind": "download", "secret": {"cookie": "owner-cookie"}}),
            Some(&owner),
        )
        .await;
    assert_eq!(entry.status, StatusCode::OK, "{:?}", entry.body);
    let entry_id = entry.body["data"]["id"].as_str().unwrap().to_owned();
    let (_, other) = app.new_creator("other@genie.test").await;

    for (path, body) in [
        (
            "/api/credentials/reveal",
            json!({"creatorProfileId": profile}),
        ),
        (
            "/api/credentials/store",
            json!({"creatorProfileId": profile, "credentials": "taken over"}),
        ),
        (
            "/api/credentials/get-platform-session",
            json!({"creatorProfileId": profile}),
        ),
        (
            "/api/credentials/hitl-request",
            json!({"creatorProfileId": profile}),
        ),
        (
            "/api/credentials/reveal-download-cred",
            json!({"id": entry_id}),
        ),
        (&format!("/api/vault/{entry_id}/rotate"), json!({})),
    ] {
        let response = app.post(path, body, Some(&other)).await;
        assert_eq!(
            assert_error(&response, StatusCode::NOT_FOUND),
            "not_found",
            "{path}"
        );
    }
    let patched = app
        .patch(
            &format!("/api/vault/{entry_id}"),
            json!({"name": "mine"}),
            &other,
        )
        .await;
    assert_eq!(assert_error(&patched, StatusCode::NOT_FOUND), "not_found");
    let deleted = app
        .send(
            app.client
                .delete(app.url(&format!("/api/vault/{entry_id}")))
                .bearer_auth(&other),
        )
        .await;
    assert_eq!(assert_error(&deleted, StatusCode::NOT_FOUND), "not_found");
    let listed = app.get("/api/vault", Some(&other)).await;
    assert_eq!(listed.body["data"], json!([]));
    assert_eq!(listed.body["meta"]["total_count"], 0);

    let still = app
        .post(
            "/api/credentials/reveal-download-cred",
            json!({"id": entry_id}),
            Some(&owner),
        )
        .await;
    assert_eq!(
        still.body["credential"]["secret"],
        json!({"cookie": "owner-cookie"})
    );
}

#[tokio::test]
async fn the_vault_lists_metadata_only_and_updates_rotates_and_deletes() {
    let app = spawn_app().await;
    let (token, profile) = creator_with_profile(&app, "keeper@genie.test", json!("pw")).await;
    let created = app
        .post(
            "/api/vault",
            json!({
                "name": "fansly download",
                "kind": "download",
                "creatorProfileId": profile,
                "secret": {"auth": "listed-never-shown-4"},
            }),
            Some(&token),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.body);
    let entry = &created.body["data"];
    assert_eq!(entry["platform"], "onlyfans");
    assert_eq!(entry["key_version"], 1);
    let id = entry["id"].as_str().unwrap().to_owned();

    let listed = app
        .get("/api/vault?kind=download&limit=10", Some(&token))
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
    assert_eq!(listed.body["meta"]["total_count"], 1);
    assert_eq!(listed.body["data"][0]["name"], "fansly download");
    assert!(
        !listed.body.to_string().contains("listed-never-shown-4"),
        "the list never carries a secret"
    );

    let patched = app
        .patch(
            &format!("/api/vault/{id}"),
            json!({"name": "renamed", "secret": {"auth": "patched-5"}}),
            &token,
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{:?}", patched.body);
    assert_eq!(patched.body["data"]["name"], "renamed");
    let rotated = app
        .post(&format!("/api/vault/{id}/rotate"), json!({}), Some(&token))
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{:?}", rotated.body);
    assert!(rotated.body["data"]["rotated_at"].is_string());
    let revealed = app
        .post(
            "/api/credentials/reveal-download-cred",
            json!({"id": id}),
            Some(&token),
        )
        .await;
    assert_eq!(revealed.status, StatusCode::OK, "{:?}", revealed.body);
    assert_eq!(
        revealed.body["credential"]["secret"],
        json!({"auth": "patched-5"})
    );
    let deleted = app
        .send(
            app.client
                .delete(app.url(&format!("/api/vault/{id}")))
                .bearer_auth(&token),
        )
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{:?}", deleted.body);
    let gone = app
        .post(
            "/api/credentials/reveal-download-cred",
            json!({"id": id}),
            Some(&token),
        )
        .await;
    assert_eq!(assert_error(&gone, StatusCode::NOT_FOUND), "not_found");
}

#[tokio::test]
async fn bad_requests_name_the_field() {
    let app = spawn_app().await;
    let (token, profile) = creator_with_profile(&app, "careless@genie.test", json!("pw")).await;
    let cases = [
        (
            // A missing field goes by its documented name; a wrong one by the name it was sent as.
            "/api/credentials/store",
            json!({"credentials": "x"}),
            "creator_profile_id",
        ),
        (
            "/api/credentials/store",
            json!({"creatorProfileId": profile}),
            "credentials",
        ),
        (
            "/api/credentials/store",
            json!({"creatorProfileId": profile, "credentials": null}),
            "credentials",
        ),
        (
            "/api/credentials/store",
            json!({"creatorProfileId": "not-a-uuid", "credentials": "x"}),
            "creatorProfileId",
        ),
        (
            "/api/credentials/reveal",
            json!({"creatorProfileId": 42}),
            "creatorProfileId",
        ),
        (
            "/api/credentials/create-profile",
            json!({"platform": "only fans", "username": "x"}),
            "platform",
        ),
        (
            "/api/credentials/create-profile",
            json!({"platform": "fansly"}),
            "username",
        ),
        (
            "/api/credentials/store-platform-session",
            json!({"creatorProfileId": profile, "cookies": {"not": "an array"}, "userAgent": "UA"}),
            "cookies",
        ),
        (
            "/api/credentials/store-platform-session",
            json!({"creatorProfileId": profile, "cookies": [], "userAgent": "UA", "expiresAt": "soon"}),
            "expiresAt",
        ),
        ("/api/credentials/reveal-download-cred", json!({}), "id"),
        ("/api/vault", json!({"secret": "x"}), "name"),
        ("/api/vault", json!({"name": "n"}), "secret"),
        (
            "/api/vault",
            json!({"name": "n", "kind": "password", "secret": "x"}),
            "kind",
        ),
    ];
    for (path, body, field) in cases {
        let response = app.post(path, body.clone(), Some(&token)).await;
        assert_error(&response, StatusCode::BAD_REQUEST);
        assert_eq!(response.body["field"], field, "{path} {body}");
    }
    let too_large = app
        .post(
            "/api/credentials/store",
            json!({"creatorProfileId": profile, "credentials": "x".repeat(70_000)}),
            Some(&token),
        )
        .await;
    assert_eq!(
        assert_error(&too_large, StatusCode::PAYLOAD_TOO_LARGE),
        "payload_too_large"
    );
    let limit = app.get("/api/vault?limit=abc", Some(&token)).await;
    assert_error(&limit, StatusCode::BAD_REQUEST);
    assert_eq!(limit.body["field"], "limit");
    let empty_patch = app
        .patch(
            "/api/vault/00000000-0000-0000-0000-000000000000",
            json!({}),
            &token,
        )
        .await;
    assert_error(&empty_patch, StatusCode::BAD_REQUEST);
    let duplicate = app
        .post(
            "/api/credentials/create-profile",
            json!({"platform": "onlyfans", "username": "careless"}),
            Some(&token),
        )
        .await;
    assert_eq!(
        assert_error(&duplicate, StatusCode::CONFLICT),
        "profile_exists"
    );
}

#[tokio::test]
async fn a_tampered_record_is_a_500_without_internals_and_svc_credentials_down_a_quick_503() {
    let mut app = spawn_app().await;
    let (token, profile) = creator_with_profile(&app, "tampered@genie.test", json!("pw-6")).await;
    let db = common::testing::connect(&app.database_url).await;
    db.execute(
        "UPDATE credentials.creator_profiles SET credentials = \
         jsonb_build_object('enc', replace(credentials->>'enc', 'v1:', 'v1:00'))",
        &[],
    )
    .await
    .unwrap();
    let tampered = app
        .post(
            "/api/credentials/reveal",
            json!({"creatorProfileId": profile}),
            Some(&token),
        )
        .await;
    assert_eq!(
        assert_error(&tampered, StatusCode::INTERNAL_SERVER_ERROR),
        "internal"
    );

    app.stop_credentials().await;
    let started = Instant::now();
    let down = app
        .post(
            "/api/credentials/reveal",
            json!({"creatorProfileId": profile}),
            Some(&token),
        )
        .await;
    assert_eq!(
        assert_error(&down, StatusCode::SERVICE_UNAVAILABLE),
        "service_unavailable"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn text_with_nul_is_refused_naming_the_field_on_every_storing_route() {
    let app = spawn_app().await;
    let (token, profile) = creator_with_profile(&app, "nul@genie.test", json!({"p": "x"})).await;
    let cases = [
        (
            "/api/credentials/create-profile",
            json!({"platform": "fansly", "username": "a", "profileData": {"bio": "a\u{0}b"}}),
            "profileData",
        ),
        (
            "/api/credentials/create-profile",
            json!({"platform": "fansly", "username": "a\u{0}"}),
            "username",
        ),
        (
            "/api/credentials/store",
            json!({"creator_profile_id": profile, "credentials": {"password": "\u{0}"}}),
            "credentials",
        ),
        (
            "/api/credentials/store-platform-session",
            json!({"creator_profile_id": profile, "cookies": [], "user_agent": "Mozilla\u{0}"}),
            "user_agent",
        ),
        (
            "/api/credentials/hitl-request",
            json!({"creator_profile_id": profile, "notes": "\u{0}"}),
            "notes",
        ),
        (
            "/api/vault",
            json!({"name": "bank\u{0}", "secret": "s"}),
            "name",
        ),
    ];
    for (path, body, field) in cases {
        let refused = app.post(path, body, Some(&token)).await;
        assert_eq!(
            assert_error(&refused, StatusCode::BAD_REQUEST),
            "invalid_body",
            "{path}"
        );
        assert_eq!(refused.body["field"], field, "{path}");
    }
    let renamed = app
        .patch(
            "/api/user-proxy",
            json!({"first_name": "Gr\u{0}ce"}),
            &token,
        )
        .await;
    assert_eq!(renamed.body["field"], "first_name");
    assert_error(&renamed, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_deleted_profile_frees_its_platform_for_another() {
    let app = spawn_app().await;
    let (token, profile) = creator_with_profile(&app, "moving@genie.test", json!("pw-7")).await;
    let usage = app.get("/api/usage", Some(&token)).await;
    assert_eq!(usage.body["usage"]["platforms"]["used"], 1);
    let delete = |path: String, token: String| {
        app.send(app.client.delete(app.url(&path)).bearer_auth(token))
    };
    let bad = delete("/api/credentials/profiles/nope".into(), token.clone()).await;
    assert_error(&bad, StatusCode::BAD_REQUEST);
    assert_eq!(bad.body["field"], "id");
    let (_, stranger) = app.new_creator("not-moving@genie.test").await;
    let path = format!("/api/credentials/profiles/{profile}");
    assert_error(&delete(path.clone(), stranger).await, StatusCode::NOT_FOUND);

    let deleted = delete(path.clone(), token.clone()).await;
    assert_eq!(deleted.status, StatusCode::OK, "{:?}", deleted.body);
    assert_eq!(deleted.body["id"], profile.as_str());
    assert_error(&delete(path, token.clone()).await, StatusCode::NOT_FOUND);
    let revealed = app
        .post(
            "/api/credentials/reveal",
            json!({"creatorProfileId": profile}),
            Some(&token),
        )
        .await;
    assert_error(&revealed, StatusCode::NOT_FOUND);
    let usage = app.get("/api/usage", Some(&token)).await;
    assert_eq!(usage.body["usage"]["platforms"]["used"], 0);
    let another = app
        .post(
            "/api/credentials/create-profile",
            json!({"platform": "fansly", "username": "moved"}),
            Some(&token),
        )
        .await;
    assert_eq!(another.status, StatusCode::OK, "{:?}", another.body);
}
