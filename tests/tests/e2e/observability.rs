//! What the platform tells its operators: one client request is one trace (the gateway's span
//! continues the caller's `traceparent`, svc-auth's spans continue the gateway's, over the real
//! HTTP and gRPC hops), and no log line or span ever carries a password, token or secret.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use reqwest::StatusCode;
use serde_json::json;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;

use crate::helpers::*;

/// Everything the process logs and traces at info level and above, kept in memory.
struct Captured {
    spans: InMemorySpanExporter,
    logs: Arc<Mutex<Vec<u8>>>,
}

#[derive(Clone)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The subscriber is process-wide, so every test's logs and spans land here: the checks below
/// cover the whole suite, and the trace test looks only at its own trace.
fn captured() -> &'static Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        let spans = InMemorySpanExporter::default();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(spans.clone())
            .build();
        common::telemetry::install_propagator();
        let writer = LogBuffer(Arc::clone(&logs));
        let subscriber = tracing_subscriber::registry()
            .with(LevelFilter::INFO)
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(move || writer.clone()),
            )
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("e2e")));
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other test installs a global subscriber");
        Captured { spans, logs }
    })
}

fn finished_spans() -> &'static InMemorySpanExporter {
    &captured().spans
}

fn spans_of_trace(trace_id: &str) -> Vec<SpanData> {
    finished_spans()
        .get_finished_spans()
        .expect("read the in-memory spans")
        .into_iter()
        .filter(|span| span.span_context.trace_id().to_string() == trace_id)
        .collect()
}

