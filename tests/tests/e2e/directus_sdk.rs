//! The gateway as a Directus to the official Directus SDK (`@directus/sdk`, pinned in
//! `deploy/sdk/`, installed by `deploy/sdk.sh`): `deploy/sdk/sdk_check.mjs` logs in, reads and
//! updates the user, refreshes, logs out, pings and asks for health, and these tests assert on
//! what the SDK returned. Beside it, the same routes over plain HTTP for what the SDK cannot
//! show: `fields[]`, content types, 503 health, the administrator's checks.

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

const SDK_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/sdk");

/// Runs the SDK script against `app` and returns its summary.
async fn run_sdk(app: &TestApp, email: &str, password: &str, new_email: &str) -> Value {
    assert!(
        Path::new(&format!(
            "{SDK_DIR}/node_modules/@directus/sdk/package.json"
        ))
        .exists(),
        "@directus/sdk is not installed in deploy/sdk: run deploy/sdk.sh (deploy/test.sh does)"
    );
    let run = tokio::process::Command::new("node")
        .arg(format!("{SDK_DIR}/sdk_check.mjs"))
        .args([app.address.as_str(), email, password, new_email])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the SDK script ends within 60 s")
        .unwrap_or_else(|error| panic!("cannot run node: {error} (deploy/sdk.sh installs it)"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the SDK script failed:\n{stdout}\n{stderr}"
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|error| panic!("the SDK script printed no summary ({error}):\n{stdout}"))
}

/// The value a step returned; fails the test if the SDK threw.
fn value<'a>(summary: &'a Value, step: &str) -> &'a Value {
    let outcome = &summary[step];
    assert_eq!(outcome["ok"], true, "{step}: {outcome:#}");
    &outcome["value"]
}

/// The SDK's error of a step that must have thrown: (HTTP status, first Directus error).
fn error<'a>(summary: &'a Value, step: &str) -> (u64, &'a Value) {
    let outcome = &summary[step];
    assert_eq!(
        outcome["ok"], false,
        "{step} should have failed: {outcome:#}"
    );
    let status = outcome["error"]["status"].as_u64().expect("an HTTP status");
    (status, &outcome["error"]["errors"][0])
}

#[tokio::test]
async fn the_directus_sdk_logs_in_reads_updates_refreshes_logs_out_pings_and_checks_health() {
    let app = spawn_app().await;
    let (user, _) = app.new_creator("sdk@genie.test").await;
    let summary = run_sdk(
        &app,
        "sdk@genie.test",
        "creator password",
        "Grace@Genie.test",
    )
    .await;
    let context = format!("{summary:#}");

    let login = value(&summary, "login");
    assert_eq!(login["access_token"], true, "{context}");
    assert_eq!(login["refresh_token"], true, "{context}");
    assert_eq!(login["expires"], 900_000, "{context}");

    // readMe with fields: only those, as the SDK unwraps `data`.
    assert_eq!(
        value(&summary, "readMeFields"),
        &json!({"id": user["id"], "email": "sdk@genie.test", "first_name": null}),
        "{context}"
    );
    let me = value(&summary, "readMe");
    for field in [
        "id",
        "first_name",
        "last_name",
        "email",
        "role",
        "status",
        "last_access",
        "onboarding_state",
        "pricing_tier",
    ] {
        assert!(me.get(field).is_some(), "readMe lacks {field}: {context}");
    }
    assert_eq!(me["status"], "active", "{context}");
    let (status, unknown) = error(&summary, "readMeUnknownField");
    assert_eq!(status, 403, "{context}");
    assert_eq!(unknown["extensions"]["code"], "FORBIDDEN", "{context}");
    assert!(
        unknown["message"]
            .as_str()
            .is_some_and(|message| message.contains("\"favourite_colour\"")),
        "{context}"
    );

    assert_eq!(
        value(&summary, "updateMe"),
        &json!({"id": user["id"], "first_name": "Grace", "last_name": "Hopper", "email": "Grace@Genie.test"}),
        "{context}"
    );
    let (status, role) = error(&summary, "updateMeRole");
    assert_eq!(status, 400, "{context}");
    assert_eq!(role["extensions"]["code"], "INVALID_PAYLOAD", "{context}");
    assert_eq!(role["extensions"]["field"], "role", "{context}");
    let (status, blank) = error(&summary, "updateMeBlank");
    assert_eq!(status, 400, "{context}");
    assert_eq!(blank["extensions"]["field"], "last_name", "{context}");

    let refresh = value(&summary, "refresh");
    assert_eq!(
        refresh["access_token"], true,
        "the SDK keeps the new token: {context}"
    );
    assert_eq!(refresh["rotated"], true, "{context}");
    assert_eq!(refresh["expires"], 900_000, "{context}");
    assert_eq!(
        value(&summary, "readMeAfterRefresh"),
        &json!({"email": "Grace@Genie.test", "first_name": "Grace", "last_name": "Hopper"}),
        "the refreshed token reads the changed user: {context}"
    );
    assert_eq!(
        value(&summary, "logout")["token_after"],
        Value::Null,
        "{context}"
    );
    // The login's refresh token was spent by the refresh, the refreshed one by the logout.
    for which in ["login", "refreshed"] {
        let ended = app
            .post(
                "/auth/refresh",
                json!({"refresh_token": summary["refreshTokens"][which]}),
                None,
            )
            .await;
        assert_eq!(
            assert_directus_error(&ended, StatusCode::UNAUTHORIZED),
            "INVALID_CREDENTIALS",
            "{which}: {context}"
        );
    }

    assert_eq!(value(&summary, "serverPing"), "pong", "{context}");
    let health = value(&summary, "serverHealth");
    assert!(
        health["status"] == "ok" || health["status"] == "warn",
        "{context}"
    );
    assert_eq!(
        health.as_object().map(|health| health.len()),
        Some(1),
        "a creator sees the status alone: {context}"
    );

    // The changed email is the login now.
    app.login("grace@genie.test", "creator password").await;
}

