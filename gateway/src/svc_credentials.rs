//! Routes owned by svc-credentials: creators' platform logins, captured browser sessions, HITL
//! login requests and the vault of other secrets.
//!
//! The gateway checks the shape of a request (required fields present, JSON types right, ids
//! UUIDs, kinds known, `cookies` an array, `profile_data` an object); svc-credentials is the
//! authority on sizes and ownership, and answers NOT_FOUND for another user's row. Request keys
//! are snake_case, each also accepted in the camelCase of the original Node API; resource objects
//! in responses are snake_case.
//!
//! Secrets are JSON values: sent as `pb::Secret` JSON text (its Debug prints no value) and parsed
//! back in answers. Neither a body nor a secret is ever logged or put in an error message.

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, delete, get, patch, post, web};
use common::ApiError;
use futures_util::future::{Ready, ready};
use proto::credentials::v1 as pb;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::body::NonBlank;
use crate::kit::{
    Authenticated, Envelope, Errors, Input, JsonBody, OwnerOrSecret, Query, QueryParams, Reply,
    Routes, non_empty, present,
};
use crate::session::{AuthenticatedUser, OwnerOrSystem};
use crate::state::AppState;
use crate::{error_set, rpc};

/// Entries per page of `GET /api/vault` when `limit` is absent.
pub const DEFAULT_VAULT_LIMIT: u32 = 50;
/// The largest `limit` of `GET /api/vault`.
pub const MAX_VAULT_LIMIT: u32 = 500;

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
// Answers (each inside the `{ok, success}` envelope)

/// `{profile}`
#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileResponse {
    pub profile: CreatorProfileView,
}

impl From<pb::CreatorProfile> for ProfileResponse {
    fn from(profile: pb::CreatorProfile) -> Self {
        Self {
            profile: profile.into(),
        }
    }
}

/// `{credentials, key_version}`
#[derive(Serialize, ToSchema)]
pub struct RevealedCredentialsResponse {
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
            credentials: open(revealed.credentials, "credentials")?,
            key_version: key_version(revealed.key_version),
        })
    }
}

/// `{credential}`
#[derive(Serialize, ToSchema)]
pub struct RevealedVaultEntryResponse {
    pub credential: RevealedVaultEntryView,
}

impl TryFrom<pb::RevealedVaultEntry> for RevealedVaultEntryResponse {
    type Error = ApiError;

    fn try_from(revealed: pb::RevealedVaultEntry) -> Result<Self, ApiError> {
        let entry = present(revealed.entry, "vault entry")?;
        Ok(Self {
            credential: RevealedVaultEntryView {
                entry: entry.into(),
                secret: open(revealed.secret, "vault secret")?,
            },
        })
    }
}

/// `{session}` with the cookies.
#[derive(Serialize, ToSchema)]
pub struct PlatformSessionResponse {
    pub session: PlatformSessionView,
}

impl TryFrom<pb::PlatformSession> for PlatformSessionResponse {
    type Error = ApiError;

    fn try_from(session: pb::PlatformSession) -> Result<Self, ApiError> {
        let info = present(session.info, "platform session")?;
        Ok(Self {
            session: PlatformSessionView {
                info: info.into(),
                cookies: open(session.cookies, "cookies")?,
            },
        })
    }
}

/// `{session}` without the cookies.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionStoredResponse {
    pub session: PlatformSessionInfoView,
}

impl From<pb::PlatformSessionInfo> for SessionStoredResponse {
    fn from(info: pb::PlatformSessionInfo) -> Self {
        Self {
            session: info.into(),
        }
    }
}

/// `{hitl_session}`
#[derive(Debug, Serialize, ToSchema)]
pub struct HitlResponse {
    pub hitl_session: HitlSessionView,
}

