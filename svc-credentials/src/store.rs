//! Every SQL statement of svc-credentials.

use chrono::{DateTime, Utc};
use common::sql;
use deadpool_postgres::GenericClient;
use serde_json::Value;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use crate::error::VaultError;

/// A sealed column, with the column that records its key version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedField {
    pub table: &'static str,
    pub column: &'static str,
    pub version_column: &'static str,
}

pub const PROFILE_CREDENTIALS: SealedField = SealedField {
    table: "creator_profiles",
    column: "credentials",
    version_column: "credentials_key_version",
};
pub const SESSION_COOKIES: SealedField = SealedField {
    table: "platform_sessions",
    column: "cookies",
    version_column: "cookies_key_version",
};
pub const VAULT_SECRET: SealedField = SealedField {
    table: "vault_entries",
    column: "secret",
    version_column: "secret_key_version",
};
pub const SEALED_FIELDS: [SealedField; 3] = [PROFILE_CREDENTIALS, SESSION_COOKIES, VAULT_SECRET];

/// A value sealed for a column: the stored JSON and its key version.
#[derive(Debug, Clone)]
pub struct SealedValue {
    pub json: Value,
    pub version: i32,
}

#[derive(Debug, Clone)]
pub struct ProfileRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub platform: String,
    pub username: String,
    pub credentials: Option<Value>,
    pub credentials_key_version: Option<i32>,
    pub scrape_enabled: bool,
    pub scrape_frequency: Option<String>,
    pub last_scraped_at: Option<DateTime<Utc>>,
    pub scrape_status: String,
    pub profile_data: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const PROFILE_COLUMNS: &str = "id, user_id, platform, username, credentials, \
     credentials_key_version, scrape_enabled, scrape_frequency, last_scraped_at, scrape_status, \
     profile_data, created_at, updated_at";

impl From<Row> for ProfileRow {
    fn from(row: Row) -> Self {
        Self {
            id: row.get(0),
            user_id: row.get(1),
            platform: row.get(2),
            username: row.get(3),
            credentials: row.get(4),
            credentials_key_version: row.get(5),
            scrape_enabled: row.get(6),
            scrape_frequency: row.get(7),
            last_scraped_at: row.get(8),
            scrape_status: row.get(9),
            profile_data: row.get(10),
            created_at: row.get(11),
            updated_at: row.get(12),
        }
    }
}

pub struct NewProfile<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    pub platform: &'a str,
    pub username: &'a str,
    pub credentials: Option<SealedValue>,
    pub scrape_enabled: bool,
    pub scrape_frequency: Option<&'a str>,
    pub profile_data: &'a Value,
}

pub async fn insert_profile(
    db: &impl GenericClient,
    profile: NewProfile<'_>,
) -> Result<ProfileRow, VaultError> {
    let (credentials, version) = match profile.credentials {
        Some(sealed) => (Some(sealed.json), Some(sealed.version)),
        None => (None, None),
    };
    let inserted = sql::query_one(db,
            &format!(
                "INSERT INTO credentials.creator_profiles (id, user_id, platform, username, \
                 credentials, credentials_key_version, scrape_enabled, scrape_frequency, profile_data) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {PROFILE_COLUMNS}"
            ),
            &[
                &profile.id,
                &profile.user_id,
                &profile.platform,
                &profile.username,
                &credentials,
                &version,
                &profile.scrape_enabled,
                &profile.scrape_frequency,
                profile.profile_data,
            ],
        )
        .await;
    match inserted {
        Ok(row) => Ok(row.into()),
        Err(err) if err.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            Err(VaultError::ProfileExists)
        }
        Err(err) => Err(err.into()),
    }
}

/// Whether the user has a profile of this platform and username already.
pub async fn profile_exists(
    db: &impl GenericClient,
    user_id: Uuid,
    platform: &str,
    username: &str,
) -> Result<bool, VaultError> {
    Ok(sql::query_opt(
        db,
        "SELECT 1 FROM credentials.creator_profiles \
         WHERE user_id = $1 AND platform = $2 AND username = $3",
        &[&user_id, &platform, &username],
    )
    .await?
    .is_some())
}

