//! Where the time of a vault store and reveal goes: raw `ring` AES-256-GCM against our `KeyRing`
//! (hex envelope, row binding), against `StoreCredentials` / `RevealCredentials` straight to
//! svc-credentials over gRPC, against `POST /api/credentials/store` / `reveal` through the gateway;
//! for a login JSON of about 80 bytes and a cookie array of about 4 KB. One run, alternating
//! rounds, so that noise from a shared machine hits every side alike.
//!
//! `cargo bench -p tests --bench vault` (release build). Client, gateway, svc-credentials and
//! PostgreSQL share the machine's cores, so the figures are for comparison, not capacity planning.
//! Every reveal writes its audit line (an `INSERT` into `credentials.reveal_audit`) before it
//! answers: a reveal is a read and a write.

// Benchmark and test support: a failed setup step should stop the run with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(dead_code)] // the e2e helpers and `measure` carry more than the benchmark uses

#[path = "../tests/e2e/helpers.rs"]
mod helpers;
mod measure;

use std::hint::black_box;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use common::identity::{Identity, UserIdentity};
use common::secret::Secret;
use helpers::*;
use measure::{Rate, Sample, measure_each, measure_ops};
use proto::credentials::v1 as pb;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{Value, json};
use svc_credentials::crypto::{Binding, KeyRing};
use uuid::Uuid;

/// Concurrent callers of the gRPC and gateway phases, each on a creator profile of its own (so
/// that stores do not queue behind one row lock).
const CALLERS: usize = 16;
/// The crypto phases run on one thread.
const CRYPTO_ROUND: Duration = Duration::from_secs(2);
const SERVICE_ROUND: Duration = Duration::from_secs(3);
const ROUNDS: usize = 3;
const WARM_UP: Duration = Duration::from_millis(500);
const TIMEOUT: Duration = Duration::from_secs(10);

/// A secret as the vault receives it: the compact JSON text the gateway would send.
struct Payload {
    name: &'static str,
    value: Value,
    json: Arc<str>,
}

impl Payload {
    fn new(name: &'static str, value: Value) -> Self {
        let json = value.to_string().into();
        Self { name, value, json }
    }
}

/// A creator's platform login.
fn login() -> Payload {
    Payload::new(
        "login JSON",
        json!({"email": "creator@example.com", "password": "correct-horse-battery-staple-42"}),
    )
}

/// A captured browser session: 30 cookies.
fn cookies() -> Payload {
    let cookies: Vec<Value> = (0..30_u64)
        .map(|i| {
            json!({
                "name": format!("cookie_{i:02}"),
                "value": format!("{:016x}", (i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
                "domain": ".onlyfans.com",
                "path": "/",
                "expires": 1_798_761_600 + i,
                "httpOnly": i % 2 == 0,
                "secure": true,
            })
        })
        .collect();
    Payload::new("cookie array", Value::Array(cookies))
}

/// AES-256-GCM as `ring` gives it, without our envelope: the baseline.
struct RawRing {
    key: LessSafeKey,
    random: SystemRandom,
}

impl RawRing {
    fn new(key: &[u8]) -> Self {
        Self {
            key: LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte key")),
            random: SystemRandom::new(),
        }
    }

    /// Seals a copy of `plaintext` under a fresh random nonce; returns the nonce and
    /// ciphertext‖tag.
    fn seal(&self, aad: &[u8], plaintext: &[u8]) -> ([u8; NONCE_LEN], Vec<u8>) {
        let mut nonce = [0u8; NONCE_LEN];
        self.random.fill(&mut nonce).expect("random nonce");
        let mut buffer = Vec::with_capacity(plaintext.len() + AES_256_GCM.tag_len());
        buffer.extend_from_slice(plaintext);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buffer,
            )
            .expect("seal");
        buffer.extend_from_slice(tag.as_ref());
        (nonce, buffer)
    }

    /// Opens a copy of ciphertext‖tag; returns the plaintext's length.
    fn open(&self, aad: &[u8], nonce: [u8; NONCE_LEN], sealed: &[u8]) -> usize {
        let mut buffer = sealed.to_vec();
        self.key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buffer,
            )
            .expect("every open of the benchmark succeeds")
            .len()
    }
}

/// The figures of one payload, merged over the rounds.
#[derive(Default)]
struct Figures {
    raw_seal: Rate,
    raw_open: Rate,
    keyring_seal: Rate,
    keyring_open: Rate,
    grpc_store: Sample,
    grpc_reveal: Sample,
    http_store: Sample,
    http_reveal: Sample,
}

