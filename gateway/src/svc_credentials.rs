//! Routes owned by svc-credentials: creators' platform logins, captured browser sessions, HITL
//! login requests and the vault of other secrets.
//!
//! The gateway checks only the shape of a request (required fields present, JSON types right,
//! `cookies` an array, `profileData` an object); svc-credentials is the authority on uuids,
//! sizes, kinds and ownership, and answers NOT_FOUND for another user's row. Request keys are
//! camelCase as in the original Node API, each also accepted in snake_case; resource objects in
//! responses are snake_case.
//!
//! Secrets are JSON values: sent as `pb::Secret` JSON text (its Debug prints no value) and parsed
//! back in answers. Neither a body nor a secret is ever logged or put in an error message.

use actix_web::{HttpRequest, HttpResponse, web};
use common::ApiError;
use common::identity::Identity;
use proto::credentials::v1 as pb;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::body::{Json, required};
use crate::errors::ErrorResponse;
use crate::session::{AuthenticatedUser, OwnerOrSystem};
use crate::state::AppState;

/// Entries per page of `GET /api/vault` when `limit` is absent.
pub const DEFAULT_VAULT_LIMIT: u32 = 50;
/// The largest `limit` of `GET /api/vault`.
pub const MAX_VAULT_LIMIT: u32 = 500;

const CREATOR_PROFILE_ID: &str = "creatorProfileId";

// ---------------------------------------------------------------------------------------------
// Shape helpers

/// A JSON value the request cannot do without; `null` counts as missing.
fn required_value(value: Option<Value>, field: &str) -> Result<Value, ApiError> {
    match value {
        None | Some(Value::Null) => Err(ApiError::missing_field(field)),
        Some(value) => Ok(value),
    }
}

/// A JSON value as the plaintext secret svc-credentials seals.
fn seal(value: &Value) -> pb::Secret {
    pb::Secret {
        json: value.to_string(),
    }
}

/// A secret svc-credentials revealed, as JSON; absent or empty is `null`. Text that is not JSON
/// is svc-credentials' fault: logged without its content, answered as a 500.
fn open(secret: Option<pb::Secret>, what: &'static str) -> Result<Value, ApiError> {
    let Some(secret) = secret.filter(|secret| !secret.json.is_empty()) else {
        return Ok(Value::Null);
    };
    serde_json::from_str(&secret.json).map_err(|_| {
        tracing::error!(what, "svc-credentials revealed a secret that is not JSON");
        ApiError::internal()
    })
}

/// A part of an answer svc-credentials must send; its absence is its bug, answered as a 500.
fn present<T>(value: Option<T>, what: &'static str) -> Result<T, ApiError> {
    value.ok_or_else(|| {
        tracing::error!(what, "svc-credentials left out a part of its answer");
        ApiError::internal()
    })
}

/// proto3 has no absent strings; an empty one means "none".
fn non_empty(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

/// Key versions start at 1; 0 means "nothing sealed".
fn key_version(version: u32) -> Option<u32> {
    (version != 0).then_some(version)
}

/// Cached profile stats, a JSON object; empty is `{}`. Not a secret, but not logged either.
fn profile_data(json: &str) -> Value {
    if json.is_empty() {
        return Value::Object(Map::new());
    }
    serde_json::from_str(json).unwrap_or_else(|_| {
        tracing::warn!("svc-credentials sent profile data that is not JSON");
        Value::Null
    })
}

// ---------------------------------------------------------------------------------------------
// Resource objects in answers

/// A creator's account on a platform, with whether login credentials are stored (never the
/// credentials themselves).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CreatorProfileView {
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(format = Uuid)]
    pub user_id: String,
    #[schema(example = "onlyfans")]
    pub platform: String,
    pub username: String,
    pub has_credentials: bool,
    /// Key version the credentials are sealed under; null without credentials.
    #[schema(example = 1)]
    pub credentials_key_version: Option<u32>,
    pub scrape_enabled: bool,
    /// Five-field cron expression; null when none.
    #[schema(example = "0 */6 * * *")]
    pub scrape_frequency: Option<String>,
    /// `idle`, `running`, `success` or `error`.
    #[schema(example = "idle")]
    pub scrape_status: String,
    /// RFC 3339; null when never.
    pub last_scraped_at: Option<String>,
    /// Cached profile stats (a JSON object).
    #[schema(value_type = Object)]
    pub profile_data: Value,
    /// RFC 3339.
    pub created_at: Option<String>,
    /// RFC 3339.
    pub updated_at: Option<String>,
}

impl From<pb::CreatorProfile> for CreatorProfileView {
    fn from(profile: pb::CreatorProfile) -> Self {
        Self {
            profile_data: profile_data(&profile.profile_data_json),
            id: profile.id,
            user_id: profile.user_id,
            platform: profile.platform,
            username: profile.username,
            has_credentials: profile.has_credentials,
            credentials_key_version: key_version(profile.credentials_key_version),
            scrape_enabled: profile.scrape_enabled,
            scrape_frequency: non_empty(profile.scrape_frequency),
            scrape_status: profile.scrape_status,
            last_scraped_at: non_empty(profile.last_scraped_at),
            created_at: non_empty(profile.created_at),
            updated_at: non_empty(profile.updated_at),
        }
    }
}

/// A captured browser session, without its cookies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PlatformSessionInfoView {
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(format = Uuid)]
    pub creator_profile_id: String,
    #[schema(example = "onlyfans")]
    pub platform: String,
    pub user_agent: String,
    /// RFC 3339.
    pub captured_at: Option<String>,
    /// RFC 3339, estimated; null when unknown.
    pub expires_at: Option<String>,
    /// RFC 3339; null when never used.
    pub last_used_at: Option<String>,
    /// Key version the cookies are sealed under.
    #[schema(example = 1)]
    pub key_version: Option<u32>,
    /// HITL requests this capture completed.
    #[schema(example = 0)]
    pub completed_hitl_sessions: u32,
}

impl From<pb::PlatformSessionInfo> for PlatformSessionInfoView {
    fn from(info: pb::PlatformSessionInfo) -> Self {
        Self {
            id: info.id,
            creator_profile_id: info.creator_profile_id,
            platform: info.platform,
            user_agent: info.user_agent,
            captured_at: non_empty(info.captured_at),
            expires_at: non_empty(info.expires_at),
            last_used_at: non_empty(info.last_used_at),
            key_version: key_version(info.key_version),
            completed_hitl_sessions: info.completed_hitl_sessions,
        }
    }
}

/// A captured browser session with its cookies (revealed: the read is audited).
#[derive(Serialize, ToSchema)]
pub struct PlatformSessionView {
    #[serde(flatten)]
    pub info: PlatformSessionInfoView,
    /// The cookies as the browser gave them (a JSON array).
    #[schema(value_type = Vec<Object>)]
    pub cookies: Value,
}

/// A request to the creator to log in by hand (human in the loop).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct HitlSessionView {
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(format = Uuid)]
    pub creator_profile_id: String,
    #[schema(example = "onlyfans")]
    pub platform: String,
    /// `pending`, `completed`, `expired` or `failed`.
    #[schema(example = "pending")]
    pub status: String,
    /// RFC 3339.
    pub requested_at: Option<String>,
    /// RFC 3339; null while not completed.
    pub completed_at: Option<String>,
    /// Null when none.
    pub notes: Option<String>,
}

impl From<pb::HitlSession> for HitlSessionView {
    fn from(session: pb::HitlSession) -> Self {
        Self {
            id: session.id,
            creator_profile_id: session.creator_profile_id,
            platform: session.platform,
            status: session.status,
            requested_at: non_empty(session.requested_at),
            completed_at: non_empty(session.completed_at),
            notes: non_empty(session.notes),
        }
    }
}

