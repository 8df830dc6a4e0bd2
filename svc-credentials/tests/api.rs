//! svc-credentials over real gRPC on a random port, with a real svc-usage for the `platforms`
//! gauge, against a fresh PostgreSQL database per test: sealing bound to the row, key versions and
//! their retirement, the original service's records, live rotation, ownership, the reveal audit,
//! and the tier's limit on creator profiles.
// Test code: a helper of these tests that cannot do its job fails the test, as an assertion
// would. (clippy.toml allows this inside test functions only, not in the helpers beside them.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use common::identity::Identity;
use common::secret::Secret;
use common::testing::{
    self, TestService, creator as user, fresh_database, start_service, status_field as field,
    status_reason as reason, try_start_service,
};
use proto::credentials::v1 as pb;
use proto::credentials::v1::credentials_client::CredentialsClient;
use proto::usage::v1 as usage_pb;
use proto::usage::v1::usage_client::UsageClient;
use serde_json::{Value, json};
use svc_credentials::Config;
use svc_credentials::config::key_ring;
use svc_credentials::crypto::KeyRing;
use tonic::Code;
use tonic::transport::Channel;
use uuid::Uuid;

const KEY_1: &str = "dGVzdCBrZXkgb25lIGZvciB0aGUgdmF1bHQgdGVzdHM="; // "test key one for the vault tests"
const KEY_2: &str = "c2Vjb25kIGtleSBvZiB0aGUgdmF1bHQgdGVzdHMhISE="; // "second key of the vault tests!!!"

fn keys(v1: &str, more: &[(u32, &str)], retired: &[u32]) -> KeyRing {
    let more = more
        .iter()
        .map(|(version, key)| format!("{version}:{key}"))
        .collect::<Vec<_>>()
        .join(",");
    key_ring(
        &Secret::new(v1),
        Some(&Secret::new(more)),
        retired.iter().copied().collect::<BTreeSet<u32>>(),
        true,
    )
    .unwrap()
}

struct Vault {
    client: CredentialsClient<Channel>,
    usage: UsageClient<Channel>,
    database_url: String,
    _service: TestService,
    _usage: TestService,
}

/// The tier the vault's tests create profiles on by default: the shipped tiers' with no limit,
/// so that tests about the vault are not about the `platforms` limit.
const UNLIMITED_TIER: &str = "unlimited_for_tests";

/// svc-usage on `database_url`, with the shipped tiers and [`UNLIMITED_TIER`].
async fn start_usage(database_url: &str) -> TestService {
    let mut tiers = svc_usage::tiers::Tiers::shipped().unwrap();
    let mut unlimited = tiers.tiers["studio"].clone();
    unlimited.limits.values_mut().for_each(|limit| *limit = -1);
    tiers.tiers.insert(UNLIMITED_TIER.into(), unlimited);
    let mut config = svc_usage::Config::local(database_url.to_owned(), testing::internal_token());
    config.tiers = Some(tiers);
    start_service(|listener, stop| svc_usage::run(config, listener, stop)).await
}

/// The vault on `database_url` under `keys` (with a svc-usage of its own on the same database),
/// once it serves; a start-up that fails is its error.
async fn start(database_url: &str, keys: KeyRing) -> anyhow::Result<Vault> {
    start_with(database_url, keys, |_| {}).await
}

async fn start_with(
    database_url: &str,
    keys: KeyRing,
    configure: impl FnOnce(&mut Config),
) -> anyhow::Result<Vault> {
    let usage = start_usage(database_url).await;
    let mut config = Config::local(database_url.to_owned(), testing::internal_token(), keys);
    config.usage_grpc_url = format!("http://{}", usage.addr);
    configure(&mut config);
    let service =
        try_start_service(|listener, stop| svc_credentials::run(config, listener, stop)).await?;
    Ok(Vault {
        client: CredentialsClient::new(service.channel.clone()),
        usage: UsageClient::new(usage.channel.clone()),
        database_url: database_url.to_owned(),
        _service: service,
        _usage: usage,
    })
}

async fn spawn_vault() -> Vault {
    let database = fresh_database().await;
    start(&database.url, keys(KEY_1, &[], &[])).await.unwrap()
}

fn secret(value: Value) -> Option<pb::Secret> {
    Some(pb::Secret {
        json: value.to_string(),
    })
}

fn revealed(secret: Option<pb::Secret>) -> Value {
    serde_json::from_str(&secret.unwrap().json).unwrap()
}

impl Vault {
    /// A profile of `owner` on [`UNLIMITED_TIER`].
    async fn create_profile(
        &self,
        owner: Uuid,
        username: &str,
        credentials: Option<Value>,
    ) -> Result<pb::CreatorProfile, tonic::Status> {
        let identity = testing::user(owner, "creator", UNLIMITED_TIER);
        self.create_profile_as(&identity, username, credentials)
            .await
    }

    async fn create_profile_as(
        &self,
        identity: &Identity,
        username: &str,
        credentials: Option<Value>,
    ) -> Result<pb::CreatorProfile, tonic::Status> {
        let request = pb::CreateProfileRequest {
            platform: "onlyfans".into(),
            username: username.into(),
            credentials: credentials.and_then(secret),
            scrape_enabled: true,
            scrape_frequency: "0 */6 * * *".into(),
            profile_data_json: String::new(),
        };
        let request = testing::request(request, identity);
        Ok(self
            .client
            .clone()
            .create_profile(request)
            .await?
            .into_inner())
    }

    async fn delete_profile_as(
        &self,
        identity: &Identity,
        id: &str,
    ) -> Result<pb::DeletedProfile, tonic::Status> {
        let request = testing::request(
            pb::ProfileRef {
                creator_profile_id: id.into(),
            },
            identity,
        );
        Ok(self
            .client
            .clone()
            .delete_profile(request)
            .await?
            .into_inner())
    }

