//! `genie.credentials.v1.Credentials` over gRPC: translates messages to and from
//! [`VaultService`] calls.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use common::grpc::identity;
use proto::credentials::v1 as pb;
use tonic::{Request, Response, Status};

use crate::crypto;
use crate::service::{EntryChanges, NewEntryInput, NewProfileInput, Plaintext, VaultService};
use crate::store::{EntryRow, HitlRow, ProfileRow, SessionRow};

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn rfc3339_or_empty(at: Option<DateTime<Utc>>) -> String {
    at.map(rfc3339).unwrap_or_default()
}

/// The key version of a sealed value: its column, or for an imported record its text.
fn key_version(column: Option<i32>, stored: Option<&serde_json::Value>) -> u32 {
    column
        .and_then(|version| u32::try_from(version).ok())
        .or_else(|| {
            stored
                .and_then(|stored| crypto::enc_text(stored).ok())
                .and_then(crypto::version_of)
        })
        .unwrap_or(0)
}

fn secret_json(secret: Option<pb::Secret>) -> Option<String> {
    secret.map(|secret| secret.json)
}

impl From<Plaintext> for pb::Secret {
    fn from(plaintext: Plaintext) -> Self {
        // The message owns a copy that tonic encodes; ours is wiped when `plaintext` drops.
        Self {
            json: plaintext.json.as_str().to_owned(),
        }
    }
}

impl From<ProfileRow> for pb::CreatorProfile {
    fn from(profile: ProfileRow) -> Self {
        Self {
            credentials_key_version: key_version(
                profile.credentials_key_version,
                profile.credentials.as_ref(),
            ),
            has_credentials: profile.credentials.is_some(),
            id: profile.id.to_string(),
            user_id: profile.user_id.to_string(),
            platform: profile.platform,
            username: profile.username,
            scrape_enabled: profile.scrape_enabled,
            scrape_frequency: profile.scrape_frequency.unwrap_or_default(),
            scrape_status: profile.scrape_status,
            last_scraped_at: rfc3339_or_empty(profile.last_scraped_at),
            profile_data_json: profile.profile_data.to_string(),
            created_at: rfc3339(profile.created_at),
            updated_at: rfc3339(profile.updated_at),
        }
    }
}

fn session_info(session: SessionRow, completed_hitl_sessions: u64) -> pb::PlatformSessionInfo {
    pb::PlatformSessionInfo {
        key_version: key_version(session.cookies_key_version, Some(&session.cookies)),
        id: session.id.to_string(),
        creator_profile_id: session.creator_profile_id.to_string(),
        platform: session.platform,
        user_agent: session.user_agent,
        captured_at: rfc3339(session.captured_at),
        expires_at: rfc3339_or_empty(session.expires_at),
        last_used_at: rfc3339_or_empty(session.last_used_at),
        completed_hitl_sessions: u32::try_from(completed_hitl_sessions).unwrap_or(u32::MAX),
    }
}

impl From<HitlRow> for pb::HitlSession {
    fn from(hitl: HitlRow) -> Self {
        Self {
            id: hitl.id.to_string(),
            creator_profile_id: hitl.creator_profile_id.to_string(),
            platform: hitl.platform,
            status: hitl.status,
            requested_at: rfc3339(hitl.requested_at),
            completed_at: rfc3339_or_empty(hitl.completed_at),
            notes: hitl.notes.unwrap_or_default(),
        }
    }
}

impl From<EntryRow> for pb::VaultEntry {
    fn from(entry: EntryRow) -> Self {
        Self {
            key_version: key_version(entry.secret_key_version, Some(&entry.secret)),
            id: entry.id.to_string(),
            name: entry.name,
            kind: entry.kind,
            platform: entry.platform.unwrap_or_default(),
            creator_profile_id: entry
                .creator_profile_id
                .map(|id| id.to_string())
                .unwrap_or_default(),
            created_at: rfc3339(entry.created_at),
            updated_at: rfc3339(entry.updated_at),
            rotated_at: rfc3339_or_empty(entry.rotated_at),
        }
    }
}

#[derive(Clone)]
pub struct CredentialsGrpc {
    service: Arc<VaultService>,
}

impl CredentialsGrpc {
    pub fn new(service: Arc<VaultService>) -> Self {
        Self { service }
    }
}

#[tonic::async_trait]
impl pb::credentials_server::Credentials for CredentialsGrpc {
    async fn create_profile(
        &self,
        request: Request<pb::CreateProfileRequest>,
    ) -> Result<Response<pb::CreatorProfile>, Status> {
        let caller = identity(&request)?;
        let body = request.into_inner();
        let input = NewProfileInput {
            platform: body.platform,
            username: body.username,
            credentials: secret_json(body.credentials),
            scrape_enabled: body.scrape_enabled,
            scrape_frequency: body.scrape_frequency,
            profile_data_json: body.profile_data_json,
        };
        let profile = self.service.create_profile(&caller, input).await?;
        Ok(Response::new(profile.into()))
    }

    async fn store_credentials(
        &self,
        request: Request<pb::StoreCredentialsRequest>,
    ) -> Result<Response<pb::CreatorProfile>, Status> {
        let caller = identity(&request)?;
        let body = request.into_inner();
        let profile = self
            .service
            .store_credentials(
                &caller,
                &body.creator_profile_id,
                secret_json(body.credentials),
            )
            .await?;
        Ok(Response::new(profile.into()))
    }