impl From<pb::HitlSession> for HitlResponse {
    fn from(session: pb::HitlSession) -> Self {
        Self {
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

/// `{data, meta}`
#[derive(Debug, Serialize, ToSchema)]
pub struct VaultListResponse {
    pub data: Vec<VaultEntryView>,
    pub meta: VaultListMeta,
}

impl From<pb::VaultList> for VaultListResponse {
    fn from(list: pb::VaultList) -> Self {
        Self {
            data: list.entries.into_iter().map(Into::into).collect(),
            meta: VaultListMeta {
                total_count: list.total_count,
                filter_count: list.filter_count,
            },
        }
    }
}

/// `{data}`
#[derive(Debug, Serialize, ToSchema)]
pub struct VaultEntryResponse {
    pub data: VaultEntryView,
}

impl From<pb::VaultEntry> for VaultEntryResponse {
    fn from(entry: pb::VaultEntry) -> Self {
        Self { data: entry.into() }
    }
}

/// `{id}`
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedResponse {
    /// What was deleted.
    #[schema(format = Uuid)]
    pub id: String,
}

impl From<pb::DeletedVaultEntry> for DeletedResponse {
    fn from(deleted: pb::DeletedVaultEntry) -> Self {
        Self { id: deleted.id }
    }
}

impl From<pb::DeletedProfile> for DeletedResponse {
    fn from(deleted: pb::DeletedProfile) -> Self {
        Self { id: deleted.id }
    }
}

// ---------------------------------------------------------------------------------------------
// Request bodies: snake_case names, each also accepted in the camelCase of the original Node
// API. No Debug: they may carry secrets.

/// A JSON value that is not null: the plaintext of a secret.
#[derive(Deserialize)]
#[serde(try_from = "Value")]
pub struct SecretValue(Value);

impl TryFrom<Value> for SecretValue {
    type Error = &'static str;

    fn try_from(value: Value) -> Result<Self, Self::Error> {
        // Null reads as "absent": the message is the one `crate::body` answers as missing_field.
        if value.is_null() {
            return Err("invalid type: null, expected any JSON value but null");
        }
        Ok(Self(value))
    }
}

impl SecretValue {
    /// The value as the plaintext svc-credentials seals.
    fn seal(&self) -> pb::Secret {
        pb::Secret {
            json: self.0.to_string(),
        }
    }
}

/// The kinds of vault entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VaultKind {
    Login,
    Download,
    ApiKey,
    Cookies,
    Token,
    Other,
}

impl VaultKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Download => "download",
            Self::ApiKey => "api_key",
            Self::Cookies => "cookies",
            Self::Token => "token",
            Self::Other => "other",
        }
    }
}

/// `{creator_profile_id, credentials}`
#[derive(Deserialize, ToSchema)]
pub struct StoreCredentialsBody {
    /// The creator profile; also accepted as `creatorProfileId`.
    #[serde(alias = "creatorProfileId")]
    pub creator_profile_id: Uuid,
    /// The login credentials: any JSON value but null (usually an object such as
    /// `{"email": "…", "password": "…"}`). Replaces those stored.
    #[schema(value_type = Value)]
    pub credentials: SecretValue,
}

/// `{creator_profile_id}`
#[derive(Deserialize, ToSchema)]
pub struct ProfileRefBody {
    /// The creator profile; also accepted as `creatorProfileId`.
    #[serde(alias = "creatorProfileId")]
    pub creator_profile_id: Uuid,
}

impl From<ProfileRefBody> for pb::ProfileRef {
    fn from(body: ProfileRefBody) -> Self {
        Self {
            creator_profile_id: body.creator_profile_id.to_string(),
        }
    }
}

/// `{platform, username, credentials?, scrape_enabled?, scrape_frequency?, profile_data?}`
#[derive(Deserialize, ToSchema)]
pub struct CreateProfileBody {
    /// Lower-case platform name: `onlyfans`, `fansly`, … (letters, digits, `_`, `-`).
    #[schema(example = "onlyfans", max_length = 32)]
    pub platform: NonBlank,
    #[schema(max_length = 128)]
    pub username: NonBlank,
    /// The login credentials (any JSON value); absent or null: none yet.
    #[schema(value_type = Option<Value>)]
    pub credentials: Option<SecretValue>,
    /// Default false. Also accepted as `scrapeEnabled`.
    #[serde(alias = "scrapeEnabled")]
    pub scrape_enabled: Option<bool>,
    /// Five-field cron expression. Also accepted as `scrapeFrequency`.
    #[serde(alias = "scrapeFrequency")]
    #[schema(example = "0 */6 * * *", max_length = 100)]
    pub scrape_frequency: Option<String>,
    /// A JSON object of cached profile stats; default `{}`. Also accepted as `profileData`.
    #[serde(alias = "profileData")]
    pub profile_data: Option<Map<String, Value>>,
}

/// `{id}`
#[derive(Deserialize, ToSchema)]
pub struct VaultEntryRefBody {
    /// The vault entry.
    pub id: Uuid,
}

/// `{creator_profile_id, cookies, user_agent, expires_at?}`
#[derive(Deserialize, ToSchema)]
pub struct StorePlatformSessionBody {
    /// The creator profile; also accepted as `creatorProfileId`.
    #[serde(alias = "creatorProfileId")]
    pub creator_profile_id: Uuid,
    /// The cookies as the browser gave them: a JSON array.
    #[schema(value_type = Vec<Object>)]
    pub cookies: Vec<Value>,
    /// The browser's user agent. Also accepted as `userAgent`.
    #[serde(alias = "userAgent")]
    #[schema(max_length = 1024)]
    pub user_agent: NonBlank,
    /// RFC 3339, the estimated expiry; absent: unknown. Also accepted as `expiresAt`.
    #[serde(alias = "expiresAt")]
    #[schema(value_type = Option<String>, format = DateTime, example = "2026-12-01T00:00:00Z")]
    pub expires_at: Option<chrono::DateTime<chrono::FixedOffset>>,
}