    /// The `platforms` of `identity`'s usage report (what `GET /api/usage` shows): (used, limit,
    /// remaining).
    async fn platforms(&self, identity: &Identity) -> (i64, i64, i64) {
        let user = identity.require_user().unwrap();
        let report = self
            .usage
            .clone()
            .report(testing::request(
                usage_pb::ReportRequest {
                    user_id: user.id.to_string(),
                    tier: user.tier.clone(),
                },
                identity,
            ))
            .await
            .unwrap()
            .into_inner();
        let platforms = report
            .operations
            .iter()
            .find(|op| op.operation == "platforms")
            .unwrap();
        (platforms.used, platforms.limit, platforms.remaining)
    }

    async fn profiles_of(&self, owner: Uuid) -> i64 {
        self.sql()
            .await
            .query_one(
                "SELECT count(*) FROM credentials.creator_profiles WHERE user_id = $1",
                &[&owner],
            )
            .await
            .unwrap()
            .get(0)
    }

    async fn reveal(
        &self,
        identity: &Identity,
        profile_id: &str,
    ) -> Result<pb::RevealedCredentials, tonic::Status> {
        let request = testing::request(
            pb::ProfileRef {
                creator_profile_id: profile_id.into(),
            },
            identity,
        );
        Ok(self
            .client
            .clone()
            .reveal_credentials(request)
            .await?
            .into_inner())
    }

    async fn store(
        &self,
        identity: &Identity,
        profile_id: &str,
        credentials: Option<pb::Secret>,
    ) -> Result<pb::CreatorProfile, tonic::Status> {
        let request = testing::request(
            pb::StoreCredentialsRequest {
                creator_profile_id: profile_id.into(),
                credentials,
            },
            identity,
        );
        Ok(self
            .client
            .clone()
            .store_credentials(request)
            .await?
            .into_inner())
    }

    async fn store_session(
        &self,
        identity: &Identity,
        profile_id: &str,
        cookies: Value,
    ) -> Result<pb::PlatformSessionInfo, tonic::Status> {
        let request = testing::request(
            pb::StorePlatformSessionRequest {
                creator_profile_id: profile_id.into(),
                cookies: secret(cookies),
                user_agent: "Mozilla/5.0 (test)".into(),
                expires_at: "2026-12-24T00:00:00Z".into(),
            },
            identity,
        );
        Ok(self
            .client
            .clone()
            .store_platform_session(request)
            .await?
            .into_inner())
    }

    async fn session(
        &self,
        identity: &Identity,
        profile_id: &str,
    ) -> Result<pb::PlatformSession, tonic::Status> {
        let request = testing::request(
            pb::ProfileRef {
                creator_profile_id: profile_id.into(),
            },
            identity,
        );
        Ok(self
            .client
            .clone()
            .get_platform_session(request)
            .await?
            .into_inner())
    }

    async fn create_entry(
        &self,
        owner: Uuid,
        name: &str,
        value: Value,
    ) -> Result<pb::VaultEntry, tonic::Status> {
        let request = testing::request(
            pb::CreateVaultEntryRequest {
                name: name.into(),
                kind: "download".into(),
                platform: "fansly".into(),
                creator_profile_id: String::new(),
                secret: secret(value),
            },
            &user(owner),
        );
        Ok(self
            .client
            .clone()
            .create_vault_entry(request)
            .await?
            .into_inner())
    }

    async fn reveal_entry(
        &self,
        owner: Uuid,
        id: &str,
    ) -> Result<pb::RevealedVaultEntry, tonic::Status> {
        let request = testing::request(pb::VaultEntryRef { id: id.into() }, &user(owner));
        Ok(self
            .client
            .clone()
            .reveal_vault_entry(request)
            .await?
            .into_inner())
    }

    async fn sql(&self) -> tokio_postgres::Client {
        common::testing::connect(&self.database_url).await
    }

    async fn pool(&self) -> deadpool_postgres::Pool {
        common::db::pool(&self.database_url, 4, &common::db::Settings::default()).unwrap()
    }
}