    async fn reveal_credentials(
        &self,
        request: Request<pb::ProfileRef>,
    ) -> Result<Response<pb::RevealedCredentials>, Status> {
        let caller = identity(&request)?;
        let body = request.into_inner();
        let (profile, plaintext) = self
            .service
            .reveal_credentials(&caller, &body.creator_profile_id)
            .await?;
        Ok(Response::new(pb::RevealedCredentials {
            creator_profile_id: profile.id.to_string(),
            key_version: plaintext.key_version,
            credentials: Some(plaintext.into()),
        }))
    }

    async fn store_platform_session(
        &self,
        request: Request<pb::StorePlatformSessionRequest>,
    ) -> Result<Response<pb::PlatformSessionInfo>, Status> {
        let caller = identity(&request)?;
        let body = request.into_inner();
        let (session, completed) = self
            .service
            .store_platform_session(
                &caller,
                &body.creator_profile_id,
                secret_json(body.cookies),
                &body.user_agent,
                &body.expires_at,
            )
            .await?;
        Ok(Response::new(session_info(session, completed)))
    }

    async fn get_platform_session(
        &self,
        request: Request<pb::ProfileRef>,
    ) -> Result<Response<pb::PlatformSession>, Status> {
        let caller = identity(&request)?;
        let body = request.into_inner();
        let (session, plaintext) = self
            .service
            .get_platform_session(&caller, &body.creator_profile_id)
            .await?;
        Ok(Response::new(pb::PlatformSession {
            info: Some(session_info(session, 0)),
            cookies: Some(plaintext.into()),
        }))
    }

    async fn request_hitl_login(
        &self,
        request: Request<pb::RequestHitlLoginRequest>,
    ) -> Result<Response<pb::HitlSession>, Status> {
        let caller = identity(&request)?;
        let body = request.into_inner();
        let hitl = self
            .service
            .request_hitl_login(&caller, &body.creator_profile_id, &body.notes)
            .await?;
        Ok(Response::new(hitl.into()))
    }

    async fn list_vault(
        &self,
        request: Request<pb::ListVaultRequest>,
    ) -> Result<Response<pb::VaultList>, Status> {
        let caller = identity(&request)?;
        let body = request.into_inner();
        let page = self
            .service
            .list_vault(&caller, body.limit, body.offset, &body.kind)
            .await?;
        Ok(Response::new(pb::VaultList {
            entries: page.entries.into_iter().map(Into::into).collect(),
            filter_count: u64::try_from(page.filter_count).unwrap_or_default(),
            total_count: u64::try_from(page.total_count).unwrap_or_default(),
        }))
    }

    async fn create_vault_entry(
        &self,
        request: Request<pb::CreateVaultEntryRequest>,
    ) -> Result<Response<pb::VaultEntry>, Status> {
        let caller = identity(&request)?;
        let body = request.into_inner();
        let input = NewEntryInput {
            name: body.name,
            kind: body.kind,
            platform: body.platform,
            creator_profile_id: body.creator_profile_id,
            secret: secret_json(body.secret),
        };
        let entry = self.service.create_vault_entry(&caller, input).await?;
        Ok(Response::new(entry.into()))
    }

    async fn update_vault_entry(
        &self,
        request: Request<pb::UpdateVaultEntryRequest>,
    ) -> Result<Response<pb::VaultEntry>, Status> {
        let caller = identity(&request)?;
        let body = request.into_inner();
        let changes = EntryChanges {
            name: body.name,
            kind: body.kind,
            platform: body.platform,
            secret: secret_json(body.secret),
        };
        let entry = self
            .service
            .update_vault_entry(&caller, &body.id, changes)
            .await?;
        Ok(Response::new(entry.into()))
    }

    async fn delete_profile(
        &self,
        request: Request<pb::ProfileRef>,
    ) -> Result<Response<pb::DeletedProfile>, Status> {
        let caller = identity(&request)?;
        let body = request.into_inner();
        let id = self
            .service
            .delete_profile(&caller, &body.creator_profile_id)
            .await?;
        Ok(Response::new(pb::DeletedProfile { id: id.to_string() }))
    }

    async fn delete_vault_entry(
        &self,
        request: Request<pb::VaultEntryRef>,
    ) -> Result<Response<pb::DeletedVaultEntry>, Status> {
        let caller = identity(&request)?;
        let body = request.into_inner();
        let id = self.service.delete_vault_entry(&caller, &body.id).await?;
        Ok(Response::new(pb::DeletedVaultEntry { id: id.to_string() }))
    }

    async fn rotate_vault_entry(
        &self,
        request: Request<pb::VaultEntryRef>,
    ) -> Result<Response<pb::VaultEntry>, Status> {
        let caller = identity(&request)?;
        let body = request.into_inner();
        let entry = self.service.rotate_vault_entry(&caller, &body.id).await?;
        Ok(Response::new(entry.into()))
    }

    async fn reveal_vault_entry(
        &self,
        request: Request<pb::VaultEntryRef>,
    ) -> Result<Response<pb::RevealedVaultEntry>, Status> {
        let caller = identity(&request)?;
        let body = request.into_inner();
        let (entry, plaintext) = self.service.reveal_vault_entry(&caller, &body.id).await?;
        Ok(Response::new(pb::RevealedVaultEntry {
            entry: Some(entry.into()),
            secret: Some(plaintext.into()),
        }))
    }
}