/// A vault entry, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct VaultEntryView {
    #[schema(format = Uuid)]
    pub id: String,
    pub name: String,
    /// `login`, `download`, `api_key`, `cookies`, `token` or `other`.
    #[schema(example = "download")]
    pub kind: String,
    /// Null when none.
    pub platform: Option<String>,
    /// Null when the entry belongs to no creator profile.
    #[schema(format = Uuid)]
    pub creator_profile_id: Option<String>,
    /// Key version the secret is sealed under.
    #[schema(example = 1)]
    pub key_version: Option<u32>,
    /// RFC 3339.
    pub created_at: Option<String>,
    /// RFC 3339.
    pub updated_at: Option<String>,
    /// RFC 3339; null when never rotated.
    pub rotated_at: Option<String>,
}

impl From<pb::VaultEntry> for VaultEntryView {
    fn from(entry: pb::VaultEntry) -> Self {
        Self {
            id: entry.id,
            name: entry.name,
            kind: entry.kind,
            platform: non_empty(entry.platform),
            creator_profile_id: non_empty(entry.creator_profile_id),
            key_version: key_version(entry.key_version),
            created_at: non_empty(entry.created_at),
            updated_at: non_empty(entry.updated_at),
            rotated_at: non_empty(entry.rotated_at),
        }
    }
}

/// A vault entry with its secret (revealed: the read is audited).
#[derive(Serialize, ToSchema)]
pub struct RevealedVaultEntryView {
    #[serde(flatten)]
    pub entry: VaultEntryView,
    /// The secret, as the JSON value it was stored as.
    #[schema(value_type = Value)]
    pub secret: Value,
}

// ---------------------------------------------------------------------------------------------
// Answers

/// `{ok, success, profile}`
#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileResponse {
    #[schema(example = true)]
    pub ok: bool,
    #[schema(example = true)]
    pub success: bool,
    pub profile: CreatorProfileView,
}

impl From<pb::CreatorProfile> for ProfileResponse {
    fn from(profile: pb::CreatorProfile) -> Self {
        Self {
            ok: true,
            success: true,
            profile: profile.into(),
        }
    }
}

/// `{ok, success, credentials, key_version}`
#[derive(Serialize, ToSchema)]
pub struct RevealedCredentialsResponse {
    #[schema(example = true)]
    pub ok: bool,
    #[schema(example = true)]
    pub success: bool,
    /// The login credentials, as the JSON value they were stored as; null when none.
    #[schema(value_type = Value)]
    pub credentials: Value,
    /// Key version the credentials are sealed under; null when none.
    #[schema(example = 1)]
    pub key_version: Option<u32>,
}

impl TryFrom<pb::RevealedCredentials> for RevealedCredentialsResponse {
    type Error = ApiError;

    fn try_from(revealed: pb::RevealedCredentials) -> Result<Self, ApiError> {
        Ok(Self {
            ok: true,
            success: true,
            credentials: open(revealed.credentials, "credentials")?,
            key_version: key_version(revealed.key_version),
        })
    }
}

/// `{ok, success, credential}`
#[derive(Serialize, ToSchema)]
pub struct RevealedVaultEntryResponse {
    #[schema(example = true)]
    pub ok: bool,
    #[schema(example = true)]
    pub success: bool,
    pub credential: RevealedVaultEntryView,
}

impl TryFrom<pb::RevealedVaultEntry> for RevealedVaultEntryResponse {
    type Error = ApiError;

    fn try_from(revealed: pb::RevealedVaultEntry) -> Result<Self, ApiError> {
        let entry = present(revealed.entry, "vault entry")?;
        Ok(Self {
            ok: true,
            success: true,
            credential: RevealedVaultEntryView {
                entry: entry.into(),
                secret: open(revealed.secret, "vault secret")?,
            },
        })
    }
}

/// `{ok, success, session}` with the cookies.
#[derive(Serialize, ToSchema)]
pub struct PlatformSessionResponse {
    #[schema(example = true)]
    pub ok: bool,
    #[schema(example = true)]
    pub success: bool,
    pub session: PlatformSessionView,
}

impl TryFrom<pb::PlatformSession> for PlatformSessionResponse {
    type Error = ApiError;

    fn try_from(session: pb::PlatformSession) -> Result<Self, ApiError> {
        let info = present(session.info, "platform session")?;
        Ok(Self {
            ok: true,
            success: true,
            session: PlatformSessionView {
                info: info.into(),
                cookies: open(session.cookies, "cookies")?,
            },
        })
    }
}

/// `{ok, success, session}` without the cookies.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionStoredResponse {
    #[schema(example = true)]
    pub ok: bool,
    #[schema(example = true)]
    pub success: bool,
    pub session: PlatformSessionInfoView,
}

impl From<pb::PlatformSessionInfo> for SessionStoredResponse {
    fn from(info: pb::PlatformSessionInfo) -> Self {
        Self {
            ok: true,
            success: true,
            session: info.into(),
        }
    }
}

/// `{ok, success, hitl_session}`
#[derive(Debug, Serialize, ToSchema)]
pub struct HitlResponse {
    #[schema(example = true)]
    pub ok: bool,
    #[schema(example = true)]
    pub success: bool,
    pub hitl_session: HitlSessionView,
}

impl From<pb::HitlSession> for HitlResponse {
    fn from(session: pb::HitlSession) -> Self {
        Self {
            ok: true,
            success: true,
            hitl_session: session.into(),
        }
    }
}

/// Counts of the signed-in user's vault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct VaultListMeta {
    /// Entries of the user.
    #[schema(example = 3)]
    pub total_count: u64,
    /// Entries of the user matching `kind`.
    #[schema(example = 1)]
    pub filter_count: u64,
}

/// `{ok, success, data, meta}`
#[derive(Debug, Serialize, ToSchema)]
pub struct VaultListResponse {
    #[schema(example = true)]
    pub ok: bool,
    #[schema(example = true)]
    pub success: bool,
    pub data: Vec<VaultEntryView>,
    pub meta: VaultListMeta,
}

impl From<pb::VaultList> for VaultListResponse {
    fn from(list: pb::VaultList) -> Self {
        Self {
            ok: true,
            success: true,
            data: list.entries.into_iter().map(Into::into).collect(),
            meta: VaultListMeta {
                total_count: list.total_count,
                filter_count: list.filter_count,
            },
        }
    }
}

/// `{ok, success, data}`
#[derive(Debug, Serialize, ToSchema)]
pub struct VaultEntryResponse {
    #[schema(example = true)]
    pub ok: bool,
    #[schema(example = true)]
    pub success: bool,
    pub data: VaultEntryView,
}

impl From<pb::VaultEntry> for VaultEntryResponse {
    fn from(entry: pb::VaultEntry) -> Self {
        Self {
            ok: true,
            success: true,
            data: entry.into(),
        }
    }
}

/// `{ok, success, id}`
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedResponse {
    #[schema(example = true)]
    pub ok: bool,
    #[schema(example = true)]
    pub success: bool,
    /// The deleted entry.
    #[schema(format = Uuid)]
    pub id: String,
}

// ---------------------------------------------------------------------------------------------
// Request bodies: every field optional (see `crate::body`); no Debug, they may carry secrets.

/// `{creatorProfileId, credentials}`
#[derive(Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoreCredentialsBody {
    /// The creator profile; also accepted as `creator_profile_id`.
    #[serde(alias = "creator_profile_id")]
    #[schema(value_type = String, format = Uuid, required = true)]
    pub creator_profile_id: Option<String>,
    /// The login credentials: any JSON value but null (usually an object such as
    /// `{"email": "…", "password": "…"}`). Replaces those stored.
    #[schema(value_type = Value, required = true)]
    pub credentials: Option<Value>,
}

