//! What svc-credentials does, as plain async methods over the database; the gRPC layer only
//! translates. These methods are the authority on ownership, sealing and auditing.

use std::sync::Arc;

use common::ApiError;
use common::identity::Identity;
use common::quota::QuotaClient;
use deadpool_postgres::Pool;
use serde_json::Value;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::crypto::{self, Binding, CryptoError, KeyRing, Opened};
use crate::domain::{self, Caller, Shape};
use crate::error::VaultError;
use crate::store::{
    self, AuditLine, EntryRow, HitlRow, NewEntry, NewProfile, NewSession, PROFILE_CREDENTIALS,
    ProfileRow, SESSION_COOKIES, SealedField, SealedValue, SessionRow, VAULT_SECRET,
};

/// The audit's name for each way a secret can be revealed.
pub mod paths {
    pub const REVEAL: &str = "reveal";
    pub const REVEAL_DOWNLOAD_CREDENTIAL: &str = "reveal-download-cred";
    pub const GET_PLATFORM_SESSION: &str = "get-platform-session";
}

/// The gauge of svc-usage's tier file that creator profiles hold a unit of each: the tier's limit
/// on connected platforms.
pub const PLATFORMS: &str = "platforms";

/// The key at svc-usage under which creator profile `id` holds its unit of [`PLATFORMS`]: made
/// from the profile's id, chosen before the call, so that a retry never takes a second unit and a
/// delete (when there is one) releases exactly this one.
pub fn platforms_key(id: Uuid) -> String {
    format!("creator_profile:{id}")
}

/// Where a sealed value of `field` in row `row` is bound.
pub fn binding(field: SealedField, row: Uuid) -> Binding {
    Binding {
        table: field.table,
        row,
        field: field.column,
    }
}

/// A revealed secret: JSON text, wiped from memory when dropped.
pub struct Plaintext {
    pub json: Zeroizing<String>,
    pub key_version: u32,
}

impl std::fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Plaintext(v{}, [redacted])", self.key_version)
    }
}

impl TryFrom<Opened> for Plaintext {
    type Error = VaultError;

    /// Our secrets are JSON text. A record of the original service that is not (a bare string)
    /// is given as a JSON string, so that every answer is JSON.
    fn try_from(opened: Opened) -> Result<Self, VaultError> {
        let text = std::str::from_utf8(&opened.plaintext).map_err(|_| CryptoError::Malformed)?;
        let json = if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() {
            Zeroizing::new(text.to_owned())
        } else {
            Zeroizing::new(Value::String(text.to_owned()).to_string())
        };
        Ok(Self {
            json,
            key_version: opened.version,
        })
    }
}

pub struct NewProfileInput {
    pub platform: String,
    pub username: String,
    pub credentials: Option<String>,
    pub scrape_enabled: bool,
    pub scrape_frequency: String,
    pub profile_data_json: String,
}

pub struct NewEntryInput {
    pub name: String,
    pub kind: String,
    pub platform: String,
    pub creator_profile_id: String,
    pub secret: Option<String>,
}

pub struct EntryChanges {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub platform: Option<String>,
    pub secret: Option<String>,
}

pub struct VaultPage {
    pub entries: Vec<EntryRow>,
    pub total_count: i64,
    pub filter_count: i64,
}

/// What is being revealed, for the audit.
struct Reveal {
    owner_user_id: Uuid,
    field: SealedField,
    subject_id: Uuid,
    path: &'static str,
}

pub struct VaultService {
    pool: Pool,
    keys: Arc<KeyRing>,
    max_secret_bytes: usize,
    /// svc-usage, for the `platforms` gauge that creating a profile takes a unit of.
    quota: QuotaClient,
}