/// `{creator_profile_id, notes?}`
#[derive(Deserialize, ToSchema)]
pub struct HitlRequestBody {
    /// The creator profile; also accepted as `creatorProfileId`.
    #[serde(alias = "creatorProfileId")]
    pub creator_profile_id: Uuid,
    /// For the creator: what to log in for.
    #[schema(max_length = 2000)]
    pub notes: Option<String>,
}

/// `{name, kind?, platform?, creator_profile_id?, secret}`
#[derive(Deserialize, ToSchema)]
pub struct CreateVaultEntryBody {
    #[schema(example = "Dropbox download link", max_length = 200)]
    pub name: NonBlank,
    /// Default `other`.
    pub kind: Option<VaultKind>,
    #[schema(max_length = 32)]
    pub platform: Option<String>,
    /// The creator profile the entry belongs to, if any; also accepted as `creatorProfileId`.
    #[serde(alias = "creatorProfileId")]
    pub creator_profile_id: Option<Uuid>,
    /// The secret: any JSON value but null.
    #[schema(value_type = Value)]
    pub secret: SecretValue,
}

/// `{name?, kind?, platform?, secret?}`, at least one of them.
#[derive(Deserialize, ToSchema)]
#[schema(min_properties = 1)]
pub struct UpdateVaultEntryBody {
    #[schema(max_length = 200)]
    pub name: Option<NonBlank>,
    pub kind: Option<VaultKind>,
    #[schema(max_length = 32)]
    pub platform: Option<String>,
    /// A new secret (any JSON value but null); sealed under the newest key version.
    #[schema(value_type = Option<Value>)]
    pub secret: Option<SecretValue>,
}

impl UpdateVaultEntryBody {
    /// The change to make to entry `id`; a body that changes nothing is refused.
    fn into_request(self, id: EntryId) -> Result<pb::UpdateVaultEntryRequest, ApiError> {
        if self.name.is_none()
            && self.kind.is_none()
            && self.platform.is_none()
            && self.secret.is_none()
        {
            return Err(ApiError::invalid_field(
                "body",
                "nothing to update: send name, kind, platform or secret",
            ));
        }
        Ok(pb::UpdateVaultEntryRequest {
            id: id.0.to_string(),
            name: self.name.map(String::from),
            kind: self.kind.map(|kind| kind.as_str().to_owned()),
            platform: self.platform,
            secret: self.secret.as_ref().map(SecretValue::seal),
        })
    }
}

/// `GET /api/vault`'s query.
#[derive(Debug, Clone, Default, PartialEq, Eq, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VaultQuery {
    /// Only entries of this kind; absent: all.
    #[param(value_type = Option<VaultKind>, example = "download")]
    pub kind: Option<String>,
    /// Entries per page, 1 to 500; default 50.
    #[param(minimum = 1, maximum = 500, example = 50)]
    pub limit: Option<u32>,
    /// Entries to skip; default 0.
    #[param(minimum = 0, example = 0)]
    pub offset: Option<u32>,
}

/// Other parameters (`access_token`) are ignored.
impl QueryParams for VaultQuery {
    fn set(&mut self, key: &str, value: &str) -> Result<(), ApiError> {
        match key {
            "kind" => {
                let kind: VaultKind =
                    serde_json::from_value(Value::String(value.into())).map_err(|_| {
                        ApiError::invalid_field(
                            "kind",
                            "kind must be one of login, download, api_key, cookies, token, other",
                        )
                    })?;
                self.kind = Some(kind.as_str().to_owned());
            }
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
                self.limit = Some(limit);
            }
            "offset" => {
                let offset = value.parse::<u32>().map_err(|_| {
                    ApiError::invalid_field(
                        "offset",
                        format!("offset must be an integer from 0 to {}", u32::MAX),
                    )
                })?;
                self.offset = Some(offset);
            }
            _ => {}
        }
        Ok(())
    }
}

/// The `{id}` of a vault entry in the path.
pub struct EntryId(Uuid);

impl FromRequest for EntryId {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let id = req
            .match_info()
            .get("id")
            .and_then(|id| Uuid::parse_str(id).ok())
            .map(EntryId)
            .ok_or_else(|| ApiError::invalid_field("id", "id must be a UUID"));
        ready(id)
    }
}