/// `{creatorProfileId}`
#[derive(Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProfileRefBody {
    /// The creator profile; also accepted as `creator_profile_id`.
    #[serde(alias = "creator_profile_id")]
    #[schema(value_type = String, format = Uuid, required = true)]
    pub creator_profile_id: Option<String>,
}

/// `{platform, username, credentials?, scrapeEnabled?, scrapeFrequency?, profileData?}`
#[derive(Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateProfileBody {
    /// Lower-case platform name: `onlyfans`, `fansly`, …
    #[schema(value_type = String, required = true, example = "onlyfans")]
    pub platform: Option<String>,
    #[schema(value_type = String, required = true)]
    pub username: Option<String>,
    /// The login credentials (any JSON value); absent or null: none yet.
    #[schema(value_type = Value, required = false)]
    pub credentials: Option<Value>,
    /// Default false. Also accepted as `scrape_enabled`.
    #[serde(alias = "scrape_enabled")]
    pub scrape_enabled: Option<bool>,
    /// Five-field cron expression. Also accepted as `scrape_frequency`.
    #[serde(alias = "scrape_frequency")]
    #[schema(example = "0 */6 * * *")]
    pub scrape_frequency: Option<String>,
    /// A JSON object of cached profile stats; default `{}`. Also accepted as `profile_data`.
    #[serde(alias = "profile_data")]
    #[schema(value_type = Option<Object>)]
    pub profile_data: Option<Value>,
}

/// `{id}`
#[derive(Default, Deserialize, ToSchema)]
pub struct VaultEntryRefBody {
    /// The vault entry.
    #[schema(value_type = String, format = Uuid, required = true)]
    pub id: Option<String>,
}

/// `{creatorProfileId, cookies, userAgent, expiresAt?}`
#[derive(Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorePlatformSessionBody {
    /// The creator profile; also accepted as `creator_profile_id`.
    #[serde(alias = "creator_profile_id")]
    #[schema(value_type = String, format = Uuid, required = true)]
    pub creator_profile_id: Option<String>,
    /// The cookies as the browser gave them: a JSON array.
    #[schema(value_type = Vec<Object>, required = true)]
    pub cookies: Option<Value>,
    /// The browser's user agent. Also accepted as `user_agent`.
    #[serde(alias = "user_agent")]
    #[schema(value_type = String, required = true)]
    pub user_agent: Option<String>,
    /// RFC 3339, the estimated expiry; absent: unknown. Also accepted as `expires_at`.
    #[serde(alias = "expires_at")]
    #[schema(example = "2026-12-01T00:00:00Z")]
    pub expires_at: Option<String>,
}

/// `{creatorProfileId, notes?}`
#[derive(Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HitlRequestBody {
    /// The creator profile; also accepted as `creator_profile_id`.
    #[serde(alias = "creator_profile_id")]
    #[schema(value_type = String, format = Uuid, required = true)]
    pub creator_profile_id: Option<String>,
    /// For the creator: what to log in for.
    pub notes: Option<String>,
}

/// `{name, kind?, platform?, creatorProfileId?, secret}`
#[derive(Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateVaultEntryBody {
    #[schema(value_type = String, required = true, example = "Dropbox download link")]
    pub name: Option<String>,
    /// `login`, `download`, `api_key`, `cookies`, `token` or `other` (default).
    #[schema(example = "download")]
    pub kind: Option<String>,
    pub platform: Option<String>,
    /// The creator profile the entry belongs to, if any; also accepted as `creator_profile_id`.
    #[serde(alias = "creator_profile_id")]
    #[schema(format = Uuid)]
    pub creator_profile_id: Option<String>,
    /// The secret: any JSON value but null.
    #[schema(value_type = Value, required = true)]
    pub secret: Option<Value>,
}

/// `{name?, kind?, platform?, secret?}`, at least one of them.
#[derive(Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateVaultEntryBody {
    pub name: Option<String>,
    /// `login`, `download`, `api_key`, `cookies`, `token` or `other`.
    pub kind: Option<String>,
    pub platform: Option<String>,
    /// A new secret (any JSON value but null); sealed under the newest key version.
    #[schema(value_type = Value, required = false)]
    pub secret: Option<Value>,
}

/// `GET /api/vault`'s query.
#[derive(Debug, Clone, Default, PartialEq, Eq, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VaultQuery {
    /// Only entries of this kind; absent or empty: all.
    #[param(example = "download")]
    pub kind: Option<String>,
    /// Entries per page, 1 to 500; default 50.
    #[param(minimum = 1, maximum = 500, example = 50)]
    pub limit: Option<u32>,
    /// Entries to skip; default 0.
    #[param(minimum = 0, example = 0)]
    pub offset: Option<u32>,
}

impl VaultQuery {
    /// Reads a query string; other parameters (`access_token`) are ignored, empty values count
    /// as absent, and the last of a repeated parameter wins.
    pub fn parse(query: &str) -> Result<Self, ApiError> {
        let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
            .map_err(|_| ApiError::invalid_field("query", "the query string is not valid"))?
            .into_inner();
        let mut parsed = Self::default();
        for (key, value) in pairs {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            match key.as_str() {
                "kind" => parsed.kind = Some(value.to_owned()),
                "limit" => {
                    let limit = value
                        .parse::<u32>()
                        .ok()
                        .filter(|limit| (1..=MAX_VAULT_LIMIT).contains(limit))
                        .ok_or_else(|| {
                            ApiError::invalid_field(
                                "limit",
                                format!("limit must be an integer from 1 to {MAX_VAULT_LIMIT}"),
                            )
                        })?;
                    parsed.limit = Some(limit);
                }
                "offset" => {
                    let offset = value.parse::<u32>().map_err(|_| {
                        ApiError::invalid_field(
                            "offset",
                            format!("offset must be an integer from 0 to {}", u32::MAX),
                        )
                    })?;
                    parsed.offset = Some(offset);
                }
                _ => {}
            }
        }
        Ok(parsed)
    }
}

// ---------------------------------------------------------------------------------------------
// The routes, without HTTP

/// `POST /api/credentials/store` for `identity`.
pub async fn store_credentials_for(
    state: &AppState,
    identity: &Identity,
    body: StoreCredentialsBody,
) -> Result<ProfileResponse, ApiError> {
    let creator_profile_id = required(body.creator_profile_id, CREATOR_PROFILE_ID)?;
    let credentials = required_value(body.credentials, "credentials")?;
    let request = pb::StoreCredentialsRequest {
        creator_profile_id,
        credentials: Some(seal(&credentials)),
    };
    let profile = state
        .credentials
        .call(identity, request, |mut client, request| async move {
            client.store_credentials(request).await
        })
        .await?;
    Ok(profile.into())
}

/// `POST /api/credentials/reveal` for `identity`.
pub async fn reveal_credentials_for(
    state: &AppState,
    identity: &Identity,
    body: ProfileRefBody,
) -> Result<RevealedCredentialsResponse, ApiError> {
    let request = pb::ProfileRef {
        creator_profile_id: required(body.creator_profile_id, CREATOR_PROFILE_ID)?,
    };
    let revealed = state
        .credentials
        .call(identity, request, |mut client, request| async move {
            client.reveal_credentials(request).await
        })
        .await?;
    revealed.try_into()
}