#[tokio::test]
async fn credentials_round_trip_and_each_reveal_is_audited_without_the_secret() {
    let vault = spawn_vault().await;
    let owner = Uuid::new_v4();
    let login = json!({"email": "zoe@example.com", "password": "round-trip-pw-81"});
    let profile = vault
        .create_profile(owner, "zoe", Some(login.clone()))
        .await
        .unwrap();
    assert!(profile.has_credentials);
    assert_eq!(profile.credentials_key_version, 1);
    assert_eq!(profile.scrape_frequency, "0 */6 * * *");

    let answer = vault.reveal(&user(owner), &profile.id).await.unwrap();
    assert_eq!(revealed(answer.credentials), login);
    let replaced = json!(["a", "bare", "array"]);
    vault
        .store(&user(owner), &profile.id, secret(replaced.clone()))
        .await
        .unwrap();
    let by_system = vault.reveal(&testing::system(), &profile.id).await.unwrap();
    assert_eq!(revealed(by_system.credentials), replaced);

    let db = vault.sql().await;
    let stored: String = db
        .query_one(
            "SELECT credentials::text FROM credentials.creator_profiles WHERE id = $1::text::uuid",
            &[&profile.id],
        )
        .await
        .unwrap()
        .get(0);
    assert!(stored.starts_with("{\"enc\": \"v1:"), "{stored}");
    assert!(!stored.contains("array"));
    let audit = db
        .query(
            "SELECT actor, path, field, row_to_json(a)::text FROM credentials.reveal_audit a \
             ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let lines: Vec<(String, String, String)> = audit
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    assert_eq!(
        lines,
        [
            ("user".into(), "reveal".into(), "credentials".into()),
            ("system".into(), "reveal".into(), "credentials".into()),
        ]
    );
    for row in &audit {
        let line: String = row.get(3);
        assert!(!line.contains("round-trip-pw-81") && !line.contains("bare"));
    }
    let refused = db
        .execute("DELETE FROM credentials.reveal_audit", &[])
        .await;
    assert!(refused.is_err(), "the audit is append-only");
}

#[tokio::test]
async fn a_ciphertext_moved_to_another_row_or_field_or_altered_does_not_open() {
    let vault = spawn_vault().await;
    let owner = Uuid::new_v4();
    let first = vault
        .create_profile(owner, "first", Some(json!({"pw": "first-secret"})))
        .await
        .unwrap();
    let second = vault
        .create_profile(owner, "second", Some(json!({"pw": "second-secret"})))
        .await
        .unwrap();
    let db = vault.sql().await;
    db.execute(
        "UPDATE credentials.creator_profiles SET credentials = \
         (SELECT credentials FROM credentials.creator_profiles WHERE id = $1::text::uuid) \
         WHERE id = $2::text::uuid",
        &[&first.id, &second.id],
    )
    .await
    .unwrap();
    let moved = vault.reveal(&user(owner), &second.id).await.unwrap_err();
    assert_eq!(moved.code(), Code::Internal);
    assert_eq!(reason(&moved), "decryption_failed");
    assert!(!moved.message().contains("first-secret"));
    assert!(vault.reveal(&user(owner), &first.id).await.is_ok());

    // The profile's credentials sealed for the profile do not open as its session's cookies.
    vault
        .store_session(&user(owner), &first.id, json!([{"name": "sess"}]))
        .await
        .unwrap();
    db.execute(
        "UPDATE credentials.platform_sessions SET cookies = p.credentials \
         FROM credentials.creator_profiles p WHERE p.id = creator_profile_id",
        &[],
    )
    .await
    .unwrap();
    let crossed = vault.session(&user(owner), &first.id).await.unwrap_err();
    assert_eq!(reason(&crossed), "decryption_failed");

    // One flipped bit in the stored ciphertext.
    db.execute(
        "UPDATE credentials.creator_profiles SET credentials = jsonb_build_object('enc', \
         overlay(credentials->>'enc' placing \
           CASE WHEN right(credentials->>'enc', 1) = '0' THEN '1' ELSE '0' END \
           from length(credentials->>'enc') for 1)) \
         WHERE id = $1::text::uuid",
        &[&first.id],
    )
    .await
    .unwrap();
    let flipped = vault.reveal(&user(owner), &first.id).await.unwrap_err();
    assert_eq!(reason(&flipped), "decryption_failed");
}

#[tokio::test]
async fn unknown_retired_and_changed_key_versions_fail_clearly() {
    let database = fresh_database().await;
    let owner = Uuid::new_v4();
    let under_v2 = {
        let vault = start(&database.url, keys(KEY_1, &[(2, KEY_2)], &[]))
            .await
            .unwrap();
        let profile = vault
            .create_profile(owner, "v2", Some(json!({"pw": "sealed-under-two"})))
            .await
            .unwrap();
        assert_eq!(profile.credentials_key_version, 2);
        profile
    };
    let only_v1 = start(&database.url, keys(KEY_1, &[], &[])).await.unwrap();
    let unknown = only_v1
        .reveal(&user(owner), &under_v2.id)
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::FailedPrecondition);
    assert_eq!(reason(&unknown), "key_version_unknown");
    assert!(unknown.message().contains("key version 2"));

    let under_v1 = only_v1
        .create_profile(owner, "v1", Some(json!({"pw": "sealed-under-one"})))
        .await
        .unwrap();
    let retired = start(&database.url, keys(KEY_1, &[(2, KEY_2)], &[1]))
        .await
        .unwrap();
    let err = retired
        .reveal(&user(owner), &under_v1.id)
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "key_retired");
    assert!(retired.reveal(&user(owner), &under_v2.id).await.is_ok());

    // Another key under a version the vault knows stops start-up, naming the variable.
    let err = start(&database.url, keys(KEY_1, &[(2, KEY_1)], &[]))
        .await
        .err()
        .expect("a changed key stops start-up");
    let shown = err.to_string();
    assert!(shown.contains("CREDENTIALS_ENC_KEYS_B64"), "{shown}");
    assert!(shown.contains("key version 2"), "{shown}");
    assert!(!shown.contains(KEY_1));
}

#[tokio::test]
async fn records_of_the_original_service_open_and_rotation_binds_them() {
    let file: Value = serde_json::from_str(include_str!("vectors/legacy_node.json")).unwrap();
    let legacy_key = file["key_b64"].as_str().unwrap();
    let database = fresh_database().await;
    let vault = start(&database.url, keys(legacy_key, &[], &[]))
        .await
        .unwrap();
    let owner = Uuid::new_v4();
    let db = vault.sql().await;
    let vectors = file["vectors"].as_array().unwrap();
    let mut imported = Vec::new();
    for (n, vector) in vectors.iter().enumerate() {
        // As an import of the original's rows would write them: the stored JSON as it was.
        let id = Uuid::new_v4();
        db.execute(
            "INSERT INTO credentials.creator_profiles (id, user_id, platform, username, credentials) \
             VALUES ($1, $2, 'onlyfans', $3, $4)",
            &[&id, &owner, &format!("legacy-{n}"), &vector["stored"]],
        )
        .await
        .unwrap();
        imported.push((id, vector["plaintext"].as_str().unwrap().to_owned()));
    }
    let expected = |plaintext: &str| {
        serde_json::from_str::<Value>(plaintext).unwrap_or_else(|_| Value::String(plaintext.into()))
    };
    for (id, plaintext) in &imported {
        let answer = vault.reveal(&user(owner), &id.to_string()).await.unwrap();
        assert_eq!(answer.key_version, 1);
        assert_eq!(revealed(answer.credentials), expected(plaintext));
    }

    // A new key, then every record rotated to it, bound to its row.
    let keys_v2 = keys(legacy_key, &[(2, KEY_2)], &[]);
    let vault = start(&database.url, keys(legacy_key, &[(2, KEY_2)], &[]))
        .await
        .unwrap();
    let report = svc_credentials::rotate::rotate_all(&vault.pool().await, &keys_v2, 4, |_, _| {})
        .await
        .unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(
        report.resealed[0],
        ("creator_profiles", vectors.len() as u64)
    );
    assert_eq!(report.left_behind(2), 0);
    for (id, plaintext) in &imported {
        let answer = vault.reveal(&user(owner), &id.to_string()).await.unwrap();
        assert_eq!(answer.key_version, 2);
        assert_eq!(revealed(answer.credentials), expected(plaintext));
    }
    // Bound now: a rotated record copied to another row no longer opens.
    let (first, second) = (imported[0].0, imported[1].0);
    db.execute(
        "UPDATE credentials.creator_profiles SET credentials = \
         (SELECT credentials FROM credentials.creator_profiles WHERE id = $1) WHERE id = $2",
        &[&first, &second],
    )
    .await
    .unwrap();
    let err = vault
        .reveal(&user(owner), &second.to_string())
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "decryption_failed");
}