impl EntryId {
    fn entry(&self) -> pb::VaultEntryRef {
        pb::VaultEntryRef {
            id: self.0.to_string(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Routes

error_set! {
    ProfileNotFound {
        404 "not_found": "no such creator profile, or another user's",
    }
}

error_set! {
    EntryNotFound {
        404 "not_found": "no such vault entry, or another user's",
    }
}

error_set! {
    VaultRules {
        400 "invalid_body": "a text over its length, a platform with other than letters, digits, `_` and `-`, a bad cron expression, or secrets over svc-credentials' size limit (`field` names it)",
        403 "forbidden": "the server-to-server caller has no vault of its own",
    }
}

error_set! {
    SealedNotOpened {
        404 "not_found": "nothing is stored there",
        500 "internal": "a stored record failed its integrity check (it was altered); nothing is revealed",
    }
}

/// Stores (replaces) a creator profile's login credentials, sealed under the newest key.
/// For the profile's owner, or a server-to-server caller with `X-RBAC-SYNC-SECRET`.
#[utoipa::path(
    tag = "credentials",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = []), ("rbac_sync_secret" = [])),
    request_body = StoreCredentialsBody,
    responses(
        (status = 200, description = "The profile, now with credentials", body = Envelope<ProfileResponse>),
        Errors<(OwnerOrSecret, JsonBody, VaultRules, ProfileNotFound)>,
    )
)]
#[post("/api/credentials/store")]
pub async fn store_credentials(
    Input(OwnerOrSystem(caller), body): Input<OwnerOrSystem, StoreCredentialsBody>,
    state: web::Data<AppState>,
) -> Reply<ProfileResponse> {
    let request = pb::StoreCredentialsRequest {
        creator_profile_id: body.creator_profile_id.to_string(),
        credentials: Some(body.credentials.seal()),
    };
    state
        .credentials
        .forward(&caller, request, rpc!(store_credentials))
        .await
}

/// Reveals a creator profile's login credentials (audited).
/// For the profile's owner, or a server-to-server caller with `X-RBAC-SYNC-SECRET`.
#[utoipa::path(
    tag = "credentials",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = []), ("rbac_sync_secret" = [])),
    request_body = ProfileRefBody,
    responses(
        (status = 200, description = "The credentials, as the JSON value they were stored as", body = Envelope<RevealedCredentialsResponse>),
        Errors<(OwnerOrSecret, JsonBody, ProfileNotFound, SealedNotOpened)>,
    )
)]
#[post("/api/credentials/reveal")]
pub async fn reveal_credentials(
    Input(OwnerOrSystem(caller), body): Input<OwnerOrSystem, ProfileRefBody>,
    state: web::Data<AppState>,
) -> Reply<RevealedCredentialsResponse> {
    let revealed = state
        .credentials
        .forward(&caller, body.into(), rpc!(reveal_credentials));
    revealed.await
}

error_set! {
    ProfileExists {
        409 "profile_exists": "the user already has a profile with this platform and username",
    }
}

error_set! {
    /// Creating a profile takes a unit of the tier's `platforms` gauge at svc-usage (fail-closed).
    PlatformsGated {
        403 "limit_reached": "the tier's `platforms` limit (creator profiles held) is reached (`error` is `tier_limit_reached`, `message` tells to upgrade)",
        403 "quota_check_failed": "svc-usage could not be asked; no profile was created",
    }
}

/// Creates a creator profile (a creator's account on a platform) for the signed-in user. Each
/// profile holds one unit of the tier's `platforms` limit (starter 1, creator 3, pro 5, studio 9),
/// a standing count shown by `GET /api/usage`.
#[utoipa::path(
    tag = "credentials",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    request_body = CreateProfileBody,
    responses(
        (status = 200, description = "The new profile (metadata, never the credentials)", body = Envelope<ProfileResponse>),
        Errors<(Authenticated, JsonBody, VaultRules, ProfileExists, PlatformsGated)>,
    )
)]
#[post("/api/credentials/create-profile")]
pub async fn create_profile(
    Input(AuthenticatedUser(caller), body): Input<AuthenticatedUser, CreateProfileBody>,
    state: web::Data<AppState>,
) -> Reply<ProfileResponse> {
    let request = pb::CreateProfileRequest {
        platform: body.platform.into(),
        username: body.username.into(),
        credentials: body.credentials.as_ref().map(SecretValue::seal),
        scrape_enabled: body.scrape_enabled.unwrap_or(false),
        scrape_frequency: body.scrape_frequency.unwrap_or_default(),
        profile_data_json: body
            .profile_data
            .map(|data| Value::Object(data).to_string())
            .unwrap_or_default(),
    };
    state
        .credentials
        .forward(&caller, request, rpc!(create_profile))
        .await
}

error_set! {
    ProfileDeleteRules {
        400 "invalid_body": "`id` is not a UUID",
        404 "not_found": "no creator profile with this id, or another user's",
        503 "service_unavailable": "the profile is deleted but svc-usage could not give back its platform yet: send the delete again",
    }
}