/// Every phase of one payload, ready to run.
struct Phases {
    payload: Payload,
    binding: Binding,
    aad: String,
    raw_sealed: ([u8; NONCE_LEN], Vec<u8>),
    keyring_sealed: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let app = spawn_app_with_resolve_cache(Duration::from_secs(30)).await;
    let internal = Secret::new(INTERNAL_TOKEN);
    let keys = vault_keys();
    let raw = RawRing::new(&base64::engine::general_purpose::STANDARD.decode(VAULT_KEY_B64)?);

    // One creator per caller, each with one creator profile created through the gateway: a
    // starter tier holds one platform, and a profile per caller keeps stores off one row lock.
    let mut callers = Vec::with_capacity(CALLERS);
    for caller in 0..CALLERS {
        let (user, token) = app
            .new_creator(&format!("vault-bench-{caller:02}@genie.test"))
            .await;
        let identity = Identity::user(
            UserIdentity {
                id: user["id"].as_str().unwrap().parse()?,
                role: "creator".into(),
                tier: "starter".into(),
                impersonated_by: None,
            },
            "bench",
        );
        let created = app
            .post(
                "/api/credentials/create-profile",
                json!({"platform": "onlyfans", "username": format!("bench_{caller:02}"), "credentials": login().value}),
                Some(&token),
            )
            .await;
        assert!(created.status.is_success(), "{:?}", created.body);
        let profile = created.body["profile"]["id"].as_str().unwrap().to_owned();
        callers.push(Caller {
            token,
            identity,
            profile,
        });
    }
    let callers: Arc<[Caller]> = callers.into();

    let channel = tonic::transport::Channel::from_shared(app.credentials_url.clone())?
        .connect()
        .await?;
    let grpc = pb::credentials_client::CredentialsClient::new(channel);

    let phases: Vec<Phases> = [login(), cookies()]
        .into_iter()
        .map(|payload| {
            // A binding like the service's own: the credentials column of a creator profile.
            let binding = Binding {
                table: "creator_profiles",
                row: Uuid::new_v4(),
                field: "credentials",
            };
            let aad = format!(
                "genie.credentials.v1|{}|{}|{}",
                binding.table, binding.row, binding.field
            );
            let raw_sealed = raw.seal(aad.as_bytes(), payload.json.as_bytes());
            let keyring_sealed = keys
                .seal(&binding, payload.json.as_bytes())
                .expect("seal")
                .text;
            Phases {
                payload,
                binding,
                aad,
                raw_sealed,
                keyring_sealed,
            }
        })
        .collect();

    println!(
        "vault benchmark: {ROUNDS} alternating rounds; crypto phases {CRYPTO_ROUND:?} on one \
         thread, gRPC and gateway phases {SERVICE_ROUND:?} with {CALLERS} concurrent callers"
    );
    let mut figures: Vec<Figures> = phases.iter().map(|_| Figures::default()).collect();
    let run = Run {
        app: &app,
        internal: &internal,
        grpc: &grpc,
        callers: &callers,
        keys: &keys,
        raw: &raw,
    };
    for phase in &phases {
        run.round(phase, WARM_UP, WARM_UP).await;
    }
    for _ in 0..ROUNDS {
        for (phase, figures) in phases.iter().zip(&mut figures) {
            let round = run.round(phase, CRYPTO_ROUND, SERVICE_ROUND).await;
            figures.merge(round);
            run.check_reveals(phase).await;
        }
    }
    for (phase, figures) in phases.iter().zip(&mut figures) {
        report(&phase.payload, figures);
    }
    println!(
        "every reveal writes its audit line (INSERT into credentials.reveal_audit) before it \
         answers: a reveal is a read and a write"
    );
    Ok(())
}

impl Figures {
    fn merge(&mut self, other: Figures) {
        self.raw_seal.merge(other.raw_seal);
        self.raw_open.merge(other.raw_open);
        self.keyring_seal.merge(other.keyring_seal);
        self.keyring_open.merge(other.keyring_open);
        self.grpc_store.merge(other.grpc_store);
        self.grpc_reveal.merge(other.grpc_reveal);
        self.http_store.merge(other.http_store);
        self.http_reveal.merge(other.http_reveal);
    }
}

/// One call of a gRPC or gateway phase: true when it succeeded.
type Call = Pin<Box<dyn Future<Output = bool> + Send>>;

/// One concurrent caller: a creator of its own and its creator profile.
struct Caller {
    token: String,
    identity: Identity,
    profile: String,
}

/// What every phase needs.
struct Run<'a> {
    app: &'a TestApp,
    internal: &'a Secret,
    grpc: &'a pb::credentials_client::CredentialsClient<tonic::transport::Channel>,
    callers: &'a Arc<[Caller]>,
    keys: &'a KeyRing,
    raw: &'a RawRing,
}