#[tokio::test]
async fn a_record_of_the_original_copied_into_a_row_with_a_key_version_is_refused() {
    let file: Value = serde_json::from_str(include_str!("vectors/legacy_node.json")).unwrap();
    let legacy_key = file["key_b64"].as_str().unwrap();
    let database = fresh_database().await;
    let vault = start(&database.url, keys(legacy_key, &[], &[]))
        .await
        .unwrap();
    let owner = Uuid::new_v4();
    let db = vault.sql().await;
    let vector = &file["vectors"][0];
    let plaintext = vector["plaintext"].as_str().unwrap();

    // Imported as it was (no key version): it opens.
    let imported = Uuid::new_v4();
    db.execute(
        "INSERT INTO credentials.creator_profiles (id, user_id, platform, username, credentials) \
         VALUES ($1, $2, 'onlyfans', 'imported', $3)",
        &[&imported, &owner, &vector["stored"]],
    )
    .await
    .unwrap();
    assert!(
        vault
            .reveal(&user(owner), &imported.to_string())
            .await
            .is_ok()
    );

    // The same ciphertext copied into a row of ours, whose key version is recorded.
    let ours = vault
        .create_profile(owner, "ours", Some(json!({"pw": "ours"})))
        .await
        .unwrap();
    assert_eq!(ours.credentials_key_version, 1);
    db.execute(
        "UPDATE credentials.creator_profiles SET credentials = $1 WHERE id = $2::text::uuid",
        &[&vector["stored"], &ours.id],
    )
    .await
    .unwrap();
    let refused = vault.reveal(&user(owner), &ours.id).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert_eq!(reason(&refused), "legacy_record_refused");
    assert!(refused.message().contains("no key version"), "{refused:?}");
    assert!(!refused.message().contains(plaintext));

    // And into another table: a vault entry.
    let entry = vault
        .create_entry(owner, "download", json!({"token": "t"}))
        .await
        .unwrap();
    db.execute(
        "UPDATE credentials.vault_entries SET secret = $1 WHERE id = $2::text::uuid",
        &[&vector["stored"], &entry.id],
    )
    .await
    .unwrap();
    let refused = vault.reveal_entry(owner, &entry.id).await.unwrap_err();
    assert_eq!(reason(&refused), "legacy_record_refused");

    // Rotation does not launder it either: the row is reported, left as it is.
    let rotated = keys(legacy_key, &[(2, KEY_2)], &[]);
    let report = svc_credentials::rotate::rotate_all(&vault.pool().await, &rotated, 10, |_, _| {})
        .await
        .unwrap();
    let failed: Vec<String> = report.failed.iter().map(|f| f.id.to_string()).collect();
    assert!(failed.contains(&ours.id), "{:?}", report.failed);
    assert!(failed.contains(&entry.id), "{:?}", report.failed);
    assert!(!failed.contains(&imported.to_string()));
    assert_eq!(report.legacy_left(), 0, "the imported row was bound");
}

