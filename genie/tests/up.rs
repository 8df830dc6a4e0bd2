//! `genie up`, the operator's binary, started with nothing but environment variables (as the
//! README documents them) and driven over HTTP.

// Test support: a failed setup step should stop the test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Stdio;
use std::time::Duration;

use common::testing::{fresh_database, random_listener};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tests::{DIRECTUS_SECRET, Directus, http_client};

const INTERNAL_TOKEN: &str = "internal token of genie's own tests 0123456789";

async fn free_port() -> u16 {
    let (listener, addr) = random_listener().await;
    drop(listener);
    addr.port()
}

/// `genie up` with exactly `env` (and PATH), killed when dropped.
struct Genie {
    url: String,
    http: reqwest::Client,
    _process: tokio::process::Child,
}

impl Genie {
    async fn up(env: Vec<(&str, String)>) -> Self {
        let database = fresh_database().await;
        let gateway = free_port().await;
        let mut variables = vec![
            ("PATH", std::env::var("PATH").unwrap_or_default()),
            ("GATEWAY_ADDR", format!("127.0.0.1:{gateway}")),
            ("INTERNAL_TOKEN", INTERNAL_TOKEN.to_owned()),
            ("DIRECTUS_SECRET", DIRECTUS_SECRET.to_owned()),
            (
                "RBAC_SYNC_WEBHOOK_SECRET",
                "rbac sync secret of genie's tests".to_owned(),
            ),
            (
                "CREDENTIALS_ENC_KEY_B64",
                "dmF1bHQga2V5IHYxIG9mIHRoZSBlMmUgdGVzdHMuLi4=".to_owned(),
            ),
            ("RUST_LOG", "warn".to_owned()),
        ];
        for service in ["AUTH", "USAGE", "CREDENTIALS"] {
            let port = free_port().await;
            variables.push((
                leak(format!("{service}_DATABASE_URL")),
                database.url.clone(),
            ));
            variables.push((
                leak(format!("{service}_GRPC_ADDR")),
                format!("127.0.0.1:{port}"),
            ));
            variables.push((
                leak(format!("{service}_GRPC_URL")),
                format!("http://127.0.0.1:{port}"),
            ));
        }
        variables.extend(env);
        let process = tokio::process::Command::new(env!("CARGO_BIN_EXE_genie"))
            .arg("up")
            .env_clear()
            .envs(variables)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start genie up");
        let genie = Self {
            url: format!("http://127.0.0.1:{gateway}"),
            http: http_client(),
            _process: process,
        };
        for _ in 0..200 {
            if genie
                .http
                .get(genie.url("/health/ready"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return genie;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("genie up was not ready within 20 s");
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
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

fn leak(name: String) -> &'static str {
    Box::leak(name.into_boxed_str())
}

#[tokio::test]
async fn directus_mode_from_the_environment_logs_in_resolves_and_registers_through_directus() {
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

#[tokio::test]
async fn a_misspelt_mode_stops_start_up_naming_the_variable() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_genie"))
        .arg("up")
        .env_clear()
        .envs([
            ("AUTH_MODE", "directos"),
            ("INTERNAL_TOKEN", INTERNAL_TOKEN),
            ("DIRECTUS_SECRET", DIRECTUS_SECRET),
        ])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("AUTH_MODE"), "{stderr}");
}

#[tokio::test]
async fn directus_mode_without_its_url_stops_start_up_naming_it() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_genie"))
        .arg("up")
        .env_clear()
        .envs([
            ("AUTH_MODE", "directus"),
            ("INTERNAL_TOKEN", INTERNAL_TOKEN),
            ("DIRECTUS_SECRET", DIRECTUS_SECRET),
        ])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("DIRECTUS_URL"), "{stderr}");
}
