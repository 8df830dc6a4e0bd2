//! Support shared by the end-to-end tests of this crate (`tests/e2e`) and of the `genie` binary
//! (`genie/tests`): a real Directus process and an HTTP client. The tests themselves live in
//! `tests/` and `benches/`.
//!
//! Test support: a setup step that cannot do its job fails the test at once, with a message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Stdio;
use std::time::Duration;

use common::testing::{fresh_database, random_listener};
use serde_json::{Value, json};

/// The Directus `SECRET` of the e2e tests, shared with the gateway and svc-auth.
pub const DIRECTUS_SECRET: &str = "directus secret shared by the e2e tests 0123456789";

/// An HTTP client for tests. reqwest is built without a TLS crypto provider of its own, so this
/// installs ring's first (a second install is a harmless no-op).
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("build the test HTTP client")
}

/// A real Directus (the version pinned in deploy/directus, installed by deploy/directus.sh) on a
/// random port with a database of its own, killed when dropped. (Directus refuses emails at
/// reserved domains such as `.test`, hence `example.com` for its users.)
pub struct Directus {
    pub url: String,
    http: reqwest::Client,
    _process: tokio::process::Child,
}

impl Directus {
    pub const ADMIN: &str = "admin@example.com";
    pub const ADMIN_PASSWORD: &str = "directus admin password";
    pub const ADMIN_TOKEN: &str = "static-admin-token-of-the-e2e-directus";

    pub async fn start() -> Self {
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
            ("ADMIN_EMAIL", Self::ADMIN.to_owned()),
            ("ADMIN_PASSWORD", Self::ADMIN_PASSWORD.to_owned()),
            ("ADMIN_TOKEN", Self::ADMIN_TOKEN.to_owned()),
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

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// A call with the administrator's static token; a failure fails the test.
    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method, self.url(path))
            .bearer_auth(Self::ADMIN_TOKEN);
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

    /// Logs in at Directus itself: its `data` (`access_token`, `refresh_token`, `expires`).
    pub async fn login(&self, email: &str, password: &str) -> Value {
        let response = self
            .http
            .post(self.url("/auth/login"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        response.json::<Value>().await.unwrap()["data"].clone()
    }
}