/// Deletes a creator profile of the signed-in user, with its platform sessions, HITL requests and
/// vault entries, and gives back its unit of the tier's `platforms`.
#[utoipa::path(
    tag = "credentials",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    params(("id" = Uuid, Path, description = "The creator profile")),
    responses(
        (status = 200, description = "The deleted profile's id", body = Envelope<DeletedResponse>),
        Errors<(Authenticated, ProfileDeleteRules)>,
    )
)]
#[delete("/api/credentials/profiles/{id}")]
pub async fn delete_profile(
    AuthenticatedUser(caller): AuthenticatedUser,
    id: EntryId,
    state: web::Data<AppState>,
) -> Reply<DeletedResponse> {
    let request = pb::ProfileRef {
        creator_profile_id: id.0.to_string(),
    };
    state
        .credentials
        .forward(&caller, request, rpc!(delete_profile))
        .await
}

/// Reveals a vault entry with its secret (audited): the download credential of the original.
#[utoipa::path(
    tag = "credentials",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    request_body = VaultEntryRefBody,
    responses(
        (status = 200, description = "The entry with its secret", body = Envelope<RevealedVaultEntryResponse>),
        Errors<(Authenticated, JsonBody, EntryNotFound, SealedNotOpened)>,
    )
)]
#[post("/api/credentials/reveal-download-cred")]
pub async fn reveal_download_credential(
    Input(AuthenticatedUser(caller), body): Input<AuthenticatedUser, VaultEntryRefBody>,
    state: web::Data<AppState>,
) -> Reply<RevealedVaultEntryResponse> {
    let request = pb::VaultEntryRef {
        id: body.id.to_string(),
    };
    let revealed = state
        .credentials
        .forward(&caller, request, rpc!(reveal_vault_entry));
    revealed.await
}

/// The captured browser session of a creator profile, with its cookies and user agent
/// (audited; stamps `last_used_at`). For the owner, or a server-to-server caller.
#[utoipa::path(
    tag = "credentials",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = []), ("rbac_sync_secret" = [])),
    request_body = ProfileRefBody,
    responses(
        (status = 200, description = "The session with its cookies", body = Envelope<PlatformSessionResponse>),
        Errors<(OwnerOrSecret, JsonBody, ProfileNotFound, SealedNotOpened)>,
    )
)]
#[post("/api/credentials/get-platform-session")]
pub async fn get_platform_session(
    Input(OwnerOrSystem(caller), body): Input<OwnerOrSystem, ProfileRefBody>,
    state: web::Data<AppState>,
) -> Reply<PlatformSessionResponse> {
    let session = state
        .credentials
        .forward(&caller, body.into(), rpc!(get_platform_session));
    session.await
}

/// Stores a captured browser session for a creator profile, replacing the one before, and
/// completes the profile's pending HITL requests. For the owner, or a server-to-server caller.
#[utoipa::path(
    tag = "credentials",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = []), ("rbac_sync_secret" = [])),
    request_body = StorePlatformSessionBody,
    responses(
        (status = 200, description = "The stored session, without its cookies", body = Envelope<SessionStoredResponse>),
        Errors<(OwnerOrSecret, JsonBody, VaultRules, ProfileNotFound)>,
    )
)]
#[post("/api/credentials/store-platform-session")]
pub async fn store_platform_session(
    Input(OwnerOrSystem(caller), body): Input<OwnerOrSystem, StorePlatformSessionBody>,
    state: web::Data<AppState>,
) -> Reply<SessionStoredResponse> {
    let request = pb::StorePlatformSessionRequest {
        creator_profile_id: body.creator_profile_id.to_string(),
        cookies: Some(pb::Secret {
            json: Value::Array(body.cookies).to_string(),
        }),
        user_agent: body.user_agent.into(),
        expires_at: body
            .expires_at
            .map(|at| at.to_rfc3339())
            .unwrap_or_default(),
    };
    state
        .credentials
        .forward(&caller, request, rpc!(store_platform_session))
        .await
}

/// Asks the creator to log in by hand (human in the loop). A profile has at most one pending
/// request: asking again answers the pending one.
/// For the owner, or a server-to-server caller.
#[utoipa::path(
    tag = "credentials",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = []), ("rbac_sync_secret" = [])),
    request_body = HitlRequestBody,
    responses(
        (status = 200, description = "The HITL request", body = Envelope<HitlResponse>),
        Errors<(OwnerOrSecret, JsonBody, VaultRules, ProfileNotFound)>,
    )
)]
#[post("/api/credentials/hitl-request")]
pub async fn request_hitl_login(
    Input(OwnerOrSystem(caller), body): Input<OwnerOrSystem, HitlRequestBody>,
    state: web::Data<AppState>,
) -> Reply<HitlResponse> {
    let request = pb::RequestHitlLoginRequest {
        creator_profile_id: body.creator_profile_id.to_string(),
        notes: body.notes.unwrap_or_default(),
    };
    state
        .credentials
        .forward(&caller, request, rpc!(request_hitl_login))
        .await
}