/// The profile, if `owner` (when given) owns it. `lock` takes it for update.
pub async fn profile(
    db: &impl GenericClient,
    id: Uuid,
    owner: Option<Uuid>,
    lock: bool,
) -> Result<Option<ProfileRow>, VaultError> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let row = sql::query_opt(
        db,
        &format!(
            "SELECT {PROFILE_COLUMNS} FROM credentials.creator_profiles \
                 WHERE id = $1 AND ($2::uuid IS NULL OR user_id = $2){lock}"
        ),
        &[&id, &owner],
    )
    .await?;
    Ok(row.map(ProfileRow::from))
}

pub async fn set_profile_credentials(
    db: &impl GenericClient,
    id: Uuid,
    owner: Option<Uuid>,
    sealed: &SealedValue,
) -> Result<Option<ProfileRow>, VaultError> {
    let row = sql::query_opt(
        db,
        &format!(
            "UPDATE credentials.creator_profiles \
                 SET credentials = $3, credentials_key_version = $4, updated_at = now() \
                 WHERE id = $1 AND ($2::uuid IS NULL OR user_id = $2) RETURNING {PROFILE_COLUMNS}"
        ),
        &[&id, &owner, &sealed.json, &sealed.version],
    )
    .await?;
    Ok(row.map(ProfileRow::from))
}

#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: Uuid,
    pub creator_profile_id: Uuid,
    pub platform: String,
    pub cookies: Value,
    pub cookies_key_version: Option<i32>,
    pub user_agent: String,
    pub captured_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

const SESSION_COLUMNS: &str = "s.id, s.creator_profile_id, s.platform, s.cookies, \
     s.cookies_key_version, s.user_agent, s.captured_at, s.expires_at, s.last_used_at";

impl From<&Row> for SessionRow {
    fn from(row: &Row) -> Self {
        Self {
            id: row.get(0),
            creator_profile_id: row.get(1),
            platform: row.get(2),
            cookies: row.get(3),
            cookies_key_version: row.get(4),
            user_agent: row.get(5),
            captured_at: row.get(6),
            expires_at: row.get(7),
            last_used_at: row.get(8),
        }
    }
}

pub struct NewSession<'a> {
    pub id: Uuid,
    pub creator_profile_id: Uuid,
    pub platform: &'a str,
    pub cookies: SealedValue,
    pub user_agent: &'a str,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Replaces the profile's session. The row takes the new id: its cookies are sealed for it.
pub async fn replace_session(
    db: &impl GenericClient,
    session: NewSession<'_>,
) -> Result<SessionRow, VaultError> {
    let row = sql::query_one(
        db,
        &format!(
            "INSERT INTO credentials.platform_sessions AS s (id, creator_profile_id, platform, \
                 cookies, cookies_key_version, user_agent, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (creator_profile_id) DO UPDATE SET id = excluded.id, \
                 platform = excluded.platform, cookies = excluded.cookies, \
                 cookies_key_version = excluded.cookies_key_version, \
                 user_agent = excluded.user_agent, captured_at = now(), \
                 expires_at = excluded.expires_at, last_used_at = NULL \
                 RETURNING {SESSION_COLUMNS}"
        ),
        &[
            &session.id,
            &session.creator_profile_id,
            &session.platform,
            &session.cookies.json,
            &session.cookies.version,
            &session.user_agent,
            &session.expires_at,
        ],
    )
    .await?;
    Ok(SessionRow::from(&row))
}

