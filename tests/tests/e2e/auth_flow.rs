use reqwest::StatusCode;
use reqwest::header::{COOKIE, SET_COOKIE};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn invite_register_login_onboard_refresh_logout() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;

    let invite = app
        .post(
            "/api/invites",
            json!({"email": "ada@genie.test", "expires_in_hours": 24}),
            Some(&admin),
        )
        .await;
    assert_eq!(invite.status, StatusCode::OK, "{:?}", invite.body);
    assert_eq!(invite.body["ok"], true);
    assert_eq!(invite.body["success"], true);
    let code = invite.body["code"].as_str().unwrap().to_owned();
    assert!(invite.body["expires_at"].is_string());

    let registered = app
        .post(
            "/api/register",
            json!({"email": "ada@genie.test", "password": "analytical engine", "invite_code": code,
                   "first_name": "Ada", "last_name": "Lovelace"}),
            None,
        )
        .await;
    assert_eq!(registered.status, StatusCode::OK, "{:?}", registered.body);
    let user = &registered.body["user"];
    assert_eq!(user["email"], "ada@genie.test");
    assert_eq!(user["role"], "creator");
    assert_eq!(user["status"], "active");
    assert_eq!(user["onboarding_state"], "EXTENSION_INSTALL");
    assert_eq!(user["pricing_tier"], "starter");

    let reused = app
        .post(
            "/api/register",
            json!({"email": "eve@genie.test", "password": "analytical engine", "invite_code": code}),
            None,
        )
        .await;
    assert_eq!(
        assert_error(&reused, StatusCode::FORBIDDEN),
        "invalid_invite"
    );

    let tokens = app.login("ada@genie.test", "analytical engine").await;
    assert_eq!(tokens["expires"], 900_000);
    let access = token_of(&tokens);
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(refresh.len(), 64);

    let me = app.get("/users/me", Some(&access)).await;
    assert_eq!(me.status, StatusCode::OK, "{:?}", me.body);
    assert_eq!(me.body["data"]["email"], "ada@genie.test");
    assert_eq!(me.body["data"]["id"], user["id"]);

    let onboarding = app.get("/api/onboarding", Some(&access)).await;
    assert_eq!(onboarding.status, StatusCode::OK);
    assert_eq!(onboarding.body["state"], "EXTENSION_INSTALL");
    let forward = app
        .patch("/api/onboarding", json!({"state": "PROCESSING"}), &access)
        .await;
    assert_eq!(forward.status, StatusCode::OK, "{:?}", forward.body);
    assert_eq!(forward.body["state"], "PROCESSING");
    let backward = app
        .patch(
            "/api/onboarding/state",
            json!({"state": "DATA_COLLECTION"}),
            &access,
        )
        .await;
    assert_eq!(
        assert_error(&backward, StatusCode::FORBIDDEN),
        "onboarding_backward"
    );
    let unknown = app
        .patch("/api/onboarding", json!({"state": "FINISHED"}), &access)
        .await;
    assert_error(&unknown, StatusCode::BAD_REQUEST);
    let missing = app.patch("/api/onboarding", json!({}), &access).await;
    assert_eq!(
        assert_error(&missing, StatusCode::BAD_REQUEST),
        "missing_field"
    );
    assert_eq!(missing.body["field"], "state");
    let state = app.get("/api/onboarding/state", Some(&access)).await;
    assert_eq!(state.body["state"], "PROCESSING");

    let rotated = app
        .post("/auth/refresh", json!({"refresh_token": refresh}), None)
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{:?}", rotated.body);
    let new_refresh = rotated.body["data"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_refresh, refresh);
    let replayed = app
        .post("/auth/refresh", json!({"refresh_token": refresh}), None)
        .await;
    assert_eq!(
        assert_directus_error(&replayed, StatusCode::UNAUTHORIZED),
        "INVALID_CREDENTIALS"
    );

    let logout = app
        .post("/auth/logout", json!({"refresh_token": new_refresh}), None)
        .await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    assert_eq!(logout.body, serde_json::Value::Null);
    let after_logout = app
        .post("/auth/refresh", json!({"refresh_token": new_refresh}), None)
        .await;
    assert_eq!(
        assert_directus_error(&after_logout, StatusCode::UNAUTHORIZED),
        "INVALID_CREDENTIALS"
    );
}

