//! Key versions in the database, and re-sealing every record under the newest key.
//!
//! Rotation runs beside a live service: each batch is one short transaction that takes its rows
//! with `FOR UPDATE SKIP LOCKED`, so a request writing a row is never waited on (its write uses
//! the newest key anyway) and a reveal never sees a half-written row. It walks each table once in
//! id order; a row it cannot open is reported and left as it is. Stopping it at any point loses
//! nothing, and running it again goes on with the rows still to do.

use deadpool_postgres::Pool;
use uuid::Uuid;

use crate::config::{MORE_KEYS_VARIABLE, RETIRED_VARIABLE};
use crate::crypto::{CryptoError, KeyRing};
use crate::error::VaultError;
use crate::service::{open, seal};
use crate::store::{self, SEALED_FIELDS, SealedField};

#[derive(Debug, thiserror::Error)]
pub enum KeyCheckError {
    #[error(
        "configuration variable {MORE_KEYS_VARIABLE} (or CREDENTIALS_ENC_KEY_B64): key version {0} is not the key this vault recorded under that version; a changed key would make its records unreadable. Give a new key a new version"
    )]
    Changed(i32),
    #[error(transparent)]
    Vault(#[from] VaultError),
}

/// Records the configured versions (and which are retired, per `CREDENTIALS_RETIRED_KEY_VERSIONS`)
/// and refuses a version whose key differs from the one first recorded under it.
pub async fn register_keys(pool: &Pool, keys: &KeyRing) -> Result<(), KeyCheckError> {
    let versions: Vec<(i32, String, bool)> = keys
        .versions()
        .map(|(version, fingerprint, retired)| {
            (
                i32::try_from(version).unwrap_or(i32::MAX),
                fingerprint.to_owned(),
                retired,
            )
        })
        .collect();
    let db = pool.get().await.map_err(VaultError::from)?;
    let changed = store::register_keys(&db, &versions).await?;
    match changed.first() {
        Some(version) => Err(KeyCheckError::Changed(*version)),
        None => {
            tracing::info!(
                newest = keys.newest(),
                retired_variable = RETIRED_VARIABLE,
                "key versions checked"
            );
            Ok(())
        }
    }
}

/// A record rotation could not open, and why. Never its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unrotated {
    pub table: &'static str,
    pub id: Uuid,
    pub error: String,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RotationReport {
    /// Records re-sealed under the newest key, per table.
    pub resealed: Vec<(&'static str, u64)>,
    pub failed: Vec<Unrotated>,
    /// After the run: sealed values per table and key version (`None`: imported, not bound).
    pub remaining: Vec<(&'static str, Option<i32>, i64)>,
}

impl RotationReport {
    /// Records not under the newest key after the run.
    pub fn left_behind(&self, newest: u32) -> i64 {
        self.remaining
            .iter()
            .filter(|(_, version, _)| *version != i32::try_from(newest).ok())
            .map(|(_, _, count)| count)
            .sum()
    }

    /// Records of the original service still unbound after the run (no key version): while
    /// any remain, `CREDENTIALS_ACCEPT_LEGACY` must stay on.
    pub fn legacy_left(&self) -> i64 {
        self.remaining
            .iter()
            .filter(|(_, version, _)| version.is_none())
            .map(|(_, _, count)| count)
            .sum()
    }
}

/// Re-seals every record not under the newest key, `batch` rows per transaction. `progress`
/// hears each batch: table and records re-sealed so far in it.
pub async fn rotate_all(
    pool: &Pool,
    keys: &KeyRing,
    batch: i64,
    mut progress: impl FnMut(&'static str, u64),
) -> Result<RotationReport, VaultError> {
    let newest = i32::try_from(keys.newest()).map_err(|_| CryptoError::Malformed)?;
    let mut report = RotationReport::default();
    for field in SEALED_FIELDS {
        let mut resealed = 0;
        let mut after = Uuid::nil();
        loop {
            let (done, last) =
                rotate_batch(pool, keys, field, newest, after, batch, &mut report).await?;
            resealed += done;
            match last {
                Some(last) => after = last,
                None => break,
            }
            progress(field.table, resealed);
        }
        report.resealed.push((field.table, resealed));
    }
    let db = pool.get().await?;
    for field in SEALED_FIELDS {
        for (version, count) in store::versions_in_use(&db, field).await? {
            report.remaining.push((field.table, version, count));
        }
    }
    Ok(report)
}

/// One batch in one transaction: how many were re-sealed, and the last id seen (`None`: the
/// table is done).
async fn rotate_batch(
    pool: &Pool,
    keys: &KeyRing,
    field: SealedField,
    newest: i32,
    after: Uuid,
    batch: i64,
    report: &mut RotationReport,
) -> Result<(u64, Option<Uuid>), VaultError> {
    let mut db = pool.get().await?;
    let tx = db.transaction().await?;
    let rows = store::rotation_batch(&tx, field, newest, after, batch).await?;
    let mut resealed = 0;
    for (id, stored, version) in &rows {
        let sealed = open(keys, field, *id, stored, *version)
            .and_then(|opened| seal(keys, field, *id, &opened.plaintext));
        match sealed {
            Ok(sealed) => {
                store::reseal(&tx, field, *id, &sealed).await?;
                resealed += 1;
            }
            Err(err) => {
                let error = common::ApiError::from(err).message;
                tracing::warn!(table = field.table, %id, %error, "record not rotated");
                report.failed.push(Unrotated {
                    table: field.table,
                    id: *id,
                    error,
                });
            }
        }
    }
    tx.commit().await?;
    Ok((resealed, rows.last().map(|(id, _, _)| *id)))
}