/// The profile's session with the profile's owner, if `owner` (when given) owns it.
pub async fn session(
    db: &impl GenericClient,
    creator_profile_id: Uuid,
    owner: Option<Uuid>,
) -> Result<Option<(SessionRow, Uuid)>, VaultError> {
    let row = sql::query_opt(
        db,
        &format!(
            "SELECT {SESSION_COLUMNS}, p.user_id FROM credentials.platform_sessions s \
                 JOIN credentials.creator_profiles p ON p.id = s.creator_profile_id \
                 WHERE s.creator_profile_id = $1 AND ($2::uuid IS NULL OR p.user_id = $2)"
        ),
        &[&creator_profile_id, &owner],
    )
    .await?;
    Ok(row.map(|row| (SessionRow::from(&row), row.get(9))))
}

pub async fn mark_session_used(
    db: &impl GenericClient,
    id: Uuid,
) -> Result<DateTime<Utc>, VaultError> {
    let row = sql::query_one(
        db,
        "UPDATE credentials.platform_sessions SET last_used_at = now() WHERE id = $1 \
             RETURNING last_used_at",
        &[&id],
    )
    .await?;
    Ok(row.get(0))
}

#[derive(Debug, Clone)]
pub struct HitlRow {
    pub id: Uuid,
    pub creator_profile_id: Uuid,
    pub platform: String,
    pub status: String,
    pub requested_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub notes: Option<String>,
}

const HITL_COLUMNS: &str =
    "id, creator_profile_id, platform, status, requested_at, completed_at, notes";

impl From<Row> for HitlRow {
    fn from(row: Row) -> Self {
        Self {
            id: row.get(0),
            creator_profile_id: row.get(1),
            platform: row.get(2),
            status: row.get(3),
            requested_at: row.get(4),
            completed_at: row.get(5),
            notes: row.get(6),
        }
    }
}

/// A new pending request, or the one already pending for the profile.
pub async fn request_hitl(
    db: &impl GenericClient,
    id: Uuid,
    profile: &ProfileRow,
    notes: Option<&str>,
) -> Result<HitlRow, VaultError> {
    let inserted = sql::query_opt(
        db,
        &format!(
            "INSERT INTO credentials.hitl_sessions (id, creator_profile_id, platform, notes) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (creator_profile_id) WHERE status = 'pending' DO NOTHING \
                 RETURNING {HITL_COLUMNS}"
        ),
        &[&id, &profile.id, &profile.platform, &notes],
    )
    .await?;
    if let Some(row) = inserted {
        return Ok(row.into());
    }
    let pending = sql::query_one(
        db,
        &format!(
            "SELECT {HITL_COLUMNS} FROM credentials.hitl_sessions \
                 WHERE creator_profile_id = $1 AND status = 'pending'"
        ),
        &[&profile.id],
    )
    .await?;
    Ok(pending.into())
}

pub async fn complete_hitl(
    db: &impl GenericClient,
    creator_profile_id: Uuid,
) -> Result<u64, VaultError> {
    Ok(sql::execute(
        db,
        "UPDATE credentials.hitl_sessions SET status = 'completed', completed_at = now() \
             WHERE creator_profile_id = $1 AND status = 'pending'",
        &[&creator_profile_id],
    )
    .await?)
}

#[derive(Debug, Clone)]
pub struct EntryRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub creator_profile_id: Option<Uuid>,
    pub name: String,
    pub kind: String,
    pub platform: Option<String>,
    pub secret: Value,
    pub secret_key_version: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub rotated_at: Option<DateTime<Utc>>,
}

const ENTRY_COLUMNS: &str = "id, user_id, creator_profile_id, name, kind, platform, secret, \
     secret_key_version, created_at, updated_at, rotated_at";

impl From<Row> for EntryRow {
    fn from(row: Row) -> Self {
        Self {
            id: row.get(0),
            user_id: row.get(1),
            creator_profile_id: row.get(2),
            name: row.get(3),
            kind: row.get(4),
            platform: row.get(5),
            secret: row.get(6),
            secret_key_version: row.get(7),
            created_at: row.get(8),
            updated_at: row.get(9),
            rotated_at: row.get(10),
        }
    }
}

pub struct NewEntry<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    pub creator_profile_id: Option<Uuid>,
    pub name: &'a str,
    pub kind: &'a str,
    pub platform: Option<&'a str>,
    pub secret: SealedValue,
}