impl Run<'_> {
    /// One round of every phase for one payload, each side next to its counterpart.
    async fn round(&self, phase: &Phases, crypto: Duration, service: Duration) -> Figures {
        let plaintext = phase.payload.json.as_bytes();
        let aad = phase.aad.as_bytes();
        let (nonce, sealed) = &phase.raw_sealed;
        let raw_seal = measure_ops(crypto, || {
            black_box(self.raw.seal(black_box(aad), black_box(plaintext)));
        });
        let keyring_seal = measure_ops(crypto, || {
            black_box(
                self.keys
                    .seal(black_box(&phase.binding), black_box(plaintext))
                    .expect("every seal of the benchmark succeeds"),
            );
        });
        let raw_open = measure_ops(crypto, || {
            let length = self.raw.open(black_box(aad), *nonce, black_box(sealed));
            assert_eq!(length, plaintext.len());
        });
        let keyring_open = measure_ops(crypto, || {
            let opened = self
                .keys
                .open(black_box(&phase.binding), black_box(&phase.keyring_sealed))
                .expect("every open of the benchmark succeeds");
            assert_eq!(opened.plaintext.len(), plaintext.len());
        });
        let grpc_store = measure_each(CALLERS, service, self.grpc_store(&phase.payload)).await;
        let http_store = measure_each(CALLERS, service, self.http_store(&phase.payload)).await;
        let grpc_reveal = measure_each(CALLERS, service, self.grpc_reveal(&phase.payload)).await;
        let http_reveal = measure_each(CALLERS, service, self.http_reveal(&phase.payload)).await;
        Figures {
            raw_seal,
            raw_open,
            keyring_seal,
            keyring_open,
            grpc_store,
            grpc_reveal,
            http_store,
            http_reveal,
        }
    }

    fn grpc_store(&self, payload: &Payload) -> impl Fn(usize) -> Call + Clone + Send + 'static {
        let (client, internal) = (self.grpc.clone(), self.internal.clone());
        let (callers, json) = (self.callers.clone(), payload.json.clone());
        move |caller| {
            let mut client = client.clone();
            let request = common::grpc::outgoing(
                pb::StoreCredentialsRequest {
                    creator_profile_id: callers[caller].profile.clone(),
                    credentials: Some(pb::Secret {
                        json: json.to_string(),
                    }),
                },
                &callers[caller].identity,
                &internal,
                TIMEOUT,
            );
            Box::pin(async move { client.store_credentials(request).await.is_ok() })
        }
    }

    fn grpc_reveal(&self, payload: &Payload) -> impl Fn(usize) -> Call + Clone + Send + 'static {
        let (client, internal) = (self.grpc.clone(), self.internal.clone());
        let (callers, json) = (self.callers.clone(), payload.json.clone());
        move |caller| {
            let mut client = client.clone();
            let json = json.clone();
            let request = common::grpc::outgoing(
                pb::ProfileRef {
                    creator_profile_id: callers[caller].profile.clone(),
                },
                &callers[caller].identity,
                &internal,
                TIMEOUT,
            );
            Box::pin(async move {
                match client.reveal_credentials(request).await {
                    Ok(revealed) => revealed
                        .into_inner()
                        .credentials
                        .is_some_and(|secret| *secret.json == *json),
                    Err(_) => false,
                }
            })
        }
    }

    fn http_store(&self, payload: &Payload) -> impl Fn(usize) -> Call + Clone + Send + 'static {
        let bodies: Arc<[String]> = self
            .callers
            .iter()
            .map(|caller| {
                json!({"creatorProfileId": caller.profile, "credentials": payload.value})
                    .to_string()
            })
            .collect();
        self.http("/api/credentials/store", bodies, 0)
    }

    fn http_reveal(&self, payload: &Payload) -> impl Fn(usize) -> Call + Clone + Send + 'static {
        let bodies: Arc<[String]> = self
            .callers
            .iter()
            .map(|caller| json!({"creatorProfileId": caller.profile}).to_string())
            .collect();
        // The answer carries the secret; checked in full by `check_reveals`, by size here.
        self.http("/api/credentials/reveal", bodies, payload.json.len())
    }

    /// `POST path` with the caller's body and token; succeeds on a 2xx answer of at
    /// least `min_answer` bytes.
    fn http(
        &self,
        path: &str,
        bodies: Arc<[String]>,
        min_answer: usize,
    ) -> impl Fn(usize) -> Call + Clone + Send + 'static {
        let client = self.app.client.clone();
        let url = self.app.url(path);
        let callers = self.callers.clone();
        move |caller| {
            let request = client
                .post(&url)
                .bearer_auth(&callers[caller].token)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bodies[caller].clone());
            Box::pin(async move {
                match request.send().await {
                    Ok(response) => {
                        response.status().is_success()
                            && response
                                .bytes()
                                .await
                                .is_ok_and(|answer| answer.len() >= min_answer)
                    }
                    Err(_) => false,
                }
            })
        }
    }

    /// Outside the timed phases: every profile reveals exactly the payload, through the gateway.
    async fn check_reveals(&self, phase: &Phases) {
        for caller in self.callers.iter() {
            let revealed = self
                .app
                .post(
                    "/api/credentials/reveal",
                    json!({"creatorProfileId": caller.profile}),
                    Some(&caller.token),
                )
                .await;
            assert!(revealed.status.is_success(), "{:?}", revealed.body);
            assert_eq!(revealed.body["credentials"], phase.payload.value);
        }
    }
}

