use std::time::Duration;

use common::secret::Secret;
use common::testing::{fresh_database, random_listener};
use reqwest::StatusCode;
use serde_json::{Value, json};

pub const ADMIN_EMAIL: &str = "admin@genie.test";
pub const ADMIN_PASSWORD: &str = "admin password 1";
pub use tests::{DIRECTUS_SECRET, http_client};
pub const INTERNAL_TOKEN: &str = "internal token shared by the e2e tests 0123456789";
pub const RBAC_SECRET: &str = "rbac sync secret of the e2e tests";
/// Vault key v1 of the e2e tests: base64 of "vault key v1 of the e2e tests..." (32 bytes).
pub const VAULT_KEY_B64: &str = "dmF1bHQga2V5IHYxIG9mIHRoZSBlMmUgdGVzdHMuLi4=";

/// The vault's keys in the e2e tests: v1 alone.
pub fn vault_keys() -> svc_credentials::crypto::KeyRing {
    svc_credentials::config::key_ring(&Secret::new(VAULT_KEY_B64), None, Default::default(), true)
        .expect("the e2e vault key is valid")
}

/// The whole stack (every service and the gateway), started for one test.
pub struct TestApp {
    pub address: String,
    /// svc-auth's gRPC endpoint, for calls that bypass the gateway.
    pub auth_url: String,
    /// svc-credentials' gRPC endpoint, for calls that bypass the gateway.
    pub credentials_url: String,
    /// The database every service of this app uses, for what a test checks in SQL.
    pub database_url: String,
    /// svc-queue's configuration, for workers of the same deployment.
    pub queue_config: svc_queue::Config,
    pub client: reqwest::Client,
    auth: RunningService,
    usage: RunningService,
    credentials: RunningService,
    skills: RunningService,
    queue: RunningService,
    /// The media worker, when the test asked for one (stopped when dropped).
    worker: Option<tokio::task::AbortHandle>,
    gateway: actix_web::dev::ServerHandle,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(worker) = self.worker.take() {
            worker.abort();
        }
        drop(self.gateway.stop(false));
    }
}

/// A gRPC service running in this process on a random port, stopped when dropped.
struct RunningService {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl RunningService {
    async fn start<F, Fut>(run: F) -> Self
    where
        F: FnOnce(tokio::net::TcpListener, tokio::sync::oneshot::Receiver<()>) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let (listener, addr) = random_listener().await;
        let (stop, stopped) = tokio::sync::oneshot::channel();
        Self {
            url: format!("http://{addr}"),
            stop: Some(stop),
            task: Some(tokio::spawn(run(listener, stopped))),
        }
    }

    /// Stops the service and waits until it has let go of its port.
    async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

impl Drop for RunningService {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The stack with the gateway resolving users afresh on every request, so that role and status
/// changes show at once (production caches for up to 30 s).
pub async fn spawn_app() -> TestApp {
    spawn_app_with_resolve_cache(Duration::ZERO).await
}

pub async fn spawn_app_with_resolve_cache(resolve_cache_ttl: Duration) -> TestApp {
    spawn(resolve_cache_ttl, |_| {}, |_| {}).await
}

/// The stack with svc-auth's configuration adjusted by `configure`.
pub async fn spawn_app_with(configure: impl FnOnce(&mut svc_auth::Config)) -> TestApp {
    spawn(Duration::ZERO, configure, |_| {}).await
}

/// The stack with svc-queue's configuration adjusted by `configure`, on broker queues of its
/// own, and the gateway caching resolved users for `resolve_cache_ttl`.
pub async fn spawn_app_with_queue(
    resolve_cache_ttl: Duration,
    configure: impl FnOnce(&mut svc_queue::Config),
) -> TestApp {
    spawn(
        resolve_cache_ttl,
        |_| {},
        |config| {
            config.name_prefix = common::testing::broker_prefix();
            configure(config);
        },
    )
    .await
}

/// The stack with a media worker, on queues of its own.
pub async fn spawn_app_with_worker() -> TestApp {
    let mut app = spawn_app_with_queue(Duration::ZERO, |_| {}).await;
    let config = app.queue_config.clone();
    app.worker = Some(
        tokio::spawn(async move {
            let (health, _) = common::testing::random_listener().await;
            svc_queue::run_worker(config, health, std::future::pending())
                .await
                .unwrap();
        })
        .abort_handle(),
    );
    app
}

async fn spawn(
    resolve_cache_ttl: Duration,
    configure: impl FnOnce(&mut svc_auth::Config),
    configure_queue: impl FnOnce(&mut svc_queue::Config),
) -> TestApp {
    let database = fresh_database().await;
    let mut auth = svc_auth::Config::local(
        database.url.clone(),
        Secret::new(INTERNAL_TOKEN),
        Secret::new(DIRECTUS_SECRET),
    );
    auth.admin = Some((ADMIN_EMAIL.into(), Secret::new(ADMIN_PASSWORD)));
    configure(&mut auth);
    let auth = RunningService::start(|listener, stopped| {
        svc_auth::run(auth, listener, async {
            let _ = stopped.await;
        })
    })
    .await;
    let usage_config = svc_usage::Config::local(database.url.clone(), Secret::new(INTERNAL_TOKEN));
    let usage = RunningService::start(|listener, stopped| {
        svc_usage::run(usage_config, listener, async {
            let _ = stopped.await;
        })
    })
    .await;
    let mut credentials_config = svc_credentials::Config::local(
        database.url.clone(),
        Secret::new(INTERNAL_TOKEN),
        vault_keys(),
    );
    credentials_config.usage_grpc_url = usage.url.clone();
    let credentials = RunningService::start(|listener, stopped| {
        svc_credentials::run(credentials_config, listener, async {
            let _ = stopped.await;
        })
    })
    .await;
    // Without the shipped catalogue: a test's skills are the ones it creates.
    let mut skills_config =
        svc_skills::Config::local(database.url.clone(), Secret::new(INTERNAL_TOKEN));
    skills_config.seed = false;
    let skills = RunningService::start(|listener, stopped| {
        svc_skills::run(skills_config, listener, async {
            let _ = stopped.await;
        })
    })
    .await;
    let mut queue_config =
        svc_queue::Config::local(database.url.clone(), Secret::new(INTERNAL_TOKEN));
    queue_config.usage_grpc_url = usage.url.clone();
    queue_config.name_prefix = tests::BROKER_PREFIX.to_owned();
    queue_config.storage_dir =
        std::env::temp_dir().join(format!("genie-files-{}", uuid::Uuid::new_v4()));
    // Posts can be scheduled; none of these tests lets one fall due, so nothing is delivered.
    queue_config.publish_webhook = Some((
        "http://127.0.0.1:9/publish".parse().unwrap(),
        Secret::new("a-publishing-secret-of-the-e2e-tests"),
    ));
    configure_queue(&mut queue_config);
    let served_queue_config = queue_config.clone();
    let queue = RunningService::start(|listener, stopped| {
        svc_queue::run(served_queue_config, listener, async {
            let _ = stopped.await;
        })
    })
    .await;

    let mut config = gateway::Config::local(
        auth.url.clone(),
        Secret::new(DIRECTUS_SECRET),
        Secret::new(INTERNAL_TOKEN),
        Secret::new(RBAC_SECRET),
    );
    config.resolve_cache_ttl = resolve_cache_ttl;
    config.usage_grpc_url = usage.url.clone();
    config.credentials_grpc_url = credentials.url.clone();
    config.skills_grpc_url = skills.url.clone();
    config.queue_grpc_url = queue.url.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = gateway::build(config, listener).unwrap();
    let handle = server.handle();
    tokio::spawn(server);

    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        auth_url: auth.url.clone(),
        credentials_url: credentials.url.clone(),
        database_url: database.url,
        queue_config,
        client: http_client(),
        auth,
        usage,
        credentials,
        skills,
        queue,
        worker: None,
        gateway: handle,
    }
}

pub struct Response {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Response {
        let response = request.send().await.expect("the gateway answers");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Response {
            status,
            headers,
            body,
        }
    }