error_set! {
    VaultQueryErrors {
        400 "invalid_body": "`kind` not a known kind, `limit` outside 1..=500, or `offset` not a whole number (`field` names it)",
    }
}

/// The signed-in user's vault entries, newest first, without their secrets.
#[utoipa::path(
    tag = "credentials",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    params(VaultQuery),
    responses(
        (status = 200, description = "A page of entries and the counts", body = Envelope<VaultListResponse>),
        Errors<(Authenticated, VaultQueryErrors)>,
    )
)]
#[get("/api/vault")]
pub async fn list_vault(
    AuthenticatedUser(caller): AuthenticatedUser,
    Query(query): Query<VaultQuery>,
    state: web::Data<AppState>,
) -> Reply<VaultListResponse> {
    let request = pb::ListVaultRequest {
        limit: query.limit.unwrap_or(DEFAULT_VAULT_LIMIT),
        offset: query.offset.unwrap_or(0),
        kind: query.kind.unwrap_or_default(),
    };
    state
        .credentials
        .forward(&caller, request, rpc!(list_vault))
        .await
}

/// Stores a secret in the signed-in user's vault, sealed under the newest key.
#[utoipa::path(
    tag = "credentials",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    request_body = CreateVaultEntryBody,
    responses(
        (status = 200, description = "The new entry, without its secret", body = Envelope<VaultEntryResponse>),
        Errors<(Authenticated, JsonBody, VaultRules, ProfileNotFound)>,
    )
)]
#[post("/api/vault")]
pub async fn create_vault_entry(
    Input(AuthenticatedUser(caller), body): Input<AuthenticatedUser, CreateVaultEntryBody>,
    state: web::Data<AppState>,
) -> Reply<VaultEntryResponse> {
    let request = pb::CreateVaultEntryRequest {
        name: body.name.into(),
        kind: body
            .kind
            .map(VaultKind::as_str)
            .unwrap_or_default()
            .to_owned(),
        platform: body.platform.unwrap_or_default(),
        creator_profile_id: body
            .creator_profile_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        secret: Some(body.secret.seal()),
    };
    state
        .credentials
        .forward(&caller, request, rpc!(create_vault_entry))
        .await
}

error_set! {
    NothingToUpdate {
        400 "invalid_body": "nothing to update: none of `name`, `kind`, `platform`, `secret` (`field` is `body`), or `id` not a UUID",
    }
}

/// Changes a vault entry of the signed-in user; a new secret is sealed under the newest key.
#[utoipa::path(
    tag = "credentials",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    params(("id" = Uuid, Path, description = "The vault entry")),
    request_body = UpdateVaultEntryBody,
    responses(
        (status = 200, description = "The entry after the change, without its secret", body = Envelope<VaultEntryResponse>),
        Errors<(Authenticated, JsonBody, NothingToUpdate, VaultRules, EntryNotFound)>,
    )
)]
#[patch("/api/vault/{id}")]
pub async fn update_vault_entry(
    Input(AuthenticatedUser(caller), body): Input<AuthenticatedUser, UpdateVaultEntryBody>,
    id: EntryId,
    state: web::Data<AppState>,
) -> Reply<VaultEntryResponse> {
    let request = body.into_request(id)?;
    state
        .credentials
        .forward(&caller, request, rpc!(update_vault_entry))
        .await
}

error_set! {
    BadEntryId {
        400 "invalid_body": "`id` is not a UUID",
    }
}

/// Deletes a vault entry of the signed-in user.
#[utoipa::path(
    tag = "credentials",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    params(("id" = Uuid, Path, description = "The vault entry")),
    responses(
        (status = 200, description = "The deleted entry's id", body = Envelope<DeletedResponse>),
        Errors<(Authenticated, BadEntryId, EntryNotFound)>,
    )
)]
#[delete("/api/vault/{id}")]
pub async fn delete_vault_entry(
    AuthenticatedUser(caller): AuthenticatedUser,
    id: EntryId,
    state: web::Data<AppState>,
) -> Reply<DeletedResponse> {
    state
        .credentials
        .forward(&caller, id.entry(), rpc!(delete_vault_entry))
        .await
}