#[tokio::test]
async fn fields_pick_what_users_me_answers() {
    let app = spawn_app().await;
    let (user, token) = app.new_creator("fields@genie.test").await;

    let array = app
        .get("/users/me?fields[]=email&fields[]=id", Some(&token))
        .await;
    assert_eq!(array.status, StatusCode::OK, "{:?}", array.body);
    assert_eq!(
        array.body,
        json!({"data": {"id": user["id"], "email": "fields@genie.test"}})
    );
    let mixed = app
        .get(
            "/users/me?fields=pricing_tier,%20status&fields[]=status",
            Some(&token),
        )
        .await;
    assert_eq!(
        mixed.body,
        json!({"data": {"status": "active", "pricing_tier": "starter"}})
    );
    for all in ["*", "*.*", "id,*", ""] {
        let response = app
            .get(&format!("/users/me?fields={all}"), Some(&token))
            .await;
        assert_eq!(response.status, StatusCode::OK, "{all}");
        assert_eq!(
            response.body["data"].as_object().map(|data| data.len()),
            Some(9),
            "{all}"
        );
    }
    // Directus user fields we do not hold are left out; only the id when nothing is left.
    let absent = app
        .get("/users/me?fields=avatar,language", Some(&token))
        .await;
    assert_eq!(absent.body, json!({"data": {"id": user["id"]}}));
    for unknown in ["favourite_colour", "role.name", "id,nope,other"] {
        let response = app
            .get(&format!("/users/me?fields={unknown}"), Some(&token))
            .await;
        assert_eq!(
            assert_directus_error(&response, StatusCode::FORBIDDEN),
            "FORBIDDEN",
            "{unknown}"
        );
    }
    // The token is judged before the query.
    let anonymous = app.get("/users/me?fields=nope", None).await;
    assert_eq!(
        assert_directus_error(&anonymous, StatusCode::UNAUTHORIZED),
        "INVALID_CREDENTIALS"
    );
}

