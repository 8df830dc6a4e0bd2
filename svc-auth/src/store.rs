//! Every SQL statement of svc-auth. Nothing outside this module writes SQL.

use chrono::{DateTime, Utc};
use common::sql;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use crate::error::AuthError;

const USER_COLUMNS: &str = "u.id, u.email, u.first_name, u.last_name, r.name, u.role_id, \
     coalesce(r.admin_access, false), coalesce(r.app_access, false), u.status, u.onboarding_state, \
     u.onboarding_updated_at, u.pricing_tier, a.content_type, u.created_at, u.last_access";
const USER_FROM: &str = "auth.users u LEFT JOIN auth.roles r ON r.id = u.role_id \
     LEFT JOIN auth.avatars a ON a.user_id = u.id";

#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub role: Option<String>,
    pub role_id: Option<Uuid>,
    pub admin_access: bool,
    pub app_access: bool,
    pub status: String,
    pub onboarding_state: String,
    pub onboarding_updated_at: DateTime<Utc>,
    pub pricing_tier: String,
    pub avatar_content_type: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_access: Option<DateTime<Utc>>,
}

impl From<&Row> for User {
    fn from(row: &Row) -> Self {
        Self {
            id: row.get(0),
            email: row.get(1),
            first_name: row.get(2),
            last_name: row.get(3),
            role: row.get(4),
            role_id: row.get(5),
            admin_access: row.get(6),
            app_access: row.get(7),
            status: row.get(8),
            onboarding_state: row.get(9),
            onboarding_updated_at: row.get(10),
            pricing_tier: row.get(11),
            avatar_content_type: row.get(12),
            created_at: row.get(13),
            last_access: row.get(14),
        }
    }
}

pub async fn user_by_id(db: &impl GenericClient, id: Uuid) -> Result<Option<User>, AuthError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM {USER_FROM} WHERE u.id = $1");
    Ok(sql::query_opt(db, &sql, &[&id])
        .await?
        .as_ref()
        .map(User::from))
}

/// The user with this email (any case) and their password hash.
pub async fn user_by_email(
    db: &impl GenericClient,
    email: &str,
) -> Result<Option<(User, Option<String>)>, AuthError> {
    let sql = format!(
        "SELECT {USER_COLUMNS}, u.password_hash FROM {USER_FROM} WHERE lower(u.email) = lower($1)"
    );
    Ok(sql::query_opt(db, &sql, &[&email])
        .await?
        .map(|row| (User::from(&row), row.get(15))))
}

/// What the gateway needs per request: the cheapest lookup of the lot.
pub async fn resolve(db: &impl GenericClient, id: Uuid) -> Result<Option<Resolved>, AuthError> {
    let row = sql::query_opt(
        db,
        "SELECT coalesce(r.name, ''), u.pricing_tier, u.status, u.onboarding_state \
             FROM auth.users u LEFT JOIN auth.roles r ON r.id = u.role_id WHERE u.id = $1",
        &[&id],
    )
    .await?;
    Ok(row.map(|row| Resolved {
        role: row.get(0),
        pricing_tier: row.get(1),
        status: row.get(2),
        onboarding_state: row.get(3),
    }))
}

pub struct Resolved {
    pub role: String,
    pub pricing_tier: String,
    pub status: String,
    pub onboarding_state: String,
}

pub async fn role_id(db: &impl GenericClient, name_or_id: &str) -> Result<Option<Uuid>, AuthError> {
    let by_id = Uuid::parse_str(name_or_id).ok();
    let row = sql::query_opt(
        db,
        "SELECT id FROM auth.roles WHERE name = $1 OR id = $2",
        &[&name_or_id, &by_id],
    )
    .await?;
    Ok(row.map(|row| row.get(0)))
}

pub struct NewUser<'a> {
    pub email: &'a str,
    pub password_hash: &'a str,
    pub first_name: Option<&'a str>,
    pub last_name: Option<&'a str>,
    pub role: &'a str,
    pub onboarding_state: &'a str,
    pub pricing_tier: &'a str,
}