/// Re-seals a vault entry of the signed-in user under the newest key.
#[utoipa::path(
    tag = "credentials",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    params(("id" = Uuid, Path, description = "The vault entry")),
    responses(
        (status = 200, description = "The entry, now under the newest key version", body = Envelope<VaultEntryResponse>),
        Errors<(Authenticated, BadEntryId, EntryNotFound, SealedNotOpened)>,
    )
)]
#[post("/api/vault/{id}/rotate")]
pub async fn rotate_vault_entry(
    AuthenticatedUser(caller): AuthenticatedUser,
    id: EntryId,
    state: web::Data<AppState>,
) -> Reply<VaultEntryResponse> {
    state
        .credentials
        .forward(&caller, id.entry(), rpc!(rotate_vault_entry))
        .await
}

pub fn routes(routes: &mut Routes) {
    routes
        .add(store_credentials)
        .add(reveal_credentials)
        .add(create_profile)
        .add(delete_profile)
        .add(reveal_download_credential)
        .add(get_platform_session)
        .add(store_platform_session)
        .add(request_hitl_login)
        .add(list_vault)
        .add(create_vault_entry)
        .add(update_vault_entry)
        .add(delete_vault_entry)
        .add(rotate_vault_entry);
}

#[cfg(test)]
mod tests {
    use serde::de::DeserializeOwned;
    use serde_json::json;

    use super::*;

    fn body<T: DeserializeOwned>(value: Value) -> T {
        match value {
            Value::Object(object) => match crate::body::parse_object(object) {
                Ok(body) => body,
                Err(err) => panic!("{err:?}"),
            },
            _ => unreachable!("tests pass objects"),
        }
    }