#[tokio::test]
async fn login_answers_in_directus_shapes() {
    let app = spawn_app().await;
    let wrong = app
        .post(
            "/auth/login",
            json!({"email": ADMIN_EMAIL, "password": "not it"}),
            None,
        )
        .await;
    assert_eq!(
        assert_directus_error(&wrong, StatusCode::UNAUTHORIZED),
        "INVALID_CREDENTIALS"
    );
    let unknown = app
        .post(
            "/auth/login",
            json!({"email": "nobody@genie.test", "password": "not it"}),
            None,
        )
        .await;
    assert_eq!(
        assert_directus_error(&unknown, StatusCode::UNAUTHORIZED),
        "INVALID_CREDENTIALS"
    );
    assert_eq!(
        wrong.body, unknown.body,
        "an unknown email looks like a wrong password"
    );
    let missing = app
        .post("/auth/login", json!({"email": ADMIN_EMAIL}), None)
        .await;
    assert_eq!(
        assert_directus_error(&missing, StatusCode::BAD_REQUEST),
        "INVALID_PAYLOAD"
    );
    let not_json = app
        .send(
            app.client
                .post(app.url("/auth/login"))
                .header("content-type", "application/json")
                .body("{"),
        )
        .await;
    assert_eq!(
        assert_directus_error(&not_json, StatusCode::BAD_REQUEST),
        "INVALID_PAYLOAD"
    );
    let no_token = app.get("/users/me", None).await;
    assert_eq!(
        assert_directus_error(&no_token, StatusCode::UNAUTHORIZED),
        "INVALID_CREDENTIALS"
    );
}

#[tokio::test]
async fn cookie_mode_keeps_the_refresh_token_in_an_http_only_cookie() {
    let app = spawn_app().await;
    let login = app
        .post(
            "/auth/login",
            json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "mode": "cookie"}),
            None,
        )
        .await;
    assert_eq!(login.status, StatusCode::OK, "{:?}", login.body);
    assert!(
        login.body["data"].get("refresh_token").is_none(),
        "{:?}",
        login.body
    );
    assert!(login.body["data"]["access_token"].is_string());
    let cookie = login
        .headers
        .get(SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    for part in [
        "directus_refresh_token=",
        "Max-Age=604800",
        "Path=/",
        "HttpOnly",
        "SameSite=Lax",
    ] {
        assert!(cookie.contains(part), "{cookie}");
    }
    let pair = cookie.split(';').next().unwrap().to_owned();

    let refreshed = app
        .send(
            app.client
                .post(app.url("/auth/refresh"))
                .header(COOKIE, &pair)
                .json(&json!({"mode": "cookie"})),
        )
        .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{:?}", refreshed.body);
    let rotated = refreshed
        .headers
        .get(SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(rotated.split(';').next().unwrap(), pair);
    let replayed = app
        .send(
            app.client
                .post(app.url("/auth/refresh"))
                .header(COOKIE, &pair)
                .json(&json!({"mode": "cookie"})),
        )
        .await;
    assert_eq!(
        assert_directus_error(&replayed, StatusCode::UNAUTHORIZED),
        "INVALID_CREDENTIALS"
    );
}

#[tokio::test]
async fn register_rejects_bad_input_naming_the_field() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"password": "long enough", "invite_code": "x"}),
            "email",
        ),
        (
            json!({"email": "a@genie.test", "invite_code": "x"}),
            "password",
        ),
        (
            json!({"email": "a@genie.test", "password": "long enough"}),
            "invite_code",
        ),
        (
            json!({"email": "not-an-email", "password": "long enough", "invite_code": "x"}),
            "email",
        ),
        (
            json!({"email": "a@genie.test", "password": "short", "invite_code": "x"}),
            "password",
        ),
        (
            json!({"email": 42, "password": "long enough", "invite_code": "x"}),
            "email",
        ),
    ];
    for (body, field) in cases {
        let response = app.post("/api/register", body.clone(), None).await;
        assert_error(&response, StatusCode::BAD_REQUEST);
        assert_eq!(response.body["field"], field, "{body}");
    }
    let bad_invite = app
        .post(
            "/api/register",
            json!({"email": "a@genie.test", "password": "long enough", "invite_code": "nope"}),
            None,
        )
        .await;
    assert_eq!(
        assert_error(&bad_invite, StatusCode::FORBIDDEN),
        "invalid_invite"
    );
}