/// Inserts the user unless the email is taken (then `None`).
pub async fn insert_user(
    db: &impl GenericClient,
    user: &NewUser<'_>,
) -> Result<Option<Uuid>, AuthError> {
    let row = sql::query_opt(db,
            "INSERT INTO auth.users (email, password_hash, first_name, last_name, role_id, onboarding_state, pricing_tier) \
             SELECT $1, $2, $3, $4, r.id, $6, $7 FROM auth.roles r WHERE r.name = $5 \
             ON CONFLICT ((lower(email))) DO NOTHING RETURNING id",
            &[
                &user.email,
                &user.password_hash,
                &user.first_name,
                &user.last_name,
                &user.role,
                &user.onboarding_state,
                &user.pricing_tier,
            ],
        )
        .await?;
    Ok(row.map(|row| row.get(0)))
}

pub async fn touch_last_access(db: &impl GenericClient, user_id: Uuid) -> Result<(), AuthError> {
    sql::execute(
        db,
        "UPDATE auth.users SET last_access = now() WHERE id = $1",
        &[&user_id],
    )
    .await?;
    Ok(())
}

pub async fn insert_refresh_session(
    db: &impl GenericClient,
    token_hash: &[u8],
    user_id: Uuid,
    expires_at: DateTime<Utc>,
) -> Result<(), AuthError> {
    sql::execute(
        db,
        "INSERT INTO auth.refresh_sessions (token_hash, user_id, expires_at) VALUES ($1, $2, $3)",
        &[&token_hash, &user_id, &expires_at],
    )
    .await?;
    Ok(())
}

/// Removes the session and returns its user if it was still valid. Deleting is what makes a
/// refresh token single-use: of two concurrent refreshes, only one gets the row.
pub async fn take_refresh_session(
    db: &impl GenericClient,
    token_hash: &[u8],
    now: DateTime<Utc>,
) -> Result<Option<Uuid>, AuthError> {
    let row = sql::query_opt(db,
            "DELETE FROM auth.refresh_sessions WHERE token_hash = $1 RETURNING user_id, expires_at > $2",
            &[&token_hash, &now],
        )
        .await?;
    Ok(row
        .filter(|row| row.get::<_, bool>(1))
        .map(|row| row.get(0)))
}

pub async fn delete_expired_sessions(
    db: &impl GenericClient,
    now: DateTime<Utc>,
) -> Result<u64, AuthError> {
    Ok(sql::execute(
        db,
        "DELETE FROM auth.refresh_sessions WHERE expires_at <= $1",
        &[&now],
    )
    .await?)
}

pub async fn insert_invite(
    db: &impl GenericClient,
    code_hash: &[u8],
    email: Option<&str>,
    created_by: Uuid,
    expires_at: DateTime<Utc>,
) -> Result<DateTime<Utc>, AuthError> {
    let row = sql::query_one(
        db,
        "INSERT INTO auth.invites (code_hash, email, created_by, expires_at) \
             VALUES ($1, $2, $3, $4) RETURNING expires_at",
        &[&code_hash, &email, &created_by, &expires_at],
    )
    .await?;
    Ok(row.get(0))
}

/// Marks the invite used, if it is unused, unexpired at `now` and meant for this email (or for
/// anyone).
pub async fn redeem_invite(
    db: &impl GenericClient,
    code_hash: &[u8],
    email: &str,
    now: DateTime<Utc>,
) -> Result<Option<Uuid>, AuthError> {
    let row = sql::query_opt(
        db,
        "UPDATE auth.invites SET used_at = $3 \
             WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $3 \
               AND (email IS NULL OR lower(email) = lower($2)) \
             RETURNING id",
        &[&code_hash, &email, &now],
    )
    .await?;
    Ok(row.map(|row| row.get(0)))
}

pub async fn set_invite_user(
    db: &impl GenericClient,
    invite_id: Uuid,
    user_id: Uuid,
) -> Result<(), AuthError> {
    sql::execute(
        db,
        "UPDATE auth.invites SET used_by = $2 WHERE id = $1",
        &[&invite_id, &user_id],
    )
    .await?;
    Ok(())
}

/// The user's onboarding state, locked until the transaction ends.
pub async fn lock_onboarding(
    db: &impl GenericClient,
    user_id: Uuid,
) -> Result<Option<String>, AuthError> {
    let row = sql::query_opt(
        db,
        "SELECT onboarding_state FROM auth.users WHERE id = $1 FOR UPDATE",
        &[&user_id],
    )
    .await?;
    Ok(row.map(|row| row.get(0)))
}