impl VaultService {
    pub fn new(
        pool: Pool,
        keys: Arc<KeyRing>,
        max_secret_bytes: usize,
        quota: QuotaClient,
    ) -> Self {
        Self {
            pool,
            keys,
            max_secret_bytes,
            quota,
        }
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    fn seal(
        &self,
        field: SealedField,
        row: Uuid,
        plaintext: &[u8],
    ) -> Result<SealedValue, VaultError> {
        seal(&self.keys, field, row, plaintext)
    }

    fn open(
        &self,
        field: SealedField,
        row: Uuid,
        stored: &Value,
        key_version: Option<i32>,
    ) -> Result<Opened, VaultError> {
        open(&self.keys, field, row, stored, key_version)
    }

    fn secret(
        &self,
        field: &str,
        json: Option<String>,
        shape: Shape,
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        domain::secret(field, json, shape, self.max_secret_bytes)
    }

    /// Writes the audit line of a reveal. Called before the secret leaves the service: no line,
    /// no secret.
    async fn audit(
        &self,
        identity: &Identity,
        caller: Caller,
        reveal: Reveal,
        key_version: u32,
    ) -> Result<(), VaultError> {
        let Reveal {
            owner_user_id,
            field,
            subject_id,
            path,
        } = reveal;
        let (actor, actor_user_id, impersonated_by) = match caller {
            Caller::User {
                id,
                impersonated_by,
            } => ("user", Some(id), impersonated_by),
            Caller::System => ("system", None, None),
        };
        let db = self.pool.get().await?;
        store::audit(
            &db,
            AuditLine {
                actor,
                actor_user_id,
                impersonated_by,
                owner_user_id,
                field,
                subject_id,
                path,
                key_version: i32::try_from(key_version).unwrap_or(i32::MAX),
                request_id: &identity.request_id,
            },
        )
        .await?;
        tracing::info!(
            actor,
            subject_table = field.table,
            %subject_id,
            path,
            key_version,
            "secret revealed"
        );
        Ok(())
    }

    /// Creates a creator profile for the calling user. The profile takes a unit of the tier's
    /// `platforms` gauge at svc-usage first, under [`platforms_key`] of its new id: over the
    /// limit is 403 `limit_reached`, svc-usage unable to answer 403 `quota_check_failed`
    /// (fail-closed), and a profile that is then not stored gives its unit back. A duplicate is
    /// answered 409 `profile_exists` before anything is taken.
    pub async fn create_profile(
        &self,
        identity: &Identity,
        input: NewProfileInput,
    ) -> Result<ProfileRow, VaultError> {
        let user_id = Caller::of(identity)?.user()?;
        let platform = domain::platform(&input.platform)?;
        let username = domain::username(&input.username)?;
        let scrape_frequency = domain::scrape_frequency(&input.scrape_frequency)?;
        let profile_data = domain::profile_data(&input.profile_data_json, self.max_secret_bytes)?;
        let id = Uuid::new_v4();
        let credentials = input
            .credentials
            .map(|json| {
                let plaintext = self.secret("credentials", Some(json), Shape::Any)?;
                self.seal(PROFILE_CREDENTIALS, id, &plaintext)
            })
            .transpose()?;
        if store::profile_exists(&self.pool.get().await?, user_id, &platform, &username).await? {
            return Err(VaultError::ProfileExists);
        }
        let profile = NewProfile {
            id,
            user_id,
            platform: &platform,
            username: &username,
            credentials,
            scrape_enabled: input.scrape_enabled,
            scrape_frequency: scrape_frequency.as_deref(),
            profile_data: &profile_data,
        };
        let insert = || async {
            self.insert_profile_once(profile)
                .await
                .map_err(ApiError::from)
        };
        Ok(self
            .quota
            .held(identity, PLATFORMS, &platforms_key(id), insert)
            .await?)
    }

    /// Deletes a creator profile of the caller's and gives back its unit of `platforms`. When
    /// the give-back fails after the delete, the answer is 503 and a repeated delete gives it
    /// back (the profile is gone, but its key still holds the unit); a profile that is not the
    /// caller's, and holds nothing of theirs, is 404.
    pub async fn delete_profile(&self, identity: &Identity, id: &str) -> Result<Uuid, VaultError> {
        let user_id = Caller::of(identity)?.user()?;
        let id = domain::id("creator_profile_id", id)?;
        let deleted = store::delete_profile(&self.pool.get().await?, id, user_id).await?;
        match self
            .quota
            .release(identity, PLATFORMS, &platforms_key(id))
            .await
        {
            Ok(released) if deleted || released => Ok(id),
            Ok(_) => Err(VaultError::NotFound("creator profile")),
            Err(err) => {
                tracing::warn!(reason = %err.reason, profile = %id, "a deleted profile's platform was not given back");
                Err(VaultError::Api(ApiError::unavailable(
                    "the creator profile is deleted, but its platform could not be given back yet: send the delete again",
                )))
            }
        }
    }

    /// Inserts the profile. An error after the insert committed (its answer lost) must not give
    /// back the unit of a profile that exists, so the profile is looked up once more before the
    /// error is given.
    async fn insert_profile_once(&self, profile: NewProfile<'_>) -> Result<ProfileRow, VaultError> {
        let (id, user_id) = (profile.id, profile.user_id);
        common::db::written_or_found(
            async { store::insert_profile(&self.pool.get().await?, profile).await },
            async { store::profile(&self.pool.get().await?, id, Some(user_id), false).await },
        )
        .await
    }

    pub async fn store_credentials(
        &self,
        identity: &Identity,
        creator_profile_id: &str,
        credentials: Option<String>,
    ) -> Result<ProfileRow, VaultError> {
        let caller = Caller::of(identity)?;
        let id = domain::id("creatorProfileId", creator_profile_id)?;
        let plaintext = self.secret("credentials", credentials, Shape::Any)?;
        let sealed = self.seal(PROFILE_CREDENTIALS, id, &plaintext)?;
        let db = self.pool.get().await?;
        store::set_profile_credentials(&db, id, caller.owner_filter(), &sealed)
            .await?
            .ok_or(VaultError::NotFound("creator profile"))
    }

    pub async fn reveal_credentials(
        &self,
        identity: &Identity,
        creator_profile_id: &str,
    ) -> Result<(ProfileRow, Plaintext), VaultError> {
        let caller = Caller::of(identity)?;
        let id = domain::id("creatorProfileId", creator_profile_id)?;
        let profile = {
            let db = self.pool.get().await?;
            store::profile(&db, id, caller.owner_filter(), false)
                .await?
                .ok_or(VaultError::NotFound("creator profile"))?
        };
        let stored = profile
            .credentials
            .as_ref()
            .ok_or(VaultError::NotFound("credentials"))?;
        let plaintext = Plaintext::try_from(self.open(
            PROFILE_CREDENTIALS,
            id,
            stored,
            profile.credentials_key_version,
        )?)?;
        let reveal = Reveal {
            owner_user_id: profile.user_id,
            field: PROFILE_CREDENTIALS,
            subject_id: id,
            path: paths::REVEAL,
        };
        self.audit(identity, caller, reveal, plaintext.key_version)
            .await?;
        Ok((profile, plaintext))
    }

    /// Replaces the profile's browser session and completes its pending HITL requests, in one
    /// transaction. Returns the session and how many requests it completed.
    pub async fn store_platform_session(
        &self,
        identity: &Identity,
        creator_profile_id: &str,
        cookies: Option<String>,
        user_agent: &str,
        expires_at: &str,
    ) -> Result<(SessionRow, u64), VaultError> {
        let caller = Caller::of(identity)?;
        let profile_id = domain::id("creatorProfileId", creator_profile_id)?;
        let plaintext = self.secret("cookies", cookies, Shape::Array)?;
        let user_agent = domain::user_agent(user_agent)?;
        let expires_at = domain::timestamp("expiresAt", expires_at)?;
        let id = Uuid::new_v4();
        let sealed = self.seal(SESSION_COOKIES, id, &plaintext)?;
        let mut db = self.pool.get().await?;
        let tx = db.transaction().await?;
        let profile = store::profile(&tx, profile_id, caller.owner_filter(), true)
            .await?
            .ok_or(VaultError::NotFound("creator profile"))?;
        let session = store::replace_session(
            &tx,
            NewSession {
                id,
                creator_profile_id: profile_id,
                platform: &profile.platform,
                cookies: sealed,
                user_agent: &user_agent,
                expires_at,
            },
        )
        .await?;
        let completed = store::complete_hitl(&tx, profile_id).await?;
        tx.commit().await?;
        Ok((session, completed))
    }

    /// The profile's session with its cookies; audited, and marked as used.
    pub async fn get_platform_session(
        &self,
        identity: &Identity,
        creator_profile_id: &str,
    ) -> Result<(SessionRow, Plaintext), VaultError> {
        let caller = Caller::of(identity)?;
        let profile_id = domain::id("creatorProfileId", creator_profile_id)?;
        let (mut session, owner) = {
            let db = self.pool.get().await?;
            store::session(&db, profile_id, caller.owner_filter())
                .await?
                .ok_or(VaultError::NotFound("platform session"))?
        };
        let plaintext = Plaintext::try_from(self.open(
            SESSION_COOKIES,
            session.id,
            &session.cookies,
            session.cookies_key_version,
        )?)?;
        let reveal = Reveal {
            owner_user_id: owner,
            field: SESSION_COOKIES,
            subject_id: session.id,
            path: paths::GET_PLATFORM_SESSION,
        };
        self.audit(identity, caller, reveal, plaintext.key_version)
            .await?;
        let db = self.pool.get().await?;
        session.last_used_at = Some(store::mark_session_used(&db, session.id).await?);
        Ok((session, plaintext))
    }

    pub async fn request_hitl_login(
        &self,
        identity: &Identity,
        creator_profile_id: &str,
        notes: &str,
    ) -> Result<HitlRow, VaultError> {
        let caller = Caller::of(identity)?;
        let profile_id = domain::id("creatorProfileId", creator_profile_id)?;
        let notes = domain::notes(notes)?;
        let db = self.pool.get().await?;
        let profile = store::profile(&db, profile_id, caller.owner_filter(), false)
            .await?
            .ok_or(VaultError::NotFound("creator profile"))?;
        store::request_hitl(&db, Uuid::new_v4(), &profile, notes.as_deref()).await
    }

    pub async fn list_vault(
        &self,
        identity: &Identity,
        limit: u32,
        offset: u32,
        kind: &str,
    ) -> Result<VaultPage, VaultError> {
        let user_id = Caller::of(identity)?.user()?;
        let (limit, offset) = domain::page(limit, offset)?;
        let kind = if kind.trim().is_empty() {
            None
        } else {
            Some(domain::kind(kind)?)
        };
        let db = self.pool.get().await?;
        let entries = store::list_entries(&db, user_id, kind.as_deref(), limit, offset).await?;
        let (total_count, filter_count) =
            store::count_entries(&db, user_id, kind.as_deref()).await?;
        Ok(VaultPage {
            entries,
            total_count,
            filter_count,
        })
    }

    pub async fn create_vault_entry(
        &self,
        identity: &Identity,
        input: NewEntryInput,
    ) -> Result<EntryRow, VaultError> {
        let user_id = Caller::of(identity)?.user()?;
        let name = domain::name(&input.name)?;
        let kind = domain::kind(&input.kind)?;
        let mut platform = optional(&input.platform, domain::platform)?;
        let plaintext = self.secret("secret", input.secret, Shape::Any)?;
        let db = self.pool.get().await?;
        let creator_profile_id = match optional(&input.creator_profile_id, |text| {
            domain::id("creatorProfileId", text)
        })? {
            None => None,
            Some(profile_id) => {
                let profile = store::profile(&db, profile_id, Some(user_id), false)
                    .await?
                    .ok_or_else(|| {
                        ApiError::not_found("creator profile").with_field("creatorProfileId")
                    })?;
                platform.get_or_insert(profile.platform);
                Some(profile_id)
            }
        };
        let id = Uuid::new_v4();
        let secret = self.seal(VAULT_SECRET, id, &plaintext)?;
        store::insert_entry(
            &db,
            NewEntry {
                id,
                user_id,
                creator_profile_id,
                name: &name,
                kind: &kind,
                platform: platform.as_deref(),
                secret,
            },
        )
        .await
    }

    pub async fn update_vault_entry(
        &self,
        identity: &Identity,
        id: &str,
        changes: EntryChanges,
    ) -> Result<EntryRow, VaultError> {
        let user_id = Caller::of(identity)?.user()?;
        let id = domain::id("id", id)?;
        if changes.name.is_none()
            && changes.kind.is_none()
            && changes.platform.is_none()
            && changes.secret.is_none()
        {
            return Err(VaultError::invalid(
                "body",
                "nothing to update: send name, kind, platform or secret",
            ));
        }
        let name = changes.name.as_deref().map(domain::name).transpose()?;
        let kind = changes.kind.as_deref().map(domain::kind).transpose()?;
        // An empty platform clears it.
        let platform = changes
            .platform
            .as_deref()
            .map(|text| optional(text, domain::platform))
            .transpose()?;
        let plaintext = changes
            .secret
            .map(|json| self.secret("secret", Some(json), Shape::Any))
            .transpose()?;
        let mut db = self.pool.get().await?;
        let tx = db.transaction().await?;
        let mut entry = store::entry(&tx, id, user_id, true)
            .await?
            .ok_or(VaultError::NotFound("vault entry"))?;
        if let Some(name) = name {
            entry.name = name;
        }
        if let Some(kind) = kind {
            entry.kind = kind;
        }
        if let Some(platform) = platform {
            entry.platform = platform;
        }
        if let Some(plaintext) = plaintext {
            let sealed = self.seal(VAULT_SECRET, id, &plaintext)?;
            entry.secret = sealed.json;
            entry.secret_key_version = Some(sealed.version);
        }
        let entry = store::update_entry(&tx, &entry, false).await?;
        tx.commit().await?;
        Ok(entry)
    }

    pub async fn delete_vault_entry(
        &self,
        identity: &Identity,
        id: &str,
    ) -> Result<Uuid, VaultError> {
        let user_id = Caller::of(identity)?.user()?;
        let id = domain::id("id", id)?;
        let db = self.pool.get().await?;
        if store::delete_entry(&db, id, user_id).await? {
            Ok(id)
        } else {
            Err(VaultError::NotFound("vault entry"))
        }
    }

    /// Re-seals the entry under the newest key (with a fresh nonce, whatever its version).
    pub async fn rotate_vault_entry(
        &self,
        identity: &Identity,
        id: &str,
    ) -> Result<EntryRow, VaultError> {
        let user_id = Caller::of(identity)?.user()?;
        let id = domain::id("id", id)?;
        let mut db = self.pool.get().await?;
        let tx = db.transaction().await?;
        let mut entry = store::entry(&tx, id, user_id, true)
            .await?
            .ok_or(VaultError::NotFound("vault entry"))?;
        let opened = self.open(VAULT_SECRET, id, &entry.secret, entry.secret_key_version)?;
        let sealed = self.seal(VAULT_SECRET, id, &opened.plaintext)?;
        entry.secret = sealed.json;
        entry.secret_key_version = Some(sealed.version);
        let entry = store::update_entry(&tx, &entry, true).await?;
        tx.commit().await?;
        Ok(entry)
    }

    pub async fn reveal_vault_entry(
        &self,
        identity: &Identity,
        id: &str,
    ) -> Result<(EntryRow, Plaintext), VaultError> {
        let caller = Caller::of(identity)?;
        let user_id = caller.user()?;
        let id = domain::id("id", id)?;
        let entry = {
            let db = self.pool.get().await?;
            store::entry(&db, id, user_id, false)
                .await?
                .ok_or(VaultError::NotFound("vault entry"))?
        };
        let plaintext = Plaintext::try_from(self.open(
            VAULT_SECRET,
            id,
            &entry.secret,
            entry.secret_key_version,
        )?)?;
        let reveal = Reveal {
            owner_user_id: user_id,
            field: VAULT_SECRET,
            subject_id: id,
            path: paths::REVEAL_DOWNLOAD_CREDENTIAL,
        };
        self.audit(identity, caller, reveal, plaintext.key_version)
            .await?;
        Ok((entry, plaintext))
    }
}

/// `None` for an empty text, else the checked value.
fn optional<T>(
    text: &str,
    check: impl FnOnce(&str) -> Result<T, VaultError>,
) -> Result<Option<T>, VaultError> {
    if text.trim().is_empty() {
        Ok(None)
    } else {
        check(text).map(Some)
    }
}

pub fn seal(
    keys: &KeyRing,
    field: SealedField,
    row: Uuid,
    plaintext: &[u8],
) -> Result<SealedValue, VaultError> {
    let sealed = keys.seal(&binding(field, row), plaintext)?;
    Ok(SealedValue {
        json: sealed.to_json(),
        version: i32::try_from(sealed.version).map_err(|_| CryptoError::Malformed)?,
    })
}

/// Opens a stored value. `key_version` is the row's key-version column: NULL only in a row
/// imported from the original service, the one place its unbound records may open.
pub fn open(
    keys: &KeyRing,
    field: SealedField,
    row: Uuid,
    stored: &Value,
    key_version: Option<i32>,
) -> Result<Opened, VaultError> {
    let text = crypto::enc_text(stored)?;
    let binding = binding(field, row);
    Ok(match key_version {
        Some(_) => keys.open(&binding, text)?,
        None => keys.open_imported(&binding, text)?,
    })
}