#[tokio::test]
async fn patch_users_me_changes_names_and_email_and_refuses_the_rest_naming_the_field() {
    let app = spawn_app().await;
    let (_, token) = app.new_creator("patch@genie.test").await;
    app.new_creator("other@genie.test").await;

    let set = app
        .patch(
            "/users/me?fields=first_name,last_name",
            json!({"first_name": "Ada", "last_name": "Lovelace"}),
            &token,
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{:?}", set.body);
    assert_eq!(
        set.body,
        json!({"data": {"first_name": "Ada", "last_name": "Lovelace"}})
    );
    let cleared = app
        .patch("/users/me", json!({"last_name": null}), &token)
        .await;
    assert_eq!(cleared.status, StatusCode::OK, "{:?}", cleared.body);
    assert_eq!(cleared.body["data"]["first_name"], "Ada");
    assert_eq!(cleared.body["data"]["last_name"], Value::Null);
    assert_eq!(cleared.body["data"]["email"], "patch@genie.test");
    let nothing = app.patch("/users/me", json!({}), &token).await;
    assert_eq!(nothing.status, StatusCode::OK, "{:?}", nothing.body);
    assert_eq!(nothing.body["data"]["first_name"], "Ada");

    let cases = [
        (
            json!({"email": "OTHER@genie.test"}),
            "RECORD_NOT_UNIQUE",
            None,
        ),
        (json!({"email": "nope"}), "INVALID_PAYLOAD", Some("email")),
        (json!({"email": null}), "INVALID_PAYLOAD", Some("email")),
        (
            json!({"first_name": " "}),
            "INVALID_PAYLOAD",
            Some("first_name"),
        ),
        (
            json!({"first_name": "a\u{0}b"}),
            "INVALID_PAYLOAD",
            Some("first_name"),
        ),
        (
            json!({"first_name": 7}),
            "INVALID_PAYLOAD",
            Some("first_name"),
        ),
        (
            json!({"last_name": "x".repeat(101)}),
            "INVALID_PAYLOAD",
            Some("last_name"),
        ),
        (
            json!({"status": "active"}),
            "INVALID_PAYLOAD",
            Some("status"),
        ),
        (
            json!({"password": "a new password"}),
            "INVALID_PAYLOAD",
            Some("password"),
        ),
        (
            json!({"first_name": "Ok", "pricing_tier": "studio"}),
            "INVALID_PAYLOAD",
            Some("pricing_tier"),
        ),
    ];
    for (body, code, field) in cases {
        let response = app.patch("/users/me", body.clone(), &token).await;
        assert_eq!(
            assert_directus_error(&response, StatusCode::BAD_REQUEST),
            code,
            "{body}"
        );
        if let Some(field) = field {
            assert_eq!(
                response.body["errors"][0]["extensions"]["field"], field,
                "{body}: {:?}",
                response.body
            );
        }
    }
    let unknown = app
        .patch("/users/me", json!({"favourite_colour": "blue"}), &token)
        .await;
    assert_eq!(
        assert_directus_error(&unknown, StatusCode::FORBIDDEN),
        "FORBIDDEN"
    );
    assert_eq!(
        unknown.body["errors"][0]["extensions"]["field"],
        "favourite_colour"
    );
    let me = app.get("/users/me", Some(&token)).await;
    assert_eq!(
        (
            &me.body["data"]["first_name"],
            &me.body["data"]["pricing_tier"]
        ),
        (&json!("Ada"), &json!("starter")),
        "refused changes change nothing"
    );

    let anonymous = app
        .send(
            app.client
                .patch(app.url("/users/me"))
                .json(&json!({"first_name": "x"})),
        )
        .await;
    assert_eq!(
        assert_directus_error(&anonymous, StatusCode::UNAUTHORIZED),
        "INVALID_CREDENTIALS"
    );
}

#[tokio::test]
async fn server_ping_and_health_answer_as_directus_does() {
    let mut app = spawn_app().await;
    let ping = app
        .client
        .get(app.url("/server/ping"))
        .send()
        .await
        .unwrap();
    assert_eq!(ping.status(), StatusCode::OK);
    assert_eq!(ping.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(ping.text().await.unwrap(), "pong");

    let admin = app.admin_token().await;
    let detailed = app.get("/server/health", Some(&admin)).await;
    assert_eq!(detailed.status, StatusCode::OK, "{:?}", detailed.body);
    assert_eq!(
        detailed.headers["content-type"],
        "application/health+json; charset=utf-8"
    );
    let checks = detailed.body["checks"].as_object().expect("checks");
    for name in [
        "svc-auth",
        "svc-usage",
        "svc-credentials",
        "svc-skills",
        "svc-queue",
    ] {
        let check = &checks[&format!("{name}:responseTime")][0];
        assert!(
            check["status"] == "ok" || check["status"] == "warn",
            "{check}"
        );
        assert_eq!(check["observedUnit"], "ms");
        assert!(check["observedValue"].is_number());
    }
    assert!(detailed.body["releaseId"].is_string());

    app.stop_credentials().await;
    for token in [None, Some(admin.as_str()), Some("not a token")] {
        let down = app.get("/server/health", token).await;
        assert_eq!(
            down.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{:?}",
            down.body
        );
        assert_eq!(
            down.headers["content-type"],
            "application/health+json; charset=utf-8"
        );
        assert_eq!(down.body["status"], "error");
        if token == Some(admin.as_str()) {
            let check = &down.body["checks"]["svc-credentials:responseTime"][0];
            assert_eq!(check["status"], "error");
            assert!(
                check["output"] == "unreachable" || check["output"] == "timeout",
                "{check}"
            );
        } else {
            assert_eq!(down.body, json!({"status": "error"}));
        }
    }
}