pub async fn set_onboarding(
    db: &impl GenericClient,
    user_id: Uuid,
    state: &str,
) -> Result<(), AuthError> {
    sql::execute(db,
        "UPDATE auth.users SET onboarding_state = $2, onboarding_updated_at = now(), updated_at = now() \
         WHERE id = $1 AND onboarding_state <> $2",
        &[&user_id, &state],
    )
    .await?;
    Ok(())
}

/// What [`sync_user`] changed: whether the role is another one now, and the status after it.
pub struct Synced {
    pub role_changed: bool,
    pub status: String,
}

/// Applies the fields that are set; `None` when the user does not exist. The row is locked
/// while it is read and written, so the change reported is the one this statement made.
pub async fn sync_user(
    db: &impl GenericClient,
    user_id: Uuid,
    role_id: Option<Uuid>,
    status: Option<&str>,
    pricing_tier: Option<&str>,
) -> Result<Option<Synced>, AuthError> {
    let row = sql::query_opt(db,
            "UPDATE auth.users u SET role_id = coalesce($2, u.role_id), status = coalesce($3, u.status), \
             pricing_tier = coalesce($4, u.pricing_tier), updated_at = now() \
             FROM (SELECT id, role_id FROM auth.users WHERE id = $1 FOR UPDATE) old \
             WHERE u.id = old.id \
             RETURNING u.role_id IS DISTINCT FROM old.role_id, u.status",
            &[&user_id, &role_id, &status, &pricing_tier],
        )
        .await?;
    Ok(row.map(|row| Synced {
        role_changed: row.get(0),
        status: row.get(1),
    }))
}

/// Ends every refresh session of the user (their role or status changed); how many there were.
pub async fn revoke_refresh_sessions(
    db: &impl GenericClient,
    user_id: Uuid,
) -> Result<u64, AuthError> {
    Ok(sql::execute(
        db,
        "DELETE FROM auth.refresh_sessions WHERE user_id = $1",
        &[&user_id],
    )
    .await?)
}

pub async fn update_names(
    db: &impl GenericClient,
    user_id: Uuid,
    first_name: Option<&str>,
    last_name: Option<&str>,
) -> Result<(), AuthError> {
    sql::execute(db,
        "UPDATE auth.users SET first_name = coalesce($2, first_name), last_name = coalesce($3, last_name), \
         updated_at = now() WHERE id = $1",
        &[&user_id, &first_name, &last_name],
    )
    .await?;
    Ok(())
}

/// The user's own names and email: `None` leaves a field as it is, `Some(None)` clears a name.
/// `Ok(false)` when another user has the email (any case).
pub async fn update_me(
    db: &impl GenericClient,
    user_id: Uuid,
    first_name: Option<Option<&str>>,
    last_name: Option<Option<&str>>,
    email: Option<&str>,
) -> Result<bool, AuthError> {
    let updated = sql::execute(
        db,
        "UPDATE auth.users SET \
               first_name = CASE WHEN $2::boolean THEN $3::text ELSE first_name END, \
               last_name = CASE WHEN $4::boolean THEN $5::text ELSE last_name END, \
               email = coalesce($6::text, email), updated_at = now() \
             WHERE id = $1",
        &[
            &user_id,
            &first_name.is_some(),
            &first_name.flatten(),
            &last_name.is_some(),
            &last_name.flatten(),
            &email,
        ],
    )
    .await;
    match updated {
        Ok(_) => Ok(true),
        Err(err) if err.code() == Some(&SqlState::UNIQUE_VIOLATION) => Ok(false),
        Err(err) => Err(err.into()),
    }
}

pub async fn insert_impersonation(
    db: &impl GenericClient,
    admin_id: Uuid,
    target_id: Uuid,
    request_id: &str,
    expires_at: DateTime<Utc>,
) -> Result<(), AuthError> {
    sql::execute(db,
        "INSERT INTO auth.impersonation_audit (admin_id, target_id, request_id, expires_at) VALUES ($1, $2, $3, $4)",
        &[&admin_id, &target_id, &request_id, &expires_at],
    )
    .await?;
    Ok(())
}

pub async fn upsert_avatar(
    db: &impl GenericClient,
    user_id: Uuid,
    content_type: &str,
    image: &[u8],
) -> Result<(), AuthError> {
    sql::execute(db,
        "INSERT INTO auth.avatars (user_id, content_type, image) VALUES ($1, $2, $3) \
         ON CONFLICT (user_id) DO UPDATE SET content_type = excluded.content_type, image = excluded.image, updated_at = now()",
        &[&user_id, &content_type, &image],
    )
    .await?;
    Ok(())
}

