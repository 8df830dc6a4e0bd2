//! `genie rotate-keys`, the operator's binary, against a fresh database holding records imported
//! from the original service: it says how many of them remain unbound, and when none remain.

use common::testing::{connect, fresh_database};
use serde_json::Value;

const KEY_2: &str = "c2Vjb25kIGtleSBvZiB0aGUgdmF1bHQgdGVzdHMhISE="; // "second key of the vault tests!!!"

/// `genie rotate-keys` with exactly these variables (and PATH): exit status and stdout.
async fn rotate_keys(database_url: &str, legacy_key: &str) -> (bool, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_genie"))
        .args(["rotate-keys", "--batch", "1"])
        .env_clear()
        .envs([
            ("PATH", std::env::var("PATH").unwrap_or_default()),
            ("CREDENTIALS_DATABASE_URL", database_url.to_owned()),
            ("CREDENTIALS_ENC_KEY_B64", legacy_key.to_owned()),
            ("CREDENTIALS_ENC_KEYS_B64", format!("2:{KEY_2}")),
            ("RUST_LOG", "warn".to_owned()),
        ])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    (output.status.success(), format!("{stdout}\n{stderr}"))
}

#[tokio::test]
async fn rotate_keys_counts_the_legacy_records_left_and_says_when_none_remain() {
    let file: Value = serde_json::from_str(include_str!(
        "../../../svc-credentials/tests/vectors/legacy_node.json"
    ))
    .unwrap();
    let legacy_key = file["key_b64"].as_str().unwrap();
    let database = fresh_database().await;
    svc_credentials::migrate(&database.url).await.unwrap();
    let db = connect(&database.url).await;
    // As an import of the original's rows would write them: the stored JSON as it was, no key
    // version.
    let vectors = file["vectors"].as_array().unwrap();
    for (n, vector) in vectors.iter().enumerate() {
        db.execute(
            "INSERT INTO credentials.creator_profiles (id, user_id, platform, username, credentials) \
             VALUES (gen_random_uuid(), gen_random_uuid(), 'onlyfans', $1, $2::text::jsonb)",
            &[&format!("legacy-{n}"), &vector["stored"].to_string()],
        )
        .await
        .unwrap();
    }

    // One imported row is busy (a request holds it) during the first run: it is skipped, and
    // stays unbound.
    let busy = connect(&database.url).await;
    busy.batch_execute(
        "BEGIN; SELECT 1 FROM credentials.creator_profiles WHERE username = 'legacy-0' FOR UPDATE",
    )
    .await
    .unwrap();
    let (ok, output) = rotate_keys(&database.url, legacy_key).await;
    assert!(!ok, "a record is left behind: {output}");
    assert!(
        output.contains("1 legacy record(s) remain"),
        "the count of unbound records: {output}"
    );
    assert!(
        output.contains("keep CREDENTIALS_ACCEPT_LEGACY on"),
        "{output}"
    );
    assert!(!output.contains("no legacy records remain"), "{output}");

    busy.batch_execute("ROLLBACK").await.unwrap();
    let (ok, output) = rotate_keys(&database.url, legacy_key).await;
    assert!(ok, "{output}");
    assert!(
        output.contains("no legacy records remain"),
        "said clearly: {output}"
    );
    assert!(
        output.contains("CREDENTIALS_ACCEPT_LEGACY=false may now be set"),
        "{output}"
    );
    let unbound: i64 = db
        .query_one(
            "SELECT count(*) FROM credentials.creator_profiles WHERE credentials_key_version IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(unbound, 0);
}