#[tokio::test]
async fn a_taken_email_is_a_conflict() {
    let app = spawn_app().await;
    app.new_creator("taken@genie.test").await;
    let admin = app.admin_token().await;
    let invite = app.post("/api/invites", json!({}), Some(&admin)).await;
    let again = app
        .post(
            "/api/register",
            json!({"email": "TAKEN@genie.test", "password": "creator password", "invite_code": invite.body["code"]}),
            None,
        )
        .await;
    assert_eq!(assert_error(&again, StatusCode::CONFLICT), "email_taken");
}

#[tokio::test]
async fn only_administrators_create_invites_and_impersonate() {
    let app = spawn_app().await;
    let (creator, creator_token) = app.new_creator("creator@genie.test").await;
    let invite = app
        .post("/api/invites", json!({}), Some(&creator_token))
        .await;
    assert_eq!(assert_error(&invite, StatusCode::FORBIDDEN), "forbidden");
    let impersonate = app
        .post(
            "/api/impersonate",
            json!({"user_id": creator["id"]}),
            Some(&creator_token),
        )
        .await;
    assert_eq!(
        assert_error(&impersonate, StatusCode::FORBIDDEN),
        "forbidden"
    );

    let admin = app.admin_token().await;
    let granted = app
        .post(
            "/api/impersonate",
            json!({"user_id": creator["id"]}),
            Some(&admin),
        )
        .await;
    assert_eq!(granted.status, StatusCode::OK, "{:?}", granted.body);
    let as_creator = granted.body["access_token"].as_str().unwrap();
    let me = app.get("/users/me", Some(as_creator)).await;
    assert_eq!(me.body["data"]["email"], "creator@genie.test");
    let missing = app.post("/api/impersonate", json!({}), Some(&admin)).await;
    assert_eq!(missing.body["field"], "user_id");
    assert_error(&missing, StatusCode::BAD_REQUEST);
    let nobody = app
        .post(
            "/api/impersonate",
            json!({"user_id": uuid::Uuid::new_v4()}),
            Some(&admin),
        )
        .await;
    assert_eq!(assert_error(&nobody, StatusCode::NOT_FOUND), "not_found");
}

