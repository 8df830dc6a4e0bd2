//! svc-auth in directus mode against a real Directus (the version pinned in deploy/directus,
//! installed by deploy/directus.sh), started on a random port with its own database: logins go
//! to Directus, users are mirrored from it, and its own tokens work at the gateway. (Directus
//! refuses emails at reserved domains such as `.test`, hence `example.com` here.)

use std::process::Stdio;
use std::time::Duration;

use common::secret::Secret;
use common::testing::{fresh_database, random_listener};
use reqwest::StatusCode;
use serde_json::{Value, json};
use svc_auth::config::{DirectusConfig, Mode};

use crate::helpers::*;

const DIRECTUS_ADMIN: &str = "admin@example.com";
const DIRECTUS_ADMIN_PASSWORD: &str = "directus admin password";
const DIRECTUS_ADMIN_TOKEN: &str = "static-admin-token-of-the-e2e-directus";

struct Directus {
    url: String,
    http: reqwest::Client,
    // Killed when the test ends, pass or fail.
    _process: tokio::process::Child,
}

impl Directus {
    async fn start() -> Self {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/directus");
        let cli = format!("{root}/node_modules/.bin/directus");
        assert!(
            std::path::Path::new(&cli).exists(),
            "Directus is not installed: run deploy/directus.sh (deploy/test.sh does)"
        );
        let database = fresh_database().await;
        let port = {
            let (listener, addr) = random_listener().await;
            drop(listener);
            addr.port()
        };
        let env = [
            ("DB_CLIENT", "pg".to_owned()),
            ("DB_CONNECTION_STRING", database.url.clone()),
            ("KEY", uuid::Uuid::new_v4().to_string()),
            ("SECRET", DIRECTUS_SECRET.to_owned()),
            ("ADMIN_EMAIL", DIRECTUS_ADMIN.to_owned()),
            ("ADMIN_PASSWORD", DIRECTUS_ADMIN_PASSWORD.to_owned()),
            ("ADMIN_TOKEN", DIRECTUS_ADMIN_TOKEN.to_owned()),
            ("HOST", "127.0.0.1".to_owned()),
            ("PORT", port.to_string()),
            ("PUBLIC_URL", format!("http://127.0.0.1:{port}")),
            ("TELEMETRY", "false".to_owned()),
            ("LOG_LEVEL", "error".to_owned()),
        ];
        let bootstrap = tokio::process::Command::new(&cli)
            .arg("bootstrap")
            .current_dir(root)
            .envs(env.clone())
            .output()
            .await
            .expect("run directus bootstrap");
        assert!(
            bootstrap.status.success(),
            "directus bootstrap failed: {}",
            String::from_utf8_lossy(&bootstrap.stderr)
        );
        let process = tokio::process::Command::new(&cli)
            .arg("start")
            .current_dir(root)
            .envs(env)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start directus");
        let directus = Self {
            url: format!("http://127.0.0.1:{port}"),
            http: http_client(),
            _process: process,
        };
        for _ in 0..120 {
            if directus
                .http
                .get(directus.url("/server/ping"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return directus;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("Directus did not answer /server/ping within 30 s");
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method, self.url(path))
            .bearer_auth(DIRECTUS_ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert!(
            response.status().is_success(),
            "Directus {path}: {}",
            response.status()
        );
        response.json().await.unwrap_or(Value::Null)
    }

    async fn login(&self, email: &str, password: &str) -> Value {
        let response = self
            .http
            .post(self.url("/auth/login"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json::<Value>().await.unwrap()["data"].clone()
    }
}

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