#[tokio::test]
async fn rotation_runs_live_and_leaves_every_record_readable_under_the_new_key() {
    let database = fresh_database().await;
    let owner = Uuid::new_v4();
    let mut profiles = Vec::new();
    let mut entries = Vec::new();
    {
        let vault = start(&database.url, keys(KEY_1, &[], &[])).await.unwrap();
        for n in 0..12 {
            let profile = vault
                .create_profile(
                    owner,
                    &format!("p{n}"),
                    Some(json!({"pw": format!("pw-{n}")})),
                )
                .await
                .unwrap();
            vault
                .store_session(&user(owner), &profile.id, json!([{"n": n}]))
                .await
                .unwrap();
            let entry = vault
                .create_entry(
                    owner,
                    &format!("e{n}"),
                    json!({"token": format!("tok-{n}")}),
                )
                .await
                .unwrap();
            profiles.push(profile.id);
            entries.push(entry.id);
        }
    }
    let new_keys = keys(KEY_1, &[(2, KEY_2)], &[]);
    let vault = Arc::new(
        start(&database.url, keys(KEY_1, &[(2, KEY_2)], &[]))
            .await
            .unwrap(),
    );
    // Reveals keep going while the rotation runs, in batches of 5.
    let reader = {
        let vault = Arc::clone(&vault);
        let profiles = profiles.clone();
        tokio::spawn(async move {
            let mut reads = 0;
            for _ in 0..5 {
                for (n, id) in profiles.iter().enumerate() {
                    let answer = vault.reveal(&user(owner), id).await.unwrap();
                    assert_eq!(
                        revealed(answer.credentials),
                        json!({"pw": format!("pw-{n}")})
                    );
                    reads += 1;
                }
            }
            reads
        })
    };
    let mut batches = 0;
    let report = svc_credentials::rotate::rotate_all(&vault.pool().await, &new_keys, 5, |_, _| {
        batches += 1;
    })
    .await
    .unwrap();
    assert_eq!(reader.await.unwrap(), 60);
    assert!(report.failed.is_empty());
    assert!(batches >= 9, "{batches} batches");
    assert_eq!(report.left_behind(2), 0, "{:?}", report.remaining);
    let total: u64 = report.resealed.iter().map(|(_, n)| n).sum();
    assert_eq!(total, 36);

    // Run again: nothing left to do.
    let again = svc_credentials::rotate::rotate_all(&vault.pool().await, &new_keys, 5, |_, _| {})
        .await
        .unwrap();
    assert!(again.resealed.iter().all(|(_, n)| *n == 0));

    // With v1 retired, everything still opens.
    let retired = start(&database.url, keys(KEY_1, &[(2, KEY_2)], &[1]))
        .await
        .unwrap();
    for (n, id) in profiles.iter().enumerate() {
        let answer = retired.reveal(&user(owner), id).await.unwrap();
        assert_eq!(answer.key_version, 2);
        assert_eq!(
            revealed(answer.credentials),
            json!({"pw": format!("pw-{n}")})
        );
        let session = retired.session(&user(owner), id).await.unwrap();
        assert_eq!(revealed(session.cookies), json!([{"n": n}]));
    }
    for (n, id) in entries.iter().enumerate() {
        let answer = retired.reveal_entry(owner, id).await.unwrap();
        assert_eq!(answer.entry.unwrap().key_version, 2);
        assert_eq!(
            revealed(answer.secret),
            json!({"token": format!("tok-{n}")})
        );
    }
}