pub async fn avatar(
    db: &impl GenericClient,
    user_id: Uuid,
) -> Result<Option<(String, Vec<u8>)>, AuthError> {
    let row = sql::query_opt(
        db,
        "SELECT content_type, image FROM auth.avatars WHERE user_id = $1",
        &[&user_id],
    )
    .await?;
    Ok(row.map(|row| (row.get(0), row.get(1))))
}

/// Creates the first administrator unless a user with that email exists. Safe when several
/// replicas start at once.
pub async fn ensure_admin(
    db: &impl GenericClient,
    email: &str,
    password_hash: &str,
) -> Result<bool, AuthError> {
    let created = insert_user(
        db,
        &NewUser {
            email,
            password_hash,
            first_name: Some("Admin"),
            last_name: None,
            role: crate::domain::ADMIN_ROLE,
            onboarding_state: "COMPLETE",
            pricing_tier: "studio",
        },
    )
    .await?;
    Ok(created.is_some())
}

pub async fn admin_exists(db: &impl GenericClient, email: &str) -> Result<bool, AuthError> {
    Ok(sql::query_opt(
        db,
        "SELECT 1 FROM auth.users WHERE lower(email) = lower($1)",
        &[&email],
    )
    .await?
    .is_some())
}

/// Whether the user was mirrored from Directus less than `ttl` before `now`.
pub async fn mirror_is_fresh(
    db: &impl GenericClient,
    id: Uuid,
    ttl: std::time::Duration,
    now: DateTime<Utc>,
) -> Result<bool, AuthError> {
    let ttl_secs = ttl.as_secs_f64();
    let row = sql::query_opt(db,
            "SELECT 1 FROM auth.users WHERE id = $1 AND mirrored_at > $3::timestamptz - make_interval(secs => $2)",
            &[&id, &ttl_secs, &now],
        )
        .await?;
    Ok(row.is_some())
}

pub async fn user_exists(db: &impl GenericClient, id: Uuid) -> Result<bool, AuthError> {
    Ok(
        sql::query_opt(db, "SELECT 1 FROM auth.users WHERE id = $1", &[&id])
            .await?
            .is_some(),
    )
}

/// Writes what Directus says of a user over the mirror, keeping what lives only here (tier,
/// onboarding state, avatar). When the user's Directus role has the name of one of our roles,
/// that role takes Directus' uuid, so that tokens and `/users/me` name the same role.
pub async fn upsert_mirror(
    db: &impl GenericClient,
    user: &crate::directus::DirectusUser,
    now: DateTime<Utc>,
) -> Result<(), AuthError> {
    if let Some(role) = &user.role {
        sql::execute(
            db,
            "UPDATE auth.roles SET id = $1 WHERE name = lower($2) AND id <> $1",
            &[&role.id, &role.name],
        )
        .await?;
    }
    let role_id = user.role.as_ref().map(|role| role.id);
    // Directus allows users without an email (service accounts); ours are unique and required.
    let email = user.email.clone().unwrap_or_else(|| user.id.to_string());
    sql::execute(
        db,
        "INSERT INTO auth.users (id, email, first_name, last_name, role_id, status, mirrored_at) \
         VALUES ($1, $2, $3, $4, (SELECT id FROM auth.roles WHERE id = $5), $6, $7) \
         ON CONFLICT (id) DO UPDATE SET email = excluded.email, first_name = excluded.first_name, \
           last_name = excluded.last_name, role_id = excluded.role_id, status = excluded.status, \
           mirrored_at = excluded.mirrored_at, updated_at = now()",
        &[
            &user.id,
            &email,
            &user.first_name,
            &user.last_name,
            &role_id,
            &user.status,
            &now,
        ],
    )
    .await?;
    Ok(())
}

/// A mirrored user that Directus no longer has: archived here, so its tokens stop working.
pub async fn archive_mirror(
    db: &impl GenericClient,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), AuthError> {
    sql::execute(db,
        "UPDATE auth.users SET status = 'archived', mirrored_at = $2, updated_at = now() WHERE id = $1",
        &[&id, &now],
    )
    .await?;
    Ok(())
}