#[tokio::test]
async fn an_impersonation_carries_no_admin_power_and_ends_with_its_administrators() {
    let app = spawn_app().await;
    let sync = |body: serde_json::Value| {
        app.send(
            app.client
                .post(app.url("/api/rbac-sync"))
                .header("X-RBAC-SYNC-SECRET", RBAC_SECRET)
                .json(&body),
        )
    };
    let (second, second_token) = app.new_creator("second-admin@genie.test").await;
    let promoted = sync(json!({"user_id": second["id"], "role": "administrator"})).await;
    assert_eq!(promoted.status, StatusCode::OK, "{:?}", promoted.body);

    let admin = app.admin_token().await;
    let of_an_admin = app
        .post(
            "/api/impersonate",
            json!({"user_id": second["id"]}),
            Some(&admin),
        )
        .await;
    assert_eq!(
        assert_error(&of_an_admin, StatusCode::FORBIDDEN),
        "forbidden"
    );

    let (creator, _) = app.new_creator("creator@genie.test").await;
    let (third, _) = app.new_creator("third@genie.test").await;
    let granted = app
        .post(
            "/api/impersonate",
            json!({"user_id": creator["id"]}),
            Some(&second_token),
        )
        .await;
    assert_eq!(granted.status, StatusCode::OK, "{:?}", granted.body);
    let as_creator = granted.body["access_token"].as_str().unwrap().to_owned();
    let onboarding = app.get("/api/onboarding", Some(&as_creator)).await;
    assert_eq!(onboarding.status, StatusCode::OK, "{:?}", onboarding.body);
    for (path, body) in [
        ("/api/impersonate", json!({"user_id": third["id"]})),
        ("/api/invites", json!({})),
    ] {
        let refused = app.post(path, body, Some(&as_creator)).await;
        assert_eq!(
            assert_error(&refused, StatusCode::FORBIDDEN),
            "forbidden",
            "{path}"
        );
    }

    // The administrator who started it is demoted: the impersonation ends with their power.
    let demoted = sync(json!({"user_id": second["id"], "role": "creator"})).await;
    assert_eq!(demoted.status, StatusCode::OK, "{:?}", demoted.body);
    let ended = app.get("/api/onboarding", Some(&as_creator)).await;
    assert_eq!(
        assert_error(&ended, StatusCode::UNAUTHORIZED),
        "impersonation_revoked"
    );
    let directus = app.get("/users/me", Some(&as_creator)).await;
    assert_eq!(
        assert_directus_error(&directus, StatusCode::UNAUTHORIZED),
        "INVALID_CREDENTIALS"
    );

    // And suspension ends one too.
    let granted = app
        .post(
            "/api/impersonate",
            json!({"user_id": creator["id"]}),
            Some(&admin),
        )
        .await;
    let as_creator = granted.body["access_token"].as_str().unwrap().to_owned();
    let admin_id = app.get("/users/me", Some(&admin)).await.body["data"]["id"].clone();
    let suspended = sync(json!({"user_id": admin_id, "status": "suspended"})).await;
    assert_eq!(suspended.status, StatusCode::OK, "{:?}", suspended.body);
    let ended = app.get("/api/onboarding", Some(&as_creator)).await;
    assert_eq!(
        assert_error(&ended, StatusCode::UNAUTHORIZED),
        "impersonation_revoked"
    );
}

#[tokio::test]
async fn rbac_sync_needs_the_shared_secret_and_takes_effect() {
    let app = spawn_app().await;
    let (creator, creator_token) = app.new_creator("creator@genie.test").await;
    let body = json!({"user_id": creator["id"], "role": "viewer", "pricing_tier": "pro"});

    let missing = app.post("/api/rbac-sync", body.clone(), None).await;
    assert_eq!(
        assert_error(&missing, StatusCode::UNAUTHORIZED),
        "invalid_secret"
    );
    let wrong = app
        .send(
            app.client
                .post(app.url("/api/rbac-sync"))
                .header("X-RBAC-SYNC-SECRET", "guess")
                .json(&body),
        )
        .await;
    assert_eq!(
        assert_error(&wrong, StatusCode::UNAUTHORIZED),
        "invalid_secret"
    );
    let with_jwt = app
        .post("/api/rbac-sync", body.clone(), Some(&creator_token))
        .await;
    assert_eq!(
        assert_error(&with_jwt, StatusCode::UNAUTHORIZED),
        "invalid_secret"
    );

    let synced = app
        .send(
            app.client
                .post(app.url("/api/rbac-sync"))
                .header("X-RBAC-SYNC-SECRET", RBAC_SECRET)
                .json(&body),
        )
        .await;
    assert_eq!(synced.status, StatusCode::OK, "{:?}", synced.body);
    assert_eq!(synced.body["user"]["role"], "viewer");
    assert_eq!(synced.body["user"]["pricing_tier"], "pro");

    let suspend = json!({"user_id": creator["id"], "status": "suspended"});
    let suspended = app
        .send(
            app.client
                .post(app.url("/api/rbac-sync"))
                .header("X-RBAC-SYNC-SECRET", RBAC_SECRET)
                .json(&suspend),
        )
        .await;
    assert_eq!(suspended.status, StatusCode::OK, "{:?}", suspended.body);
    let locked_out = app.get("/api/onboarding", Some(&creator_token)).await;
    assert_eq!(
        assert_error(&locked_out, StatusCode::UNAUTHORIZED),
        "user_suspended"
    );
}