/// `POST /api/credentials/create-profile` for `identity`.
pub async fn create_profile_for(
    state: &AppState,
    identity: &Identity,
    body: CreateProfileBody,
) -> Result<ProfileResponse, ApiError> {
    let platform = required(body.platform, "platform")?;
    let username = required(body.username, "username")?;
    let profile_data_json = match body.profile_data {
        None | Some(Value::Null) => String::new(),
        Some(data @ Value::Object(_)) => data.to_string(),
        Some(_) => {
            return Err(ApiError::invalid_field(
                "profileData",
                "profileData must be a JSON object",
            ));
        }
    };
    let request = pb::CreateProfileRequest {
        platform,
        username,
        credentials: body
            .credentials
            .filter(|credentials| !credentials.is_null())
            .map(|credentials| seal(&credentials)),
        scrape_enabled: body.scrape_enabled.unwrap_or(false),
        scrape_frequency: body.scrape_frequency.unwrap_or_default(),
        profile_data_json,
    };
    let profile = state
        .credentials
        .call(identity, request, |mut client, request| async move {
            client.create_profile(request).await
        })
        .await?;
    Ok(profile.into())
}

/// `POST /api/credentials/reveal-download-cred` for `identity`.
pub async fn reveal_vault_entry_for(
    state: &AppState,
    identity: &Identity,
    body: VaultEntryRefBody,
) -> Result<RevealedVaultEntryResponse, ApiError> {
    let request = pb::VaultEntryRef {
        id: required(body.id, "id")?,
    };
    let revealed = state
        .credentials
        .call(identity, request, |mut client, request| async move {
            client.reveal_vault_entry(request).await
        })
        .await?;
    revealed.try_into()
}

/// `POST /api/credentials/get-platform-session` for `identity`.
pub async fn get_platform_session_for(
    state: &AppState,
    identity: &Identity,
    body: ProfileRefBody,
) -> Result<PlatformSessionResponse, ApiError> {
    let request = pb::ProfileRef {
        creator_profile_id: required(body.creator_profile_id, CREATOR_PROFILE_ID)?,
    };
    let session = state
        .credentials
        .call(identity, request, |mut client, request| async move {
            client.get_platform_session(request).await
        })
        .await?;
    session.try_into()
}

/// `POST /api/credentials/store-platform-session` for `identity`.
pub async fn store_platform_session_for(
    state: &AppState,
    identity: &Identity,
    body: StorePlatformSessionBody,
) -> Result<SessionStoredResponse, ApiError> {
    let creator_profile_id = required(body.creator_profile_id, CREATOR_PROFILE_ID)?;
    let cookies = required_value(body.cookies, "cookies")?;
    if !cookies.is_array() {
        return Err(ApiError::invalid_field(
            "cookies",
            "cookies must be a JSON array",
        ));
    }
    let user_agent = required(body.user_agent, "userAgent")?;
    let request = pb::StorePlatformSessionRequest {
        creator_profile_id,
        cookies: Some(seal(&cookies)),
        user_agent,
        expires_at: body.expires_at.unwrap_or_default(),
    };
    let info = state
        .credentials
        .call(identity, request, |mut client, request| async move {
            client.store_platform_session(request).await
        })
        .await?;
    Ok(info.into())
}

/// `POST /api/credentials/hitl-request` for `identity`.
pub async fn request_hitl_login_for(
    state: &AppState,
    identity: &Identity,
    body: HitlRequestBody,
) -> Result<HitlResponse, ApiError> {
    let request = pb::RequestHitlLoginRequest {
        creator_profile_id: required(body.creator_profile_id, CREATOR_PROFILE_ID)?,
        notes: body.notes.unwrap_or_default(),
    };
    let session = state
        .credentials
        .call(identity, request, |mut client, request| async move {
            client.request_hitl_login(request).await
        })
        .await?;
    Ok(session.into())
}

/// `GET /api/vault` for `identity`, once the query is read.
pub async fn list_vault_for(
    state: &AppState,
    identity: &Identity,
    query: VaultQuery,
) -> Result<VaultListResponse, ApiError> {
    let request = pb::ListVaultRequest {
        limit: query.limit.unwrap_or(DEFAULT_VAULT_LIMIT),
        offset: query.offset.unwrap_or(0),
        kind: query.kind.unwrap_or_default(),
    };
    let list = state
        .credentials
        .call(identity, request, |mut client, request| async move {
            client.list_vault(request).await
        })
        .await?;
    Ok(list.into())
}

/// `POST /api/vault` for `identity`.
pub async fn create_vault_entry_for(
    state: &AppState,
    identity: &Identity,
    body: CreateVaultEntryBody,
) -> Result<VaultEntryResponse, ApiError> {
    let name = required(body.name, "name")?;
    let secret = required_value(body.secret, "secret")?;
    let request = pb::CreateVaultEntryRequest {
        name,
        kind: body.kind.unwrap_or_default(),
        platform: body.platform.unwrap_or_default(),
        creator_profile_id: body.creator_profile_id.unwrap_or_default(),
        secret: Some(seal(&secret)),
    };
    let entry = state
        .credentials
        .call(identity, request, |mut client, request| async move {
            client.create_vault_entry(request).await
        })
        .await?;
    Ok(entry.into())
}

/// `PATCH /api/vault/{id}` for `identity`.
pub async fn update_vault_entry_for(
    state: &AppState,
    identity: &Identity,
    id: String,
    body: UpdateVaultEntryBody,
) -> Result<VaultEntryResponse, ApiError> {
    let secret = body.secret.filter(|secret| !secret.is_null());
    if body.name.is_none() && body.kind.is_none() && body.platform.is_none() && secret.is_none() {
        return Err(ApiError::invalid_field(
            "body",
            "nothing to update: send name, kind, platform or secret",
        ));
    }
    let request = pb::UpdateVaultEntryRequest {
        id,
        name: body.name,
        kind: body.kind,
        platform: body.platform,
        secret: secret.as_ref().map(seal),
    };
    let entry = state
        .credentials
        .call(identity, request, |mut client, request| async move {
            client.update_vault_entry(request).await
        })
        .await?;
    Ok(entry.into())
}

/// `DELETE /api/vault/{id}` for `identity`.
pub async fn delete_vault_entry_for(
    state: &AppState,
    identity: &Identity,
    id: String,
) -> Result<DeletedResponse, ApiError> {
    let deleted = state
        .credentials
        .call(
            identity,
            pb::VaultEntryRef { id },
            |mut client, request| async move { client.delete_vault_entry(request).await },
        )
        .await?;
    Ok(DeletedResponse {
        ok: true,
        success: true,
        id: deleted.id,
    })
}

/// `POST /api/vault/{id}/rotate` for `identity`.
pub async fn rotate_vault_entry_for(
    state: &AppState,
    identity: &Identity,
    id: String,
) -> Result<VaultEntryResponse, ApiError> {
    let entry = state
        .credentials
        .call(
            identity,
            pb::VaultEntryRef { id },
            |mut client, request| async move { client.rotate_vault_entry(request).await },
        )
        .await?;
    Ok(entry.into())
}

// ---------------------------------------------------------------------------------------------
// Handlers