fn report(payload: &Payload, figures: &mut Figures) {
    println!();
    println!("{} ({} bytes):", payload.name, payload.json.len());
    for (name, rate) in [
        ("ring seal (raw)", figures.raw_seal),
        ("KeyRing seal", figures.keyring_seal),
        ("ring open (raw)", figures.raw_open),
        ("KeyRing open", figures.keyring_open),
    ] {
        println!(
            "  {name:<34} {:>10.0} ops/s   {:>8.3} µs/op   (1 thread)",
            rate.per_second(),
            rate.micros_per_op()
        );
    }
    let mut p50s = [0.0; 4];
    for (index, (name, sample)) in [
        ("gRPC StoreCredentials", &mut figures.grpc_store),
        ("gateway POST /store", &mut figures.http_store),
        ("gRPC RevealCredentials (audited)", &mut figures.grpc_reveal),
        ("gateway POST /reveal (audited)", &mut figures.http_reveal),
    ]
    .into_iter()
    .enumerate()
    {
        let (p50, p99) = (sample.percentile_ms(0.50), sample.percentile_ms(0.99));
        p50s[index] = p50;
        println!(
            "  {name:<34} {:>10.0} req/s   p50 {p50:.3} ms   p99 {p99:.3} ms   ({} calls, {CALLERS} callers)",
            sample.throughput(),
            sample.latencies.len()
        );
    }
    let [
        grpc_store_p50,
        http_store_p50,
        grpc_reveal_p50,
        http_reveal_p50,
    ] = p50s;
    let f = &*figures;
    println!("  ratios:");
    println!(
        "    KeyRing / raw ring, time per op     seal {:.2}x   open {:.2}x   (envelope and binding)",
        f.raw_seal.per_second() / f.keyring_seal.per_second(),
        f.raw_open.per_second() / f.keyring_open.per_second()
    );
    println!(
        "    raw ring ops/s / gRPC req/s         store {:.0}x   reveal {:.0}x   (per-op cost multiple)",
        f.raw_seal.per_second() / f.grpc_store.throughput(),
        f.raw_open.per_second() / f.grpc_reveal.throughput()
    );
    println!(
        "    KeyRing time / gRPC p50             store {:.2}%   reveal {:.2}%   (crypto's share of the latency)",
        f.keyring_seal.micros_per_op() / (grpc_store_p50 * 1000.0) * 100.0,
        f.keyring_open.micros_per_op() / (grpc_reveal_p50 * 1000.0) * 100.0
    );
    // At saturation each request costs the machine `cores / throughput` of processor time.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    println!(
        "    KeyRing time / machine time per req store {:.2}%   reveal {:.2}%   (crypto's share of {cores} cores / gRPC req/s)",
        f.keyring_seal.micros_per_op() * f.grpc_store.throughput() / cores / 1e4,
        f.keyring_open.micros_per_op() * f.grpc_reveal.throughput() / cores / 1e4
    );
    println!(
        "    gateway / gRPC req/s                store {:.2}   reveal {:.2}   (throughput kept)",
        f.http_store.throughput() / f.grpc_store.throughput(),
        f.http_reveal.throughput() / f.grpc_reveal.throughput()
    );
    println!(
        "    gateway / gRPC p50                  store {:.2}   reveal {:.2}   (+{:.3} ms, +{:.3} ms)",
        http_store_p50 / grpc_store_p50,
        http_reveal_p50 / grpc_reveal_p50,
        http_store_p50 - grpc_store_p50,
        http_reveal_p50 - grpc_reveal_p50
    );
}