pub async fn insert_entry(
    db: &impl GenericClient,
    entry: NewEntry<'_>,
) -> Result<EntryRow, VaultError> {
    let row = sql::query_one(
        db,
        &format!(
            "INSERT INTO credentials.vault_entries (id, user_id, creator_profile_id, name, \
                 kind, platform, secret, secret_key_version) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {ENTRY_COLUMNS}"
        ),
        &[
            &entry.id,
            &entry.user_id,
            &entry.creator_profile_id,
            &entry.name,
            &entry.kind,
            &entry.platform,
            &entry.secret.json,
            &entry.secret.version,
        ],
    )
    .await?;
    Ok(row.into())
}

pub async fn entry(
    db: &impl GenericClient,
    id: Uuid,
    owner: Uuid,
    lock: bool,
) -> Result<Option<EntryRow>, VaultError> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let row = sql::query_opt(
        db,
        &format!(
            "SELECT {ENTRY_COLUMNS} FROM credentials.vault_entries \
                 WHERE id = $1 AND user_id = $2{lock}"
        ),
        &[&id, &owner],
    )
    .await?;
    Ok(row.map(EntryRow::from))
}

/// Writes every changeable column of `entry` (read for update earlier in the transaction).
pub async fn update_entry(
    db: &impl GenericClient,
    entry: &EntryRow,
    rotated: bool,
) -> Result<EntryRow, VaultError> {
    let row = sql::query_one(
        db,
        &format!(
            "UPDATE credentials.vault_entries SET name = $2, kind = $3, platform = $4, \
                 secret = $5, secret_key_version = $6, updated_at = now(), \
                 rotated_at = CASE WHEN $7 THEN now() ELSE rotated_at END \
                 WHERE id = $1 RETURNING {ENTRY_COLUMNS}"
        ),
        &[
            &entry.id,
            &entry.name,
            &entry.kind,
            &entry.platform,
            &entry.secret,
            &entry.secret_key_version,
            &rotated,
        ],
    )
    .await?;
    Ok(row.into())
}

/// Deletes the owner's creator profile; what refers to it goes with it (`ON DELETE CASCADE`).
pub async fn delete_profile(
    db: &impl GenericClient,
    id: Uuid,
    owner: Uuid,
) -> Result<bool, VaultError> {
    Ok(sql::execute(
        db,
        "DELETE FROM credentials.creator_profiles WHERE id = $1 AND user_id = $2",
        &[&id, &owner],
    )
    .await?
        == 1)
}

pub async fn delete_entry(
    db: &impl GenericClient,
    id: Uuid,
    owner: Uuid,
) -> Result<bool, VaultError> {
    Ok(sql::execute(
        db,
        "DELETE FROM credentials.vault_entries WHERE id = $1 AND user_id = $2",
        &[&id, &owner],
    )
    .await?
        == 1)
}

pub async fn list_entries(
    db: &impl GenericClient,
    owner: Uuid,
    kind: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<EntryRow>, VaultError> {
    let rows = sql::query(
        db,
        &format!(
            "SELECT {ENTRY_COLUMNS} FROM credentials.vault_entries \
                 WHERE user_id = $1 AND ($2::text IS NULL OR kind = $2) \
                 ORDER BY created_at DESC, id LIMIT $3 OFFSET $4"
        ),
        &[&owner, &kind, &limit, &offset],
    )
    .await?;
    Ok(rows.into_iter().map(EntryRow::from).collect())
}

/// `(total, matching kind)` entries of the user.
pub async fn count_entries(
    db: &impl GenericClient,
    owner: Uuid,
    kind: Option<&str>,
) -> Result<(i64, i64), VaultError> {
    let row = sql::query_one(
        db,
        "SELECT count(*), count(*) FILTER (WHERE $2::text IS NULL OR kind = $2) \
             FROM credentials.vault_entries WHERE user_id = $1",
        &[&owner, &kind],
    )
    .await?;
    Ok((row.get(0), row.get(1)))
}

/// One line of the reveal audit. Never the secret.
pub struct AuditLine<'a> {
    pub actor: &'static str,
    pub actor_user_id: Option<Uuid>,
    pub impersonated_by: Option<Uuid>,
    pub owner_user_id: Uuid,
    pub field: SealedField,
    pub subject_id: Uuid,
    pub path: &'a str,
    pub key_version: i32,
    pub request_id: &'a str,
}