    fn parse<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
        match value {
            Value::Object(object) => crate::body::parse_object::<T>(object),
            _ => unreachable!("tests pass objects"),
        }
    }

    fn assert_missing<T>(result: Result<T, ApiError>, field: &str) {
        let Err(err) = result else {
            panic!("{field} is missing, yet the body parsed");
        };
        assert_eq!(err.http_status().as_u16(), 400, "{field}");
        assert_eq!(err.reason, "missing_field", "{field}");
        assert_eq!(err.field.as_deref(), Some(field));
    }

    fn assert_invalid<T>(result: Result<T, ApiError>, field: &str) {
        let Err(err) = result else {
            panic!("{field} is invalid, yet the body parsed");
        };
        assert_eq!(err.http_status().as_u16(), 400, "{field}");
        assert_eq!(err.reason, "invalid_body", "{field}");
        assert_eq!(err.field.as_deref(), Some(field));
    }

    const PROFILE: &str = "0b5c2f4e-8f0a-4c55-9a43-5c8f0e4f2b11";

    /// An answer as the client gets it, in the envelope.
    fn enveloped<T: Serialize>(answer: T) -> Result<Value, serde_json::Error> {
        serde_json::to_value(Envelope::new(answer))
    }

    #[test]
    fn bodies_name_the_missing_or_wrong_field() {
        let store = parse::<StoreCredentialsBody>;
        assert_missing(
            store(json!({"credentials": {"password": "hunter2"}})),
            "creator_profile_id",
        );
        assert_invalid(
            store(json!({"creatorProfileId": "  ", "credentials": {}})),
            "creatorProfileId",
        );
        for missing in [
            json!({"creatorProfileId": PROFILE}),
            json!({"creatorProfileId": PROFILE, "credentials": null}),
        ] {
            assert_missing(store(missing), "credentials");
        }
        assert_missing(parse::<ProfileRefBody>(json!({})), "creator_profile_id");
        assert_missing(
            parse::<HitlRequestBody>(json!({"notes": "please"})),
            "creator_profile_id",
        );
        let create = parse::<CreateProfileBody>;
        assert_missing(create(json!({"username": "ada"})), "platform");
        assert_missing(
            create(json!({"platform": "onlyfans", "username": " "})),
            "username",
        );
        assert_invalid(
            create(json!({"platform": "onlyfans", "username": "ada", "profileData": [1]})),
            "profileData",
        );
        assert_invalid(parse::<VaultEntryRefBody>(json!({"id": ""})), "id");

        let session = parse::<StorePlatformSessionBody>;
        assert_missing(
            session(json!({"creatorProfileId": PROFILE, "userAgent": "UA"})),
            "cookies",
        );
        for not_an_array in [json!({"name": "sid"}), json!("sid=1"), json!(3)] {
            let value =
                json!({"creatorProfileId": PROFILE, "cookies": not_an_array, "userAgent": "UA"});
            assert_invalid(session(value), "cookies");
        }
        assert_missing(
            session(json!({"creatorProfileId": PROFILE, "cookies": []})),
            "user_agent",
        );
        assert_invalid(
            session(
                json!({"creatorProfileId": PROFILE, "cookies": [], "userAgent": "UA", "expiresAt": "soon"}),
            ),
            "expiresAt",
        );

        let entry = parse::<CreateVaultEntryBody>;
        assert_missing(entry(json!({"secret": "s3cret"})), "name");
        assert_missing(entry(json!({"name": "n", "secret": null})), "secret");
        assert_invalid(
            entry(json!({"name": "n", "secret": 1, "kind": "diary"})),
            "kind",
        );

        for empty in [json!({}), json!({"secret": null}), json!({"other": 1})] {
            let err = body::<UpdateVaultEntryBody>(empty)
                .into_request(EntryId(Uuid::new_v4()))
                .err()
                .unwrap();
            assert_eq!(err.http_status().as_u16(), 400);
            assert_eq!(err.reason, "invalid_body");
            assert_eq!(err.field.as_deref(), Some("body"));
        }
        let change = body::<UpdateVaultEntryBody>(json!({"kind": "api_key", "secret": [1]}))
            .into_request(EntryId(Uuid::new_v4()))
            .unwrap();
        assert_eq!(change.kind.as_deref(), Some("api_key"));
        assert_eq!(change.secret.unwrap().json, "[1]");
    }

    #[test]
    fn keys_are_snake_case_with_camel_case_aliases_and_wrong_types_are_named() {
        let camel: StorePlatformSessionBody = body(json!({
            "creatorProfileId": PROFILE, "cookies": [], "userAgent": "UA", "expiresAt": "2026-12-01T00:00:00Z",
        }));
        let snake: StorePlatformSessionBody = body(json!({
            "creator_profile_id": PROFILE, "cookies": [], "user_agent": "UA", "expires_at": "2026-12-01T00:00:00Z",
        }));
        for parsed in [camel, snake] {
            assert_eq!(parsed.creator_profile_id.to_string(), PROFILE);
            assert_eq!(parsed.user_agent.as_str(), "UA");
            assert_eq!(
                parsed.expires_at.map(|at| at.timestamp()),
                Some(1_796_083_200)
            );
        }
        let profile: CreateProfileBody = body(json!({
            "platform": "onlyfans", "username": "ada", "scrapeEnabled": true,
            "scrapeFrequency": "0 * * * *", "profileData": {"fans": 3},
        }));
        assert_eq!(profile.scrape_enabled, Some(true));
        assert_eq!(profile.scrape_frequency.as_deref(), Some("0 * * * *"));
        assert_eq!(profile.profile_data.unwrap()["fans"], 3);
        let entry: CreateVaultEntryBody =
            body(json!({"name": "n", "creatorProfileId": PROFILE, "secret": ["a"]}));
        assert_eq!(
            entry.creator_profile_id.map(|id| id.to_string()).as_deref(),
            Some(PROFILE)
        );

        let err = parse::<StoreCredentialsBody>(json!({"creatorProfileId": 12345678}))
            .err()
            .unwrap();
        assert_eq!(err.reason, "invalid_body");
        assert_eq!(err.field.as_deref(), Some("creatorProfileId"));
        assert!(!err.message.contains("12345678"), "{}", err.message);
        let err = parse::<CreateProfileBody>(json!({"scrapeEnabled": "yes"}))
            .err()
            .unwrap();
        assert_eq!(err.field.as_deref(), Some("scrapeEnabled"));
        let err = parse::<UpdateVaultEntryBody>(json!({"name": ["hunter2"]}))
            .err()
            .unwrap();
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
        let err = VaultQuery::parse("kind=diary").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("kind"));
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
            enveloped(ProfileResponse::from(profile.clone())).unwrap(),
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
            enveloped(revealed).unwrap(),
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
            enveloped(SessionStoredResponse::from(info.clone())).unwrap(),
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
            enveloped(session).unwrap(),
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
            enveloped(HitlResponse::from(hitl)).unwrap(),
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
            enveloped(VaultListResponse::from(pb::VaultList {
                entries: vec![entry.clone()],
                filter_count: 1,
                total_count: 4,
            }))
            .unwrap(),
            json!({"ok": true, "success": true, "data": [entry_json],
                   "meta": {"total_count": 4, "filter_count": 1}})
        );
        assert_eq!(
            enveloped(VaultEntryResponse::from(entry.clone())).unwrap(),
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
            enveloped(revealed).unwrap(),
            json!({"ok": true, "success": true, "credential": with_secret})
        );
    }

    #[test]
    fn secrets_travel_as_json_text_and_never_show_in_debug() {
        let value = json!({"password": "hunter2", "codes": [1, 2]});
        let secret = SecretValue(value.clone()).seal();
        assert_eq!(serde_json::from_str::<Value>(&secret.json).unwrap(), value);
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert_eq!(open(None, "test").unwrap(), Value::Null);
        assert_eq!(open(sealed(""), "test").unwrap(), Value::Null);
        assert_eq!(open(Some(secret), "test").unwrap(), value);
    }
}