    pub async fn post(&self, path: &str, body: Value, token: Option<&str>) -> Response {
        let mut request = self.client.post(self.url(path)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(request).await
    }

    pub async fn patch(&self, path: &str, body: Value, token: &str) -> Response {
        self.send(
            self.client
                .patch(self.url(path))
                .json(&body)
                .bearer_auth(token),
        )
        .await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(request).await
    }

    /// Logs in through the Directus-compatible endpoint; returns `data`.
    pub async fn login(&self, email: &str, password: &str) -> Value {
        let response = self
            .post(
                "/auth/login",
                json!({"email": email, "password": password}),
                None,
            )
            .await;
        assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
        response.body["data"].clone()
    }

    pub async fn admin_token(&self) -> String {
        token_of(&self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await)
    }

    /// Invites, registers and logs in a new creator; returns (user, access token).
    pub async fn new_creator(&self, email: &str) -> (Value, String) {
        let admin = self.admin_token().await;
        let invite = self.post("/api/invites", json!({}), Some(&admin)).await;
        assert_eq!(invite.status, StatusCode::OK, "{:?}", invite.body);
        let registered = self
            .post(
                "/api/register",
                json!({"email": email, "password": "creator password", "invite_code": invite.body["code"]}),
                None,
            )
            .await;
        assert_eq!(registered.status, StatusCode::OK, "{:?}", registered.body);
        let token = token_of(&self.login(email, "creator password").await);
        (registered.body["user"].clone(), token)
    }

    pub async fn stop_auth(&mut self) {
        self.auth.stop().await;
    }

    pub async fn stop_usage(&mut self) {
        self.usage.stop().await;
    }

    pub async fn stop_skills(&mut self) {
        self.skills.stop().await;
    }

    pub async fn stop_queue(&mut self) {
        self.queue.stop().await;
    }

    pub async fn stop_credentials(&mut self) {
        self.credentials.stop().await;
    }
}
pub fn token_of(data: &Value) -> String {
    data["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned()
}

/// The same token with its expiry moved two minutes into the past, signed with the right key.
pub fn expired_token_of(token: &str) -> String {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("a JWT");
    let mut claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64url claims"),
    )
    .expect("JSON claims");
    claims["exp"] = json!(chrono::Utc::now().timestamp() - 120);
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(DIRECTUS_SECRET.as_bytes()),
    )
    .expect("sign the expired token")
}

/// Asserts the error body of docs/DESIGN.md §4 and returns its reason.
pub fn assert_error(response: &Response, status: StatusCode) -> String {
    assert_eq!(response.status, status, "{:?}", response.body);
    assert_eq!(response.body["ok"], false, "{:?}", response.body);
    assert_eq!(response.body["success"], false, "{:?}", response.body);
    assert!(response.body["error"].is_string(), "{:?}", response.body);
    response.body["reason"]
        .as_str()
        .expect("a reason")
        .to_owned()
}

/// Asserts a Directus-format error and returns its code.
pub fn assert_directus_error(response: &Response, status: StatusCode) -> String {
    assert_eq!(response.status, status, "{:?}", response.body);
    let error = &response.body["errors"][0];
    assert!(error["message"].is_string(), "{:?}", response.body);
    error["extensions"]["code"]
        .as_str()
        .expect("a Directus error code")
        .to_owned()
}