/// Stores (replaces) a creator profile's login credentials, sealed under the newest key.
/// For the profile's owner, or a server-to-server caller with `X-RBAC-SYNC-SECRET`.
#[utoipa::path(
    post,
    path = "/api/credentials/store",
    tag = "credentials",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = []), ("rbac_sync_secret" = [])),
    request_body = StoreCredentialsBody,
    responses(
        (status = 200, description = "The profile, now with credentials", body = ProfileResponse),
        (status = 400, description = "`missing_field` (`creatorProfileId`, `credentials`) or `invalid_body`, with the `field`; `token_ambiguous`", body = ErrorResponse),
        (status = 401, description = "`invalid_secret` (a wrong X-RBAC-SYNC-SECRET; the token is then not looked at), `token_missing`, `token_expired`, `token_invalid`, `user_suspended`", body = ErrorResponse),
        (status = 404, description = "`not_found`: no such profile, or another user's", body = ErrorResponse),
        (status = 413, description = "`payload_too_large`", body = ErrorResponse),
        (status = 503, description = "`service_unavailable`: svc-auth or svc-credentials down or late", body = ErrorResponse),
    )
)]
pub async fn store_credentials(
    OwnerOrSystem(identity): OwnerOrSystem,
    state: web::Data<AppState>,
    Json(body): Json<StoreCredentialsBody>,
) -> Result<HttpResponse, ApiError> {
    let answer = store_credentials_for(&state, &identity, body).await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// Reveals a creator profile's login credentials (audited).
/// For the profile's owner, or a server-to-server caller with `X-RBAC-SYNC-SECRET`.
#[utoipa::path(
    post,
    path = "/api/credentials/reveal",
    tag = "credentials",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = []), ("rbac_sync_secret" = [])),
    request_body = ProfileRefBody,
    responses(
        (status = 200, description = "The credentials, as the JSON value they were stored as", body = RevealedCredentialsResponse),
        (status = 400, description = "`missing_field` (`creatorProfileId`) or `invalid_body`, with the `field`; `token_ambiguous`", body = ErrorResponse),
        (status = 401, description = "`invalid_secret`, `token_missing`, `token_expired`, `token_invalid`, `user_suspended`", body = ErrorResponse),
        (status = 404, description = "`not_found`: no such profile, another user's, or no credentials stored", body = ErrorResponse),
        (status = 503, description = "`service_unavailable`: svc-auth or svc-credentials down or late", body = ErrorResponse),
    )
)]
pub async fn reveal_credentials(
    OwnerOrSystem(identity): OwnerOrSystem,
    state: web::Data<AppState>,
    Json(body): Json<ProfileRefBody>,
) -> Result<HttpResponse, ApiError> {
    let answer = reveal_credentials_for(&state, &identity, body).await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// Creates a creator profile (a platform account) for the signed-in user, with its login
/// credentials if given.
#[utoipa::path(
    post,
    path = "/api/credentials/create-profile",
    tag = "credentials",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    request_body = CreateProfileBody,
    responses(
        (status = 200, description = "The new profile", body = ProfileResponse),
        (status = 400, description = "`missing_field` (`platform`, `username`) or `invalid_body`, with the `field` (`profileData` not an object, an unknown platform, a bad cron expression…); `token_ambiguous`", body = ErrorResponse),
        (status = 401, description = "`token_missing`, `token_expired`, `token_invalid`, `user_suspended`", body = ErrorResponse),
        (status = 409, description = "`profile_exists` (`field`: `username`): the user already has this account on this platform", body = ErrorResponse),
        (status = 413, description = "`payload_too_large`", body = ErrorResponse),
        (status = 503, description = "`service_unavailable`: svc-auth or svc-credentials down or late", body = ErrorResponse),
    )
)]
pub async fn create_profile(
    AuthenticatedUser(identity): AuthenticatedUser,
    state: web::Data<AppState>,
    Json(body): Json<CreateProfileBody>,
) -> Result<HttpResponse, ApiError> {
    let answer = create_profile_for(&state, &identity, body).await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// Reveals one of the signed-in user's vault entries with its secret (audited).
#[utoipa::path(
    post,
    path = "/api/credentials/reveal-download-cred",
    tag = "credentials",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    request_body = VaultEntryRefBody,
    responses(
        (status = 200, description = "The entry and its secret", body = RevealedVaultEntryResponse),
        (status = 400, description = "`missing_field` (`id`) or `invalid_body`, with the `field`; `token_ambiguous`", body = ErrorResponse),
        (status = 401, description = "`token_missing`, `token_expired`, `token_invalid`, `user_suspended`", body = ErrorResponse),
        (status = 404, description = "`not_found`: no such entry, or another user's", body = ErrorResponse),
        (status = 503, description = "`service_unavailable`: svc-auth or svc-credentials down or late", body = ErrorResponse),
    )
)]
pub async fn reveal_download_credential(
    AuthenticatedUser(identity): AuthenticatedUser,
    state: web::Data<AppState>,
    Json(body): Json<VaultEntryRefBody>,
) -> Result<HttpResponse, ApiError> {
    let answer = reveal_vault_entry_for(&state, &identity, body).await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// Reveals a creator profile's captured browser session with its cookies (audited; marks the
/// session as used). For the profile's owner, or a server-to-server caller.
#[utoipa::path(
    post,
    path = "/api/credentials/get-platform-session",
    tag = "credentials",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = []), ("rbac_sync_secret" = [])),
    request_body = ProfileRefBody,
    responses(
        (status = 200, description = "The session and its cookies", body = PlatformSessionResponse),
        (status = 400, description = "`missing_field` (`creatorProfileId`) or `invalid_body`, with the `field`; `token_ambiguous`", body = ErrorResponse),
        (status = 401, description = "`invalid_secret`, `token_missing`, `token_expired`, `token_invalid`, `user_suspended`", body = ErrorResponse),
        (status = 404, description = "`not_found`: no such profile, another user's, or no session captured", body = ErrorResponse),
        (status = 503, description = "`service_unavailable`: svc-auth or svc-credentials down or late", body = ErrorResponse),
    )
)]
pub async fn get_platform_session(
    OwnerOrSystem(identity): OwnerOrSystem,
    state: web::Data<AppState>,
    Json(body): Json<ProfileRefBody>,
) -> Result<HttpResponse, ApiError> {
    let answer = get_platform_session_for(&state, &identity, body).await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// Replaces a creator profile's captured browser session and completes its pending HITL
/// requests. For the profile's owner, or a server-to-server caller.
#[utoipa::path(
    post,
    path = "/api/credentials/store-platform-session",
    tag = "credentials",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = []), ("rbac_sync_secret" = [])),
    request_body = StorePlatformSessionBody,
    responses(
        (status = 200, description = "The stored session, without its cookies", body = SessionStoredResponse),
        (status = 400, description = "`missing_field` (`creatorProfileId`, `cookies`, `userAgent`) or `invalid_body`, with the `field` (`cookies` not an array, `expiresAt` not RFC 3339…); `token_ambiguous`", body = ErrorResponse),
        (status = 401, description = "`invalid_secret`, `token_missing`, `token_expired`, `token_invalid`, `user_suspended`", body = ErrorResponse),
        (status = 404, description = "`not_found`: no such profile, or another user's", body = ErrorResponse),
        (status = 413, description = "`payload_too_large`", body = ErrorResponse),
        (status = 503, description = "`service_unavailable`: svc-auth or svc-credentials down or late", body = ErrorResponse),
    )
)]
pub async fn store_platform_session(
    OwnerOrSystem(identity): OwnerOrSystem,
    state: web::Data<AppState>,
    Json(body): Json<StorePlatformSessionBody>,
) -> Result<HttpResponse, ApiError> {
    let answer = store_platform_session_for(&state, &identity, body).await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// Asks the creator to log in by hand (human in the loop); at most one pending request per
/// profile: while one is pending, it is the answer. For the profile's owner, or a
/// server-to-server caller.
#[utoipa::path(
    post,
    path = "/api/credentials/hitl-request",
    tag = "credentials",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = []), ("rbac_sync_secret" = [])),
    request_body = HitlRequestBody,
    responses(
        (status = 200, description = "The new HITL request, or the one already pending", body = HitlResponse),
        (status = 400, description = "`missing_field` (`creatorProfileId`) or `invalid_body`, with the `field`; `token_ambiguous`", body = ErrorResponse),
        (status = 401, description = "`invalid_secret`, `token_missing`, `token_expired`, `token_invalid`, `user_suspended`", body = ErrorResponse),
        (status = 404, description = "`not_found`: no such profile, or another user's", body = ErrorResponse),
        (status = 503, description = "`service_unavailable`: svc-auth or svc-credentials down or late", body = ErrorResponse),
    )
)]
pub async fn request_hitl_login(
    OwnerOrSystem(identity): OwnerOrSystem,
    state: web::Data<AppState>,
    Json(body): Json<HitlRequestBody>,
) -> Result<HttpResponse, ApiError> {
    let answer = request_hitl_login_for(&state, &identity, body).await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// Lists the signed-in user's vault entries (without their secrets), newest first.
#[utoipa::path(
    get,
    path = "/api/vault",
    tag = "credentials",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    params(VaultQuery),
    responses(
        (status = 200, description = "A page of entries with the counts", body = VaultListResponse),
        (status = 400, description = "`invalid_body` with the `field`: `limit` not an integer from 1 to 500, `offset` not a non-negative integer, an unknown `kind`; `token_ambiguous`", body = ErrorResponse),
        (status = 401, description = "`token_missing`, `token_expired`, `token_invalid`, `user_suspended`", body = ErrorResponse),
        (status = 503, description = "`service_unavailable`: svc-auth or svc-credentials down or late", body = ErrorResponse),
    )
)]
pub async fn list_vault(
    AuthenticatedUser(identity): AuthenticatedUser,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query = VaultQuery::parse(req.query_string())?;
    let answer = list_vault_for(&state, &identity, query).await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// Adds a secret to the signed-in user's vault.
#[utoipa::path(
    post,
    path = "/api/vault",
    tag = "credentials",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    request_body = CreateVaultEntryBody,
    responses(
        (status = 200, description = "The new entry, without its secret", body = VaultEntryResponse),
        (status = 400, description = "`missing_field` (`name`, `secret`) or `invalid_body`, with the `field` (an unknown `kind`…); `token_ambiguous`", body = ErrorResponse),
        (status = 401, description = "`token_missing`, `token_expired`, `token_invalid`, `user_suspended`", body = ErrorResponse),
        (status = 404, description = "`not_found`: `creatorProfileId` is no profile of the user's", body = ErrorResponse),
        (status = 413, description = "`payload_too_large`", body = ErrorResponse),
        (status = 503, description = "`service_unavailable`: svc-auth or svc-credentials down or late", body = ErrorResponse),
    )
)]
pub async fn create_vault_entry(
    AuthenticatedUser(identity): AuthenticatedUser,
    state: web::Data<AppState>,
    Json(body): Json<CreateVaultEntryBody>,
) -> Result<HttpResponse, ApiError> {
    let answer = create_vault_entry_for(&state, &identity, body).await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// Changes a vault entry's name, kind, platform or secret (a new secret is sealed under the
/// newest key version).
#[utoipa::path(
    patch,
    path = "/api/vault/{id}",
    tag = "credentials",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "The vault entry (uuid)")),
    request_body = UpdateVaultEntryBody,
    responses(
        (status = 200, description = "The entry, without its secret", body = VaultEntryResponse),
        (status = 400, description = "`invalid_body` with the `field`: `body` when nothing is sent to update, or a field of the wrong type or value; `token_ambiguous`", body = ErrorResponse),
        (status = 401, description = "`token_missing`, `token_expired`, `token_invalid`, `user_suspended`", body = ErrorResponse),
        (status = 404, description = "`not_found`: no such entry, or another user's", body = ErrorResponse),
        (status = 413, description = "`payload_too_large`", body = ErrorResponse),
        (status = 503, description = "`service_unavailable`: svc-auth or svc-credentials down or late", body = ErrorResponse),
    )
)]
pub async fn update_vault_entry(
    AuthenticatedUser(identity): AuthenticatedUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
    Json(body): Json<UpdateVaultEntryBody>,
) -> Result<HttpResponse, ApiError> {
    let answer = update_vault_entry_for(&state, &identity, id.into_inner(), body).await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// Deletes a vault entry.
#[utoipa::path(
    delete,
    path = "/api/vault/{id}",
    tag = "credentials",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "The vault entry (uuid)")),
    responses(
        (status = 200, description = "The entry is gone", body = DeletedResponse),
        (status = 400, description = "`invalid_body` (`id` not a uuid); `token_ambiguous`", body = ErrorResponse),
        (status = 401, description = "`token_missing`, `token_expired`, `token_invalid`, `user_suspended`", body = ErrorResponse),
        (status = 404, description = "`not_found`: no such entry, or another user's", body = ErrorResponse),
        (status = 503, description = "`service_unavailable`: svc-auth or svc-credentials down or late", body = ErrorResponse),
    )
)]
pub async fn delete_vault_entry(
    AuthenticatedUser(identity): AuthenticatedUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let answer = delete_vault_entry_for(&state, &identity, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// Re-seals a vault entry's secret under the newest key version.
#[utoipa::path(
    post,
    path = "/api/vault/{id}/rotate",
    tag = "credentials",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "The vault entry (uuid)")),
    responses(
        (status = 200, description = "The entry, with its new key version and `rotated_at`", body = VaultEntryResponse),
        (status = 400, description = "`invalid_body` (`id` not a uuid); `token_ambiguous`", body = ErrorResponse),
        (status = 401, description = "`token_missing`, `token_expired`, `token_invalid`, `user_suspended`", body = ErrorResponse),
        (status = 404, description = "`not_found`: no such entry, or another user's", body = ErrorResponse),
        (status = 503, description = "`service_unavailable`: svc-auth or svc-credentials down or late", body = ErrorResponse),
    )
)]
pub async fn rotate_vault_entry(
    AuthenticatedUser(identity): AuthenticatedUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let answer = rotate_vault_entry_for(&state, &identity, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(answer))
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::time::{Duration, Instant};

    use serde::de::DeserializeOwned;
    use serde_json::json;

    use super::*;
    use crate::test_support::{creator as user, state_without_upstreams};

    fn system() -> Identity {
        Identity::system("request-2")
    }

    fn body<T: DeserializeOwned>(value: Value) -> T {
        match value {
            Value::Object(object) => crate::body::parse_object(object).unwrap(),
            _ => unreachable!("tests pass objects"),
        }
    }

    fn parse_err<T: DeserializeOwned>(value: Value) -> ApiError {
        match value {
            Value::Object(object) => match crate::body::parse_object::<T>(object) {
                Ok(_) => panic!("{} should not parse", std::any::type_name::<T>()),
                Err(err) => err,
            },
            _ => unreachable!("tests pass objects"),
        }
    }

    fn assert_missing<T>(result: Result<T, ApiError>, field: &str) {
        let Err(err) = result else {
            panic!("{field} is missing, yet the call went through");
        };
        assert_eq!(err.http_status().as_u16(), 400, "{field}");
        assert_eq!(err.reason, "missing_field", "{field}");
        assert_eq!(err.field.as_deref(), Some(field));
    }

    fn assert_invalid<T>(result: Result<T, ApiError>, field: &str) {
        let Err(err) = result else {
            panic!("{field} is invalid, yet the call went through");
        };
        assert_eq!(err.http_status().as_u16(), 400, "{field}");
        assert_eq!(err.reason, "invalid_body", "{field}");
        assert_eq!(err.field.as_deref(), Some(field));
    }

    const PROFILE: &str = "0b5c2f4e-8f0a-4c55-9a43-5c8f0e4f2b11";

    #[tokio::test]
    async fn the_shape_is_checked_before_svc_credentials_is_asked() {
        // svc-credentials is down: a shape error answered here is a 400, never a 503.
        let state = state_without_upstreams();
        let (state, user) = (&state, &user());

        for missing in [
            json!({"credentials": {"password": "hunter2"}}),
            json!({"creatorProfileId": "  ", "credentials": {"password": "hunter2"}}),
        ] {
            let result = store_credentials_for(state, user, body(missing)).await;
            assert_missing(result, "creatorProfileId");
        }
        for missing in [
            json!({"creatorProfileId": PROFILE}),
            json!({"creatorProfileId": PROFILE, "credentials": null}),
        ] {
            let result = store_credentials_for(state, &system(), body(missing)).await;
            assert_missing(result, "credentials");
        }
        assert_missing(
            reveal_credentials_for(state, user, body(json!({}))).await,
            "creatorProfileId",
        );
        assert_missing(
            get_platform_session_for(state, &system(), body(json!({"notes": "x"}))).await,
            "creatorProfileId",
        );
        assert_missing(
            request_hitl_login_for(state, user, body(json!({"notes": "please"}))).await,
            "creatorProfileId",
        );
        assert_missing(
            create_profile_for(state, user, body(json!({"username": "ada"}))).await,
            "platform",
        );
        assert_missing(
            create_profile_for(state, user, body(json!({"platform": "onlyfans"}))).await,
            "username",
        );
        assert_invalid(
            create_profile_for(
                state,
                user,
                body(json!({"platform": "onlyfans", "username": "ada", "profileData": [1]})),
            )
            .await,
            "profileData",
        );
        assert_missing(
            reveal_vault_entry_for(state, user, body(json!({"id": ""}))).await,
            "id",
        );

        let session = |value: Value| store_platform_session_for(state, user, body(value));
        assert_missing(
            session(json!({"creatorProfileId": PROFILE, "userAgent": "UA"})).await,
            "cookies",
        );
        for not_an_array in [json!({"name": "sid"}), json!("sid=1"), json!(3)] {
            let value =
                json!({"creatorProfileId": PROFILE, "cookies": not_an_array, "userAgent": "UA"});
            assert_invalid(session(value).await, "cookies");
        }
        assert_missing(
            session(json!({"creatorProfileId": PROFILE, "cookies": []})).await,
            "userAgent",
        );
        assert_missing(
            session(json!({"cookies": [], "userAgent": "UA"})).await,
            "creatorProfileId",
        );

        assert_missing(
            create_vault_entry_for(state, user, body(json!({"secret": "s3cret"}))).await,
            "name",
        );
        assert_missing(
            create_vault_entry_for(state, user, body(json!({"name": "n", "secret": null}))).await,
            "secret",
        );

        for empty in [json!({}), json!({"secret": null}), json!({"other": 1})] {
            let result = update_vault_entry_for(state, user, PROFILE.into(), body(empty)).await;
            let Err(err) = result else {
                panic!("an empty PATCH went through");
            };
            assert_eq!(err.http_status().as_u16(), 400);
            assert_eq!(err.reason, "invalid_body");
            assert_eq!(err.field.as_deref(), Some("body"));
            assert_eq!(
                err.message,
                "nothing to update: send name, kind, platform or secret"
            );
        }
    }

    #[test]
    fn keys_are_camel_case_with_snake_case_aliases_and_wrong_types_are_named() {
        let camel: StorePlatformSessionBody = body(json!({
            "creatorProfileId": PROFILE, "cookies": [], "userAgent": "UA", "expiresAt": "2026-12-01T00:00:00Z",
        }));
        let snake: StorePlatformSessionBody = body(json!({
            "creator_profile_id": PROFILE, "cookies": [], "user_agent": "UA", "expires_at": "2026-12-01T00:00:00Z",
        }));
        for parsed in [camel, snake] {
            assert_eq!(parsed.creator_profile_id.as_deref(), Some(PROFILE));
            assert_eq!(parsed.user_agent.as_deref(), Some("UA"));
            assert_eq!(parsed.expires_at.as_deref(), Some("2026-12-01T00:00:00Z"));
        }
        let profile: CreateProfileBody = body(json!({
            "platform": "onlyfans", "username": "ada", "scrape_enabled": true,
            "scrape_frequency": "0 * * * *", "profile_data": {"fans": 3},
        }));
        assert_eq!(profile.scrape_enabled, Some(true));
        assert_eq!(profile.scrape_frequency.as_deref(), Some("0 * * * *"));
        assert_eq!(profile.profile_data, Some(json!({"fans": 3})));
        let entry: CreateVaultEntryBody =
            body(json!({"name": "n", "creator_profile_id": PROFILE, "secret": ["a"]}));
        assert_eq!(entry.creator_profile_id.as_deref(), Some(PROFILE));

        let err = parse_err::<StoreCredentialsBody>(json!({"creatorProfileId": 12345678}));
        assert_eq!(err.reason, "invalid_body");
        assert_eq!(err.field.as_deref(), Some("creatorProfileId"));
        assert!(!err.message.contains("12345678"), "{}", err.message);
        let err = parse_err::<CreateProfileBody>(json!({"scrapeEnabled": "yes"}));
        assert_eq!(err.field.as_deref(), Some("scrapeEnabled"));
        let err = parse_err::<UpdateVaultEntryBody>(json!({"name": ["hunter2"]}));
        assert_eq!(err.field.as_deref(), Some("name"));
        assert!(!err.message.contains("hunter2"), "{}", err.message);
    }

    #[test]
    fn the_vault_query_is_read_by_hand() {
        assert_eq!(VaultQuery::parse("").unwrap(), VaultQuery::default());
        assert_eq!(
            VaultQuery::parse("kind=download&limit=500&offset=20&access_token=t").unwrap(),
            VaultQuery {
                kind: Some("download".into()),
                limit: Some(500),
                offset: Some(20),
            }
        );
        assert_eq!(
            VaultQuery::parse("kind=&limit=&offset=").unwrap(),
            VaultQuery::default()
        );
        for bad in ["limit=0", "limit=501", "limit=abc", "limit=-1", "limit=2.5"] {
            let err = VaultQuery::parse(bad).unwrap_err();
            assert_eq!(err.reason, "invalid_body", "{bad}");
            assert_eq!(err.field.as_deref(), Some("limit"), "{bad}");
        }
        for bad in ["offset=-1", "offset=x", "offset=99999999999"] {
            let err = VaultQuery::parse(bad).unwrap_err();
            assert_eq!(err.field.as_deref(), Some("offset"), "{bad}");
        }
    }

    async fn unavailable<T>(call: impl Future<Output = Result<T, ApiError>>) {
        let started = Instant::now();
        let Err(err) = call.await else {
            panic!("svc-credentials is down, yet the call went through");
        };
        assert_eq!(err.http_status().as_u16(), 503, "{}", err.reason);
        assert_eq!(err.reason, "service_unavailable");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn svc_credentials_down_is_a_quick_503_on_every_route() {
        let state = state_without_upstreams();
        let (state, user, system) = (&state, &user(), &system());
        let profile = || json!({"creatorProfileId": PROFILE});
        unavailable(store_credentials_for(
            state,
            system,
            body(json!({"creator_profile_id": PROFILE, "credentials": "a string is JSON too"})),
        ))
        .await;
        unavailable(reveal_credentials_for(state, system, body(profile()))).await;
        unavailable(create_profile_for(
            state,
            user,
            body(json!({
                "platform": "onlyfans", "username": "ada", "credentials": {"password": "p"},
                "scrapeEnabled": true, "profileData": {"fans": 1},
            })),
        ))
        .await;
        unavailable(reveal_vault_entry_for(
            state,
            user,
            body(json!({"id": PROFILE})),
        ))
        .await;
        unavailable(get_platform_session_for(state, user, body(profile()))).await;
        unavailable(store_platform_session_for(
            state,
            system,
            body(json!({"creatorProfileId": PROFILE, "cookies": [{"name": "sid"}], "userAgent": "UA"})),
        ))
        .await;
        unavailable(request_hitl_login_for(state, user, body(profile()))).await;
        unavailable(list_vault_for(state, user, VaultQuery::default())).await;
        unavailable(create_vault_entry_for(
            state,
            user,
            body(json!({"name": "n", "secret": {"token": "t"}})),
        ))
        .await;
        unavailable(update_vault_entry_for(
            state,
            user,
            PROFILE.into(),
            body(json!({"name": "renamed"})),
        ))
        .await;
        unavailable(delete_vault_entry_for(state, user, PROFILE.into())).await;
        unavailable(rotate_vault_entry_for(state, user, PROFILE.into())).await;
    }

    fn sealed(json: &str) -> Option<pb::Secret> {
        Some(pb::Secret { json: json.into() })
    }

    #[test]
    fn answers_are_snake_case_with_nulls_for_none_and_secrets_parsed() {
        let profile = pb::CreatorProfile {
            id: "p1".into(),
            user_id: "u1".into(),
            platform: "onlyfans".into(),
            username: "ada".into(),
            has_credentials: false,
            credentials_key_version: 0,
            scrape_enabled: false,
            scrape_frequency: String::new(),
            scrape_status: "idle".into(),
            last_scraped_at: String::new(),
            profile_data_json: r#"{"fans":3}"#.into(),
            created_at: "2026-11-01T00:00:00Z".into(),
            updated_at: "2026-11-02T00:00:00Z".into(),
        };
        assert_eq!(
            serde_json::to_value(ProfileResponse::from(profile.clone())).unwrap(),
            json!({"ok": true, "success": true, "profile": {
                "id": "p1", "user_id": "u1", "platform": "onlyfans", "username": "ada",
                "has_credentials": false, "credentials_key_version": null,
                "scrape_enabled": false, "scrape_frequency": null, "scrape_status": "idle",
                "last_scraped_at": null, "profile_data": {"fans": 3},
                "created_at": "2026-11-01T00:00:00Z", "updated_at": "2026-11-02T00:00:00Z",
            }})
        );
        let empty_data = CreatorProfileView::from(pb::CreatorProfile {
            profile_data_json: String::new(),
            credentials_key_version: 2,
            ..profile
        });
        assert_eq!(empty_data.profile_data, json!({}));
        assert_eq!(empty_data.credentials_key_version, Some(2));

        let revealed = RevealedCredentialsResponse::try_from(pb::RevealedCredentials {
            creator_profile_id: "p1".into(),
            credentials: sealed(r#"{"email":"a@b.c","password":"hunter2"}"#),
            key_version: 3,
        })
        .unwrap();
        assert_eq!(
            serde_json::to_value(revealed).unwrap(),
            json!({"ok": true, "success": true,
                   "credentials": {"email": "a@b.c", "password": "hunter2"}, "key_version": 3})
        );
        let garbled = RevealedCredentialsResponse::try_from(pb::RevealedCredentials {
            credentials: sealed("{not json hunter2"),
            ..Default::default()
        });
        let Err(err) = garbled else {
            panic!("a secret that is not JSON went through");
        };
        assert_eq!(err.http_status().as_u16(), 500);
        assert!(!err.message.contains("hunter2"));

        let info = pb::PlatformSessionInfo {
            id: "s1".into(),
            creator_profile_id: "p1".into(),
            platform: "fansly".into(),
            user_agent: "UA".into(),
            captured_at: "2026-11-01T00:00:00Z".into(),
            expires_at: String::new(),
            last_used_at: String::new(),
            key_version: 1,
            completed_hitl_sessions: 2,
        };
        let info_json = json!({
            "id": "s1", "creator_profile_id": "p1", "platform": "fansly", "user_agent": "UA",
            "captured_at": "2026-11-01T00:00:00Z", "expires_at": null, "last_used_at": null,
            "key_version": 1, "completed_hitl_sessions": 2,
        });
        assert_eq!(
            serde_json::to_value(SessionStoredResponse::from(info.clone())).unwrap(),
            json!({"ok": true, "success": true, "session": info_json})
        );
        let session = PlatformSessionResponse::try_from(pb::PlatformSession {
            info: Some(info),
            cookies: sealed(r#"[{"name":"sid","value":"1"}]"#),
        })
        .unwrap();
        let mut with_cookies = info_json.clone();
        with_cookies["cookies"] = json!([{"name": "sid", "value": "1"}]);
        assert_eq!(
            serde_json::to_value(session).unwrap(),
            json!({"ok": true, "success": true, "session": with_cookies})
        );
        assert!(
            PlatformSessionResponse::try_from(pb::PlatformSession::default()).is_err(),
            "a session without its info is svc-credentials' bug"
        );

        let hitl = pb::HitlSession {
            id: "h1".into(),
            creator_profile_id: "p1".into(),
            platform: "onlyfans".into(),
            status: "pending".into(),
            requested_at: "2026-11-01T00:00:00Z".into(),
            completed_at: String::new(),
            notes: String::new(),
        };
        assert_eq!(
            serde_json::to_value(HitlResponse::from(hitl)).unwrap(),
            json!({"ok": true, "success": true, "hitl_session": {
                "id": "h1", "creator_profile_id": "p1", "platform": "onlyfans",
                "status": "pending", "requested_at": "2026-11-01T00:00:00Z",
                "completed_at": null, "notes": null,
            }})
        );

        let entry = pb::VaultEntry {
            id: "v1".into(),
            name: "Dropbox".into(),
            kind: "download".into(),
            platform: String::new(),
            creator_profile_id: String::new(),
            key_version: 1,
            created_at: "2026-11-01T00:00:00Z".into(),
            updated_at: "2026-11-01T00:00:00Z".into(),
            rotated_at: String::new(),
        };
        let entry_json = json!({
            "id": "v1", "name": "Dropbox", "kind": "download", "platform": null,
            "creator_profile_id": null, "key_version": 1,
            "created_at": "2026-11-01T00:00:00Z", "updated_at": "2026-11-01T00:00:00Z",
            "rotated_at": null,
        });
        assert_eq!(
            serde_json::to_value(VaultListResponse::from(pb::VaultList {
                entries: vec![entry.clone()],
                filter_count: 1,
                total_count: 4,
            }))
            .unwrap(),
            json!({"ok": true, "success": true, "data": [entry_json],
                   "meta": {"total_count": 4, "filter_count": 1}})
        );
        assert_eq!(
            serde_json::to_value(VaultEntryResponse::from(entry.clone())).unwrap(),
            json!({"ok": true, "success": true, "data": entry_json})
        );
        let revealed = RevealedVaultEntryResponse::try_from(pb::RevealedVaultEntry {
            entry: Some(entry),
            secret: sealed(r#""a plain string""#),
        })
        .unwrap();
        let mut with_secret = entry_json.clone();
        with_secret["secret"] = json!("a plain string");
        assert_eq!(
            serde_json::to_value(revealed).unwrap(),
            json!({"ok": true, "success": true, "credential": with_secret})
        );
    }

    #[test]
    fn secrets_travel_as_json_text_and_never_show_in_debug() {
        let value = json!({"password": "hunter2", "codes": [1, 2]});
        let secret = seal(&value);
        assert_eq!(serde_json::from_str::<Value>(&secret.json).unwrap(), value);
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert_eq!(open(None, "test").unwrap(), Value::Null);
        assert_eq!(open(sealed(""), "test").unwrap(), Value::Null);
        assert_eq!(open(Some(secret), "test").unwrap(), value);
    }
}