#[tokio::test]
async fn a_user_reaches_only_their_own_profiles_and_entries() {
    let vault = spawn_vault().await;
    let (alice, mallory) = (Uuid::new_v4(), Uuid::new_v4());
    let profile = vault
        .create_profile(alice, "alice", Some(json!({"pw": "alice-pw"})))
        .await
        .unwrap();
    vault
        .store_session(&user(alice), &profile.id, json!([{"name": "sess"}]))
        .await
        .unwrap();
    let entry = vault
        .create_entry(alice, "alice's download", json!("alice-token"))
        .await
        .unwrap();

    let not_found = |result: Result<(), tonic::Status>| {
        let status = result.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        assert_eq!(reason(&status), "not_found");
    };
    let other = user(mallory);
    not_found(vault.reveal(&other, &profile.id).await.map(drop));
    not_found(
        vault
            .store(&other, &profile.id, secret(json!({"pw": "overwritten"})))
            .await
            .map(drop),
    );
    not_found(vault.session(&other, &profile.id).await.map(drop));
    not_found(
        vault
            .store_session(&other, &profile.id, json!([]))
            .await
            .map(drop),
    );
    not_found(vault.reveal_entry(mallory, &entry.id).await.map(drop));
    let mut client = vault.client.clone();
    let by_id = |id: &str| pb::VaultEntryRef { id: id.into() };
    not_found(
        client
            .rotate_vault_entry(testing::request(by_id(&entry.id), &other))
            .await
            .map(drop),
    );
    not_found(
        client
            .delete_vault_entry(testing::request(by_id(&entry.id), &other))
            .await
            .map(drop),
    );
    not_found(
        client
            .update_vault_entry(testing::request(
                pb::UpdateVaultEntryRequest {
                    id: entry.id.clone(),
                    name: Some("mine now".into()),
                    ..Default::default()
                },
                &other,
            ))
            .await
            .map(drop),
    );
    let linked = client
        .create_vault_entry(testing::request(
            pb::CreateVaultEntryRequest {
                name: "linked".into(),
                creator_profile_id: profile.id.clone(),
                secret: secret(json!("x")),
                ..Default::default()
            },
            &other,
        ))
        .await
        .unwrap_err();
    assert_eq!(linked.code(), Code::NotFound);
    assert_eq!(field(&linked), "creatorProfileId");
    let listed = client
        .list_vault(testing::request(pb::ListVaultRequest::default(), &other))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.entries.is_empty());
    assert_eq!(listed.total_count, 0);

    // Alice's things are untouched.
    assert_eq!(
        revealed(
            vault
                .reveal(&user(alice), &profile.id)
                .await
                .unwrap()
                .credentials
        ),
        json!({"pw": "alice-pw"})
    );
    assert_eq!(
        revealed(vault.reveal_entry(alice, &entry.id).await.unwrap().secret),
        json!("alice-token")
    );
    // The system principal has no vault of its own, and an anonymous caller nothing.
    let system = testing::system();
    let err = client
        .list_vault(testing::request(pb::ListVaultRequest::default(), &system))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = vault
        .reveal(&testing::anonymous(), &profile.id)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn the_vault_lists_metadata_updates_rotates_and_deletes() {
    let vault = spawn_vault().await;
    let owner = Uuid::new_v4();
    let mut client = vault.client.clone();
    let profile = vault.create_profile(owner, "listed", None).await.unwrap();
    assert!(!profile.has_credentials);
    assert_eq!(profile.credentials_key_version, 0);
    for n in 0..3 {
        vault
            .create_entry(
                owner,
                &format!("entry {n}"),
                json!({"key": format!("list-secret-{n}")}),
            )
            .await
            .unwrap();
    }
    let linked = client
        .create_vault_entry(testing::request(
            pb::CreateVaultEntryRequest {
                name: "api".into(),
                kind: "api_key".into(),
                creator_profile_id: profile.id.clone(),
                secret: secret(json!("sk-live-123")),
                ..Default::default()
            },
            &user(owner),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(linked.platform, "onlyfans", "taken from the profile");

    let list = |request: pb::ListVaultRequest| {
        let mut client = client.clone();
        let request = testing::request(request, &user(owner));
        async move { client.list_vault(request).await.map(|r| r.into_inner()) }
    };
    let all = list(pb::ListVaultRequest::default()).await.unwrap();
    assert_eq!((all.total_count, all.filter_count), (4, 4));
    assert_eq!(all.entries[0].name, "api", "newest first");
    let page = list(pb::ListVaultRequest {
        limit: 2,
        offset: 1,
        kind: "download".into(),
    })
    .await
    .unwrap();
    assert_eq!((page.total_count, page.filter_count), (4, 3));
    assert_eq!(page.entries.len(), 2);
    let err = list(pb::ListVaultRequest {
        limit: 501,
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert_eq!((err.code(), field(&err)), (Code::InvalidArgument, "limit"));
    let err = list(pb::ListVaultRequest {
        kind: "passwords".into(),
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert_eq!(field(&err), "kind");

    let updated = client
        .update_vault_entry(testing::request(
            pb::UpdateVaultEntryRequest {
                id: linked.id.clone(),
                name: Some("renamed".into()),
                platform: Some(String::new()),
                secret: secret(json!("sk-live-456")),
                ..Default::default()
            },
            &user(owner),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (updated.name.as_str(), updated.platform.as_str()),
        ("renamed", "")
    );
    assert_eq!(
        revealed(vault.reveal_entry(owner, &linked.id).await.unwrap().secret),
        json!("sk-live-456")
    );
    let empty = client
        .update_vault_entry(testing::request(
            pb::UpdateVaultEntryRequest {
                id: linked.id.clone(),
                ..Default::default()
            },
            &user(owner),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (empty.code(), field(&empty)),
        (Code::InvalidArgument, "body")
    );

    let rotated = client
        .rotate_vault_entry(testing::request(
            pb::VaultEntryRef {
                id: linked.id.clone(),
            },
            &user(owner),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!rotated.rotated_at.is_empty());
    assert_eq!(
        revealed(vault.reveal_entry(owner, &linked.id).await.unwrap().secret),
        json!("sk-live-456")
    );

    let deleted = client
        .delete_vault_entry(testing::request(
            pb::VaultEntryRef {
                id: linked.id.clone(),
            },
            &user(owner),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.id, linked.id);
    let gone = vault.reveal_entry(owner, &linked.id).await.unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    let malformed = vault.reveal_entry(owner, "not-a-uuid").await.unwrap_err();
    assert_eq!(
        (malformed.code(), field(&malformed)),
        (Code::InvalidArgument, "id")
    );
}

#[tokio::test]
async fn a_captured_session_completes_pending_hitl_requests_and_is_marked_used() {
    let vault = spawn_vault().await;
    let owner = Uuid::new_v4();
    let profile = vault.create_profile(owner, "hitl", None).await.unwrap();
    let mut client = vault.client.clone();
    let request = || pb::RequestHitlLoginRequest {
        creator_profile_id: profile.id.clone(),
        notes: "login expired".into(),
    };
    let first = client
        .request_hitl_login(testing::request(request(), &testing::system()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.status, "pending");
    let again = client
        .request_hitl_login(testing::request(request(), &user(owner)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.id, first.id, "one pending request per profile");

    let missing = vault.session(&user(owner), &profile.id).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let stored = vault
        .store_session(
            &user(owner),
            &profile.id,
            json!([{"name": "sess", "value": "cookie-v"}]),
        )
        .await
        .unwrap();
    assert_eq!(stored.completed_hitl_sessions, 1);
    assert_eq!(stored.platform, "onlyfans");
    assert_eq!(stored.expires_at, "2026-12-24T00:00:00.000Z");
    let session = vault.session(&user(owner), &profile.id).await.unwrap();
    assert_eq!(
        revealed(session.cookies),
        json!([{"name": "sess", "value": "cookie-v"}])
    );
    let info = session.info.unwrap();
    assert!(!info.last_used_at.is_empty());
    assert_eq!(info.user_agent, "Mozilla/5.0 (test)");

    let next = client
        .request_hitl_login(testing::request(request(), &user(owner)))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(
        next.id, first.id,
        "the completed request is no longer pending"
    );

    let not_array = vault
        .store_session(&user(owner), &profile.id, json!({"name": "sess"}))
        .await
        .unwrap_err();
    assert_eq!(
        (not_array.code(), field(&not_array)),
        (Code::InvalidArgument, "cookies")
    );
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field() {
    let vault = spawn_vault().await;
    let owner = Uuid::new_v4();
    let profile = vault.create_profile(owner, "dup", None).await.unwrap();
    let duplicate = vault.create_profile(owner, "dup", None).await.unwrap_err();
    assert_eq!(duplicate.code(), Code::AlreadyExists);
    assert_eq!(reason(&duplicate), "profile_exists");

    let cases = [
        (
            vault.store(&user(owner), &profile.id, None).await,
            "credentials",
            "missing_field",
        ),
        (
            vault
                .store(
                    &user(owner),
                    &profile.id,
                    Some(pb::Secret {
                        json: "{not json".into(),
                    }),
                )
                .await,
            "credentials",
            "invalid_body",
        ),
        (
            vault
                .store(
                    &user(owner),
                    &profile.id,
                    Some(pb::Secret {
                        json: "null".into(),
                    }),
                )
                .await,
            "credentials",
            "missing_field",
        ),
        (
            vault
                .store(&user(owner), &profile.id, secret(json!("x".repeat(70_000))))
                .await,
            "credentials",
            "payload_too_large",
        ),
        (
            vault.store(&user(owner), "", secret(json!(1))).await,
            "creatorProfileId",
            "missing_field",
        ),
        (
            vault.store(&user(owner), "42", secret(json!(1))).await,
            "creatorProfileId",
            "invalid_body",
        ),
    ];
    for (result, expected_field, expected_reason) in cases {
        let status = result.unwrap_err();
        assert_eq!(
            (field(&status), reason(&status)),
            (expected_field, expected_reason),
            "{status:?}"
        );
    }
    let mut client = vault.client.clone();
    let bad_profile = client
        .create_profile(testing::request(
            pb::CreateProfileRequest {
                platform: "only fans".into(),
                username: "u".into(),
                ..Default::default()
            },
            &user(owner),
        ))
        .await
        .unwrap_err();
    assert_eq!(field(&bad_profile), "platform");
    let bad_cron = client
        .create_profile(testing::request(
            pb::CreateProfileRequest {
                platform: "fansly".into(),
                username: "u".into(),
                scrape_frequency: "hourly".into(),
                ..Default::default()
            },
            &user(owner),
        ))
        .await
        .unwrap_err();
    assert_eq!(field(&bad_cron), "scrapeFrequency");

    // Without the internal token, nothing.
    let mut request = tonic::Request::new(pb::ProfileRef {
        creator_profile_id: profile.id.clone(),
    });
    user(owner).write_to(request.metadata_mut());
    let refused = client.reveal_credentials(request).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn a_starter_creates_one_profile_and_the_second_is_limit_reached() {
    let vault = spawn_vault().await;
    let owner = Uuid::new_v4();
    let starter = user(owner);
    assert_eq!(vault.platforms(&starter).await, (0, 1, 1));
    let first = vault
        .create_profile_as(&starter, "first", Some(json!({"pw": "one"})))
        .await
        .unwrap();
    assert_eq!(
        vault.platforms(&starter).await,
        (1, 1, 0),
        "the report shows the standing count"
    );
    let second = vault
        .create_profile_as(&starter, "second", None)
        .await
        .unwrap_err();
    assert_eq!(reason(&second), "limit_reached");
    let as_http = common::ApiError::from(second);
    assert_eq!(as_http.http_status_code(), 403);
    assert_eq!(
        as_http.kind,
        common::Kind::QuotaExhausted,
        "`error` is tier_limit_reached"
    );
    assert_eq!(as_http.message, common::quota::UPGRADE_MESSAGE);
    assert_eq!(vault.profiles_of(owner).await, 1);
    // A duplicate is a duplicate, whatever the quota.
    let duplicate = vault
        .create_profile_as(&starter, "first", None)
        .await
        .unwrap_err();
    assert_eq!(reason(&duplicate), "profile_exists");
    assert_eq!(vault.platforms(&starter).await, (1, 1, 0));

    // The unit is held under the profile's own id.
    let key: String = vault
        .sql()
        .await
        .query_one(
            "SELECT key FROM usage.gauge_holds WHERE user_id = $1 AND released_at IS NULL",
            &[&owner],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(key, format!("creator_profile:{}", first.id));
    assert_eq!(
        key,
        svc_credentials::service::platforms_key(first.id.parse().unwrap())
    );

    // An upgrade makes room; another user is counted apart.
    let upgraded = testing::user(owner, "creator", "creator");
    vault
        .create_profile_as(&upgraded, "second", None)
        .await
        .unwrap();
    assert_eq!(vault.platforms(&upgraded).await, (2, 3, 1));
    let other = user(Uuid::new_v4());
    vault
        .create_profile_as(&other, "first", None)
        .await
        .unwrap();
    assert_eq!(vault.platforms(&other).await, (1, 1, 0));
}

#[tokio::test]
async fn deleting_a_profile_gives_its_platform_back_once_and_only_to_its_owner() {
    let vault = spawn_vault().await;
    let owner = Uuid::new_v4();
    let starter = user(owner);
    let first = vault
        .create_profile_as(&starter, "first", Some(json!({"pw": "one"})))
        .await
        .unwrap();
    let stranger = user(Uuid::new_v4());
    let theirs = vault
        .delete_profile_as(&stranger, &first.id)
        .await
        .unwrap_err();
    assert_eq!(theirs.code(), tonic::Code::NotFound);
    assert_eq!(vault.platforms(&starter).await, (1, 1, 0));

    let deleted = vault.delete_profile_as(&starter, &first.id).await.unwrap();
    assert_eq!(deleted.id, first.id);
    assert_eq!(vault.profiles_of(owner).await, 0);
    assert_eq!(vault.platforms(&starter).await, (0, 1, 1));
    let again = vault
        .delete_profile_as(&starter, &first.id)
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::NotFound);
    assert_eq!(
        vault.platforms(&starter).await,
        (0, 1, 1),
        "given back once"
    );
    // The slot is free for another profile.
    vault
        .create_profile_as(&starter, "second", None)
        .await
        .unwrap();
    assert_eq!(vault.platforms(&starter).await, (1, 1, 0));
    let bad = vault
        .delete_profile_as(&starter, "not-an-id")
        .await
        .unwrap_err();
    assert_eq!(
        (bad.code(), field(&bad)),
        (tonic::Code::InvalidArgument, "creator_profile_id")
    );
}

#[tokio::test]
async fn a_delete_whose_give_back_failed_is_answered_503_and_gives_it_back_when_sent_again() {
    let database = fresh_database().await;
    let usage = start_usage(&database.url).await;
    let proxy = common::testing::proxy::TcpProxy::start(usage.addr).await;
    let vault = start_with(&database.url, keys(KEY_1, &[], &[]), |config| {
        config.usage_grpc_url = format!("http://{}", proxy.addr());
        config.quota_timeout = Duration::from_millis(500);
    })
    .await
    .unwrap();
    let starter = user(Uuid::new_v4());
    let profile = vault
        .create_profile_as(&starter, "first", None)
        .await
        .unwrap();
    proxy.cut();
    let failed = vault
        .delete_profile_as(&starter, &profile.id)
        .await
        .unwrap_err();
    assert_eq!(failed.code(), Code::Unavailable, "{failed:?}");
    assert_eq!(vault.platforms(&starter).await, (1, 1, 0), "still held");
    proxy.restore();
    vault
        .delete_profile_as(&starter, &profile.id)
        .await
        .unwrap();
    assert_eq!(vault.platforms(&starter).await, (0, 1, 1));
}

#[tokio::test]
async fn concurrent_creates_never_pass_the_platforms_limit() {
    let vault = Arc::new(spawn_vault().await);
    let owner = Uuid::new_v4();
    let identity = testing::user(owner, "creator", "creator");
    let racers: Vec<_> = (0..10)
        .map(|n| {
            let vault = Arc::clone(&vault);
            let identity = identity.clone();
            tokio::spawn(async move {
                vault
                    .create_profile_as(&identity, &format!("racer{n}"), None)
                    .await
            })
        })
        .collect();
    let mut created = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Ok(_) => created += 1,
            Err(status) => assert_eq!(reason(&status), "limit_reached", "{status:?}"),
        }
    }
    assert_eq!(created, 3, "the creator tier's 3 platforms");
    assert_eq!(vault.profiles_of(owner).await, 3);
    assert_eq!(vault.platforms(&identity).await, (3, 3, 0));
}

#[tokio::test]
async fn a_profile_that_is_not_stored_gives_its_unit_back() {
    let vault = Arc::new(spawn_vault().await);
    let owner = Uuid::new_v4();
    let starter = user(owner);
    let db = vault.sql().await;
    db.batch_execute(
        "CREATE FUNCTION credentials.refuse_doomed() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN RAISE EXCEPTION 'refused by the test'; END $$; \
         CREATE TRIGGER refuse_doomed BEFORE INSERT ON credentials.creator_profiles \
         FOR EACH ROW WHEN (NEW.username = 'doomed') EXECUTE FUNCTION credentials.refuse_doomed();",
    )
    .await
    .unwrap();
    let failed = vault
        .create_profile_as(&starter, "doomed", Some(json!({"pw": "x"})))
        .await
        .unwrap_err();
    assert_eq!(failed.code(), Code::Internal);
    assert_eq!(vault.profiles_of(owner).await, 0);
    assert_eq!(vault.platforms(&starter).await, (0, 1, 1), "given back");
    let released: i64 = db
        .query_one(
            "SELECT count(*) FROM usage.gauge_holds WHERE user_id = $1 AND released_at IS NOT NULL",
            &[&owner],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(released, 1);
    vault
        .create_profile_as(&starter, "fine", None)
        .await
        .unwrap();
    assert_eq!(vault.platforms(&starter).await, (1, 1, 0));

    // The same profile sent five times at once (a client retrying): one is stored, the others
    // are duplicates or over the limit, and every unit they took is given back.
    let creator = testing::user(Uuid::new_v4(), "creator", "creator");
    let racers: Vec<_> = (0..5)
        .map(|_| {
            let vault = Arc::clone(&vault);
            let creator = creator.clone();
            tokio::spawn(async move { vault.create_profile_as(&creator, "twice", None).await })
        })
        .collect();
    let mut created = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Ok(_) => created += 1,
            Err(status) => assert!(
                ["profile_exists", "limit_reached"].contains(&reason(&status)),
                "{status:?}"
            ),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(vault.platforms(&creator).await, (1, 3, 2));
}

#[tokio::test]
async fn svc_usage_unreachable_refuses_the_profile_quota_check_failed() {
    let database = fresh_database().await;
    let vault = start_with(&database.url, keys(KEY_1, &[], &[]), |config| {
        config.usage_grpc_url = "http://127.0.0.1:9".into();
        config.quota_timeout = Duration::from_millis(500);
    })
    .await
    .unwrap();
    let owner = Uuid::new_v4();
    let started = std::time::Instant::now();
    let refused = vault
        .create_profile_as(&user(owner), "nowhere", None)
        .await
        .unwrap_err();
    assert_eq!(reason(&refused), "quota_check_failed");
    assert_eq!(common::ApiError::from(refused).http_status_code(), 403);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(vault.profiles_of(owner).await, 0, "fail-closed");
}

#[tokio::test]
async fn the_database_down_is_unavailable_not_a_hang() {
    let database = fresh_database().await;
    let vault = start(&database.url, keys(KEY_1, &[], &[])).await.unwrap();
    let owner = Uuid::new_v4();
    let profile = vault
        .create_profile(owner, "down", Some(json!(1)))
        .await
        .unwrap();
    let admin = common::testing::connect(&common::testing::admin_url()).await;
    let close = format!("ALTER DATABASE {} ALLOW_CONNECTIONS false", database.name);
    admin.execute(&close, &[]).await.unwrap();
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            &[&database.name],
        )
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let err = vault.reveal(&user(owner), &profile.id).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        matches!(err.code(), Code::Unavailable | Code::Internal),
        "{err:?}"
    );
    assert!(!err.message().contains("postgres"), "{}", err.message());
    // Usable again for inspection.
    let open = format!("ALTER DATABASE {} ALLOW_CONNECTIONS true", database.name);
    admin.execute(&open, &[]).await.unwrap();
}

#[test]
fn the_key_text_of_the_tests_is_thirty_two_bytes() {
    for key in [KEY_1, KEY_2] {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(key)
            .unwrap();
        assert_eq!(bytes.len(), 32);
    }
}