pub async fn audit(db: &impl GenericClient, line: AuditLine<'_>) -> Result<(), VaultError> {
    sql::execute(
        db,
        "INSERT INTO credentials.reveal_audit (actor, actor_user_id, impersonated_by, \
         owner_user_id, subject_table, subject_id, field, path, key_version, request_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &[
            &line.actor,
            &line.actor_user_id,
            &line.impersonated_by,
            &line.owner_user_id,
            &line.field.table,
            &line.subject_id,
            &line.field.column,
            &line.path,
            &line.key_version,
            &line.request_id,
        ],
    )
    .await?;
    Ok(())
}

/// The next rows of `field` past `after` (by id) not sealed under `newest`, taken for update,
/// with their key version (`None`: imported, not yet bound); rows another transaction holds are
/// skipped, not waited for.
pub async fn rotation_batch(
    db: &impl GenericClient,
    field: SealedField,
    newest: i32,
    after: Uuid,
    limit: i64,
) -> Result<Vec<(Uuid, Value, Option<i32>)>, VaultError> {
    let SealedField {
        table,
        column,
        version_column,
    } = field;
    let rows = sql::query(db,
            &format!(
                "SELECT id, {column}, {version_column} FROM credentials.{table} \
                 WHERE {column} IS NOT NULL AND ({version_column} IS NULL OR {version_column} <> $1) \
                 AND id > $2 ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED"
            ),
            &[&newest, &after, &limit],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect())
}

pub async fn reseal(
    db: &impl GenericClient,
    field: SealedField,
    id: Uuid,
    sealed: &SealedValue,
) -> Result<(), VaultError> {
    let SealedField {
        table,
        column,
        version_column,
    } = field;
    sql::execute(
        db,
        &format!(
            "UPDATE credentials.{table} SET {column} = $2, {version_column} = $3 WHERE id = $1"
        ),
        &[&id, &sealed.json, &sealed.version],
    )
    .await?;
    Ok(())
}

/// How many sealed values of `field` each key version holds (`None`: imported, not yet rotated).
pub async fn versions_in_use(
    db: &impl GenericClient,
    field: SealedField,
) -> Result<Vec<(Option<i32>, i64)>, VaultError> {
    let SealedField {
        table,
        column,
        version_column,
    } = field;
    let rows = sql::query(
        db,
        &format!(
            "SELECT {version_column}, count(*) FROM credentials.{table} \
                 WHERE {column} IS NOT NULL GROUP BY 1 ORDER BY 1 NULLS FIRST"
        ),
        &[],
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}

/// Records the configured key versions. Returns the versions whose key differs from the one
/// first recorded under that version.
pub async fn register_keys(
    db: &impl GenericClient,
    versions: &[(i32, String, bool)],
) -> Result<Vec<i32>, VaultError> {
    let mut changed = Vec::new();
    for (version, fingerprint, retired) in versions {
        sql::execute(
            db,
            "INSERT INTO credentials.key_versions (version, fingerprint) VALUES ($1, $2) \
             ON CONFLICT (version) DO NOTHING",
            &[version, fingerprint],
        )
        .await?;
        let row = sql::query_one(
            db,
            "UPDATE credentials.key_versions SET retired_at = CASE WHEN $2 \
                 THEN coalesce(retired_at, now()) END WHERE version = $1 RETURNING fingerprint",
            &[version, retired],
        )
        .await?;
        let recorded: String = row.get(0);
        if recorded != *fingerprint {
            changed.push(*version);
        }
    }
    Ok(changed)
}