#[tokio::test]
async fn a_request_is_one_trace_from_the_client_through_every_service() {
    finished_spans();
    let app = spawn_app().await;
    let (_, token) = app.new_creator("traced@genie.test").await;

    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let response = app
        .send(
            app.client
                .get(app.url("/users/me"))
                .bearer_auth(&token)
                .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01")),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);

    // svc-auth closes its span as it sends the answer; give the exporter a moment.
    let mut spans = Vec::new();
    for _ in 0..40 {
        spans = spans_of_trace(&trace_id);
        if spans.iter().filter(|span| span.name == "grpc").count() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let names: Vec<&str> = spans.iter().map(|span| span.name.as_ref()).collect();
    let gateway_span = spans
        .iter()
        .find(|span| span.name != "grpc")
        .unwrap_or_else(|| panic!("the gateway's span is in the caller's trace: {names:?}"));
    assert_eq!(
        gateway_span.parent_span_id.to_string(),
        "00f067aa0ba902b7",
        "the gateway continues the caller's span"
    );
    let grpc: Vec<&SpanData> = spans.iter().filter(|span| span.name == "grpc").collect();
    assert!(
        grpc.len() >= 2,
        "svc-auth's Resolve and Me are in the same trace: {names:?}"
    );
    for span in grpc {
        assert_ne!(
            span.parent_span_id.to_string(),
            "00f067aa0ba902b7",
            "a hop of its own"
        );
    }
}

#[tokio::test]
async fn no_log_line_or_span_carries_a_password_token_or_secret() {
    captured();
    let app = spawn_app().await;
    let admin = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let wrong = app
        .post(
            "/auth/login",
            json!({"email": ADMIN_EMAIL, "password": "wrong-password-xyz"}),
            None,
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let admin_token = token_of(&admin);
    let invite = app
        .post("/api/invites", json!({}), Some(&admin_token))
        .await;
    let code = invite.body["code"].as_str().unwrap().to_owned();
    let registered = app
        .post(
            "/api/register",
            json!({"email": "quiet@genie.test", "password": "registered-password-xyz", "invite_code": code}),
            None,
        )
        .await;
    assert_eq!(registered.status, StatusCode::OK, "{:?}", registered.body);
    let refresh = admin["refresh_token"].as_str().unwrap().to_owned();
    let rotated = app
        .post("/auth/refresh", json!({"refresh_token": refresh}), None)
        .await;
    let rotated_refresh = rotated.body["data"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let sync = app
        .send(
            app.client
                .post(app.url("/api/rbac-sync"))
                .header("X-RBAC-SYNC-SECRET", "a-wrong-rbac-secret-xyz")
                .json(&json!({"user_id": registered.body["user"]["id"], "role": "viewer"})),
        )
        .await;
    assert_eq!(sync.status, StatusCode::UNAUTHORIZED);
    let by_query = app
        .get(&format!("/api/onboarding?access_token={admin_token}"), None)
        .await;
    assert_eq!(by_query.status, StatusCode::OK);

    let vault_plaintexts = reveal_vault_secrets(&app, &admin_token).await;

    let logs = String::from_utf8(captured().logs.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("secret revealed"), "reveals are logged");
    assert!(
        logs.contains("svc-auth listening"),
        "the logs were captured"
    );
    let spans: String = finished_spans()
        .get_finished_spans()
        .unwrap()
        .iter()
        .flat_map(|span| {
            span.attributes
                .iter()
                .map(|kv| format!("{}={} ", kv.key, kv.value))
        })
        .collect();
    let secrets = [
        ADMIN_PASSWORD,
        "wrong-password-xyz",
        "registered-password-xyz",
        "a-wrong-rbac-secret-xyz",
        RBAC_SECRET,
        INTERNAL_TOKEN,
        DIRECTUS_SECRET,
        &admin_token,
        &refresh,
        &rotated_refresh,
        &code,
    ]
    .into_iter()
    .chain(vault_plaintexts);
    for secret in secrets {
        // Say which kind leaked, never the value itself.
        assert!(
            !logs.contains(secret),
            "a secret of length {} is in the logs",
            secret.len()
        );
        assert!(
            !spans.contains(secret),
            "a secret of length {} is in a span",
            secret.len()
        );
    }
}

/// Stores and reveals every kind of vault secret; returns the plaintexts.
async fn reveal_vault_secrets(app: &TestApp, token: &str) -> [&'static str; 3] {
    let plaintexts = [
        "vault-credentials-plaintext-71",
        "vault-entry-plaintext-72",
        "vault-cookie-plaintext-73",
    ];
    let profile = app
        .post(
            "/api/credentials/create-profile",
            json!({"platform": "onlyfans", "username": "quiet",
                   "credentials": {"password": plaintexts[0]}}),
            Some(token),
        )
        .await;
    let profile_id = profile.body["profile"]["id"].clone();
    let entry = app
        .post(
            "/api/vault",
            json!({"name": "quiet", "secret": plaintexts[1]}),
            Some(token),
        )
        .await;
    let session = app
        .post(
            "/api/credentials/store-platform-session",
            json!({"creatorProfileId": profile_id, "userAgent": "UA",
                   "cookies": [{"name": "sess", "value": plaintexts[2]}]}),
            Some(token),
        )
        .await;
    assert_eq!(session.status, StatusCode::OK, "{:?}", session.status);
    let reveals = [
        (
            "/api/credentials/reveal",
            json!({"creatorProfileId": profile_id}),
        ),
        (
            "/api/credentials/reveal-download-cred",
            json!({"id": entry.body["data"]["id"]}),
        ),
        (
            "/api/credentials/get-platform-session",
            json!({"creatorProfileId": profile_id}),
        ),
    ];
    for (path, body) in reveals {
        let revealed = app.post(path, body, Some(token)).await;
        assert_eq!(revealed.status, StatusCode::OK, "{path}");
    }
    let by_server = app
        .send(
            app.client
                .post(app.url("/api/credentials/reveal"))
                .header("X-RBAC-SYNC-SECRET", RBAC_SECRET)
                .json(&json!({"creatorProfileId": profile_id})),
        )
        .await;
    assert_eq!(by_server.status, StatusCode::OK);
    plaintexts
}