#[tokio::test]
async fn profile_and_avatar_through_the_user_proxy() {
    let app = spawn_app().await;
    let (_, token) = app.new_creator("creator@genie.test").await;
    let profile = app.get("/api/user-proxy", Some(&token)).await;
    assert_eq!(profile.status, StatusCode::OK, "{:?}", profile.body);
    assert_eq!(profile.body["user"]["email"], "creator@genie.test");

    let renamed = app
        .patch("/api/user-proxy", json!({"first_name": "Grace"}), &token)
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{:?}", renamed.body);
    assert_eq!(renamed.body["user"]["first_name"], "Grace");
    let too_long = app
        .patch(
            "/api/user-proxy",
            json!({"last_name": "x".repeat(101)}),
            &token,
        )
        .await;
    assert_eq!(
        assert_error(&too_long, StatusCode::BAD_REQUEST),
        "invalid_body"
    );
    assert_eq!(too_long.body["field"], "last_name");

    let png = b"\x89PNG\r\n\x1a\n a tiny stand-in for pixels".to_vec();
    let part = reqwest::multipart::Part::bytes(png.clone())
        .file_name("me.png")
        .mime_str("image/png")
        .unwrap();
    let upload = app
        .send(
            app.client
                .patch(app.url("/api/user-proxy"))
                .bearer_auth(&token)
                .multipart(reqwest::multipart::Form::new().part("avatar", part)),
        )
        .await;
    assert_eq!(upload.status, StatusCode::OK, "{:?}", upload.body);
    let avatar = app
        .client
        .get(app.url("/api/user-proxy/avatar"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(avatar.status(), StatusCode::OK);
    assert_eq!(avatar.headers()["content-type"], "image/png");
    assert_eq!(avatar.bytes().await.unwrap().as_ref(), png.as_slice());

    let html = reqwest::multipart::Part::bytes(b"<html></html>".to_vec())
        .file_name("x.png")
        .mime_str("image/png")
        .unwrap();
    let rejected = app
        .send(
            app.client
                .patch(app.url("/api/user-proxy"))
                .bearer_auth(&token)
                .multipart(reqwest::multipart::Form::new().part("avatar", html)),
        )
        .await;
    assert_error(&rejected, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_role_is_checked_before_the_body() {
    let app = spawn_app().await;
    let (_, creator) = app.new_creator("nosy@genie.test").await;
    for (path, body) in [
        ("/api/impersonate", json!({})),
        ("/api/impersonate", json!({"user_id": "not a uuid"})),
        ("/api/invites", json!({"expires_in_hours": "soon"})),
    ] {
        let response = app.post(path, body.clone(), Some(&creator)).await;
        assert_eq!(
            assert_error(&response, StatusCode::FORBIDDEN),
            "forbidden",
            "{path} {body}"
        );
    }
    // The same bodies from an administrator are judged as bodies.
    let admin = app.admin_token().await;
    let response = app.post("/api/impersonate", json!({}), Some(&admin)).await;
    assert_eq!(
        assert_error(&response, StatusCode::BAD_REQUEST),
        "missing_field"
    );
    assert_eq!(response.body["field"], "user_id");
    // `onboarding_state`, the name other answers use, is taken as `state`.
    let moved = app
        .patch(
            "/api/onboarding",
            json!({"onboarding_state": "DATA_COLLECTION"}),
            &creator,
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);
    assert_eq!(moved.body["state"], "DATA_COLLECTION");
}
