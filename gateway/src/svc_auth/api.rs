//! svc-auth's `/api` routes: invites, registration, onboarding, RBAC sync, impersonation.

use actix_web::{get, patch, post, web};
use common::identity::Identity;
use proto::auth::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{UserReply, UserView};
use crate::body::NonBlank;
use crate::kit::non_empty;
use crate::kit::{
    AdminOnly, Authenticated, Envelope, Errors, Input, JsonBody, Reply, Routes, SecretOnly,
};
use crate::rate_limit::RegisterAttempt;
use crate::session::{Admin, AuthenticatedUser, SystemCaller};
use crate::state::AppState;
use crate::{error_set, rpc};

#[derive(Debug, Deserialize, ToSchema)]
pub struct InviteBody {
    /// When set, only this email can redeem the invite.
    #[schema(format = Email, max_length = 254)]
    pub email: Option<String>,
    /// Hours until the invite expires, 1 to 720; default 72.
    #[schema(minimum = 1, maximum = 720, example = 72)]
    pub expires_in_hours: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Invite {
    pub code: String,
    /// RFC 3339.
    pub expires_at: String,
    /// The only email that can redeem it; null when anyone can.
    pub email: Option<String>,
}

impl From<pb::Invite> for Invite {
    fn from(invite: pb::Invite) -> Self {
        Self {
            code: invite.code,
            expires_at: invite.expires_at,
            email: non_empty(invite.email),
        }
    }
}

error_set! {
    InviteErrors {
        400 "invalid_body": "`email` is not an email address, or `expires_in_hours` is outside 1..=720",
    }
}

/// Creates a registration invite (administrators only).
#[utoipa::path(
    tag = "auth",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    request_body = InviteBody,
    responses(
        (status = 200, description = "The invite", body = Envelope<Invite>),
        Errors<(Authenticated, AdminOnly, JsonBody, InviteErrors)>,
    )
)]
#[post("/api/invites")]
pub async fn create_invite(
    Input(Admin(identity), body): Input<Admin, InviteBody>,
    state: web::Data<AppState>,
) -> Reply<Invite> {
    let request = pb::CreateInviteRequest {
        email: body.email,
        expires_in_hours: body.expires_in_hours,
    };
    state
        .auth
        .forward(&identity, request, rpc!(create_invite))
        .await
}

#[derive(Deserialize, ToSchema)]
pub struct RegisterBody {
    #[schema(format = Email, max_length = 254, example = "ada@example.com")]
    pub email: NonBlank,
    /// 8 characters to 256 bytes.
    #[schema(value_type = String, format = Password, min_length = 8)]
    pub password: NonBlank,
    pub invite_code: NonBlank,
    #[schema(max_length = 100)]
    pub first_name: Option<String>,
    #[schema(max_length = 100)]
    pub last_name: Option<String>,
}

error_set! {
    RegisterErrors {
        400 "invalid_body": "`email` not an email address, `password` shorter than 8 characters or over 256 bytes, a name over 100 characters",
        403 "invalid_invite": "the invite is unknown, used, expired or for another email",
        409 "email_taken": "a user with this email exists",
        429 "rate_limited": "too many registrations from this address; `Retry-After` tells the seconds to wait",
        503 "service_unavailable": "svc-auth is down or did not answer in time",
    }
}

/// Registers a new user with an invite code. New users are active `creator`s on the `starter`
/// tier in onboarding state `EXTENSION_INSTALL`.
///
/// Rate limited per client address (10 per 15 minutes by default).
#[utoipa::path(
    tag = "auth",
    request_body = RegisterBody,
    responses(
        (status = 200, description = "The new user", body = Envelope<UserReply>),
        Errors<(JsonBody, RegisterErrors)>,
    )
)]
#[post("/api/register")]
pub async fn register(
    Input(RegisterAttempt(identity), body): Input<RegisterAttempt, RegisterBody>,
    state: web::Data<AppState>,
) -> Reply<UserReply> {
    let request = pb::RegisterRequest {
        email: body.email.into(),
        password: body.password.into(),
        invite_code: body.invite_code.into(),
        first_name: body.first_name,
        last_name: body.last_name,
    };
    state.auth.forward(&identity, request, rpc!(register)).await
}

/// The steps of onboarding, in order.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OnboardingState {
    ExtensionInstall,
    DataCollection,
    Processing,
    Complete,
}

impl OnboardingState {
    fn as_str(self) -> &'static str {
        match self {
            Self::ExtensionInstall => "EXTENSION_INSTALL",
            Self::DataCollection => "DATA_COLLECTION",
            Self::Processing => "PROCESSING",
            Self::Complete => "COMPLETE",
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Onboarding {
    #[schema(format = Uuid)]
    pub user_id: String,
    /// `EXTENSION_INSTALL`, `DATA_COLLECTION`, `PROCESSING` or `COMPLETE`.
    #[schema(example = "EXTENSION_INSTALL")]
    pub state: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl From<pb::Onboarding> for Onboarding {
    fn from(onboarding: pb::Onboarding) -> Self {
        Self {
            user_id: onboarding.user_id,
            state: onboarding.state,
            updated_at: onboarding.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct OnboardingBody {
    /// The new state. Non-administrators may only move forward. Also accepted as
    /// `onboarding_state`, the name `/users/me` and `/api/register` answer with.
    #[serde(alias = "onboarding_state")]
    pub state: OnboardingState,
    /// Administrators may name another user.
    pub user_id: Option<Uuid>,
}

error_set! {
    OnboardingErrors {
        403 "onboarding_backward": "a backward move by a non-administrator",
        403 "forbidden": "`user_id` names another user and the caller is not an administrator",
        404 "not_found": "no such user",
    }
}

/// The signed-in user's onboarding state.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "The onboarding state", body = Envelope<Onboarding>),
        Errors<Authenticated>,
    )
)]
#[get("/api/onboarding")]
pub async fn get_onboarding(
    AuthenticatedUser(identity): AuthenticatedUser,
    state: web::Data<AppState>,
) -> Reply<Onboarding> {
    onboarding_of(&identity, &state).await
}

async fn onboarding_of(identity: &Identity, state: &AppState) -> Reply<Onboarding> {
    let request = pb::GetOnboardingRequest {};
    state
        .auth
        .forward(identity, request, rpc!(get_onboarding))
        .await
}

/// The signed-in user's onboarding state (same as `GET /api/onboarding`).
#[utoipa::path(
    tag = "auth",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "The onboarding state", body = Envelope<Onboarding>),
        Errors<Authenticated>,
    )
)]
#[get("/api/onboarding/state")]
pub async fn get_onboarding_state(
    AuthenticatedUser(identity): AuthenticatedUser,
    state: web::Data<AppState>,
) -> Reply<Onboarding> {
    onboarding_of(&identity, &state).await
}

/// Moves the onboarding state: `EXTENSION_INSTALL → DATA_COLLECTION → PROCESSING → COMPLETE`,
/// forward only unless the caller is an administrator.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    request_body = OnboardingBody,
    responses(
        (status = 200, description = "The new state", body = Envelope<Onboarding>),
        Errors<(Authenticated, JsonBody, OnboardingErrors)>,
    )
)]
#[patch("/api/onboarding")]
pub async fn patch_onboarding(
    Input(AuthenticatedUser(identity), body): Input<AuthenticatedUser, OnboardingBody>,
    state: web::Data<AppState>,
) -> Reply<Onboarding> {
    move_onboarding(&identity, body, &state).await
}

async fn move_onboarding(
    identity: &Identity,
    body: OnboardingBody,
    state: &AppState,
) -> Reply<Onboarding> {
    let request = pb::SetOnboardingRequest {
        state: body.state.as_str().to_owned(),
        user_id: body.user_id.map(|id| id.to_string()),
    };
    state
        .auth
        .forward(identity, request, rpc!(set_onboarding))
        .await
}

/// Moves the onboarding state (same as `PATCH /api/onboarding`).
#[utoipa::path(
    tag = "auth",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    request_body = OnboardingBody,
    responses(
        (status = 200, description = "The new state", body = Envelope<Onboarding>),
        Errors<(Authenticated, JsonBody, OnboardingErrors)>,
    )
)]
#[patch("/api/onboarding/state")]
pub async fn patch_onboarding_state(
    Input(AuthenticatedUser(identity), body): Input<AuthenticatedUser, OnboardingBody>,
    state: web::Data<AppState>,
) -> Reply<Onboarding> {
    move_onboarding(&identity, body, &state).await
}

/// Account statuses, as Directus has them.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Active,
    Invited,
    Draft,
    Suspended,
    Archived,
}

/// Subscription tiers.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Starter,
    Creator,
    Pro,
    Studio,
}

/// Serde's own name of a unit variant, which is what svc-auth expects.
fn variant_name<T: std::fmt::Debug>(value: T) -> String {
    format!("{value:?}").to_lowercase()
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RbacSyncBody {
    pub user_id: Uuid,
    /// Role name (`administrator`, `creator`, `viewer`) or role uuid.
    pub role: Option<String>,
    pub status: Option<Status>,
    pub pricing_tier: Option<Tier>,
}

error_set! {
    RbacSyncErrors {
        400 "invalid_body": "`role` is neither a role name nor a role uuid",
        404 "not_found": "no such user",
    }
}

/// Role, status or tier change from the identity provider's webhook. Authenticated by the
/// `X-RBAC-SYNC-SECRET` shared secret (a user token does not count).
#[utoipa::path(
    tag = "auth",
    security(("rbac_sync_secret" = [])),
    request_body = RbacSyncBody,
    responses(
        (status = 200, description = "The user after the change", body = Envelope<UserReply>),
        Errors<(SecretOnly, JsonBody, RbacSyncErrors)>,
    )
)]
#[post("/api/rbac-sync")]
pub async fn rbac_sync(
    Input(SystemCaller(identity), body): Input<SystemCaller, RbacSyncBody>,
    state: web::Data<AppState>,
) -> Reply<UserReply> {
    let request = pb::RbacSyncRequest {
        user_id: body.user_id.to_string(),
        role: body.role,
        status: body.status.map(variant_name),
        pricing_tier: body.pricing_tier.map(variant_name),
    };
    let reply = state
        .auth
        .forward(&identity, request, rpc!(rbac_sync))
        .await?;
    // A suspension or a demotion takes effect here at once, not when the cache entry expires.
    state.resolver.forget(body.user_id).await;
    Ok(reply)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ImpersonateBody {
    /// The user to act as.
    pub user_id: Uuid,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Impersonation {
    /// A short-lived access token for the target user, carrying `impersonated_by`.
    pub access_token: String,
    /// Lifetime of the token in milliseconds.
    pub expires: i64,
    pub user: Option<UserView>,
}

impl From<pb::ImpersonateResponse> for Impersonation {
    fn from(reply: pb::ImpersonateResponse) -> Self {
        Self {
            access_token: reply.access_token,
            expires: reply.expires_ms,
            user: reply.user.map(UserView::from),
        }
    }
}

error_set! {
    UserNotFound {
        404 "not_found": "no such user",
    }
}

/// Issues a short-lived token to act as another user (administrators only; audited).
#[utoipa::path(
    tag = "auth",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    request_body = ImpersonateBody,
    responses(
        (status = 200, description = "The token and the user it acts as", body = Envelope<Impersonation>),
        Errors<(Authenticated, AdminOnly, JsonBody, UserNotFound)>,
    )
)]
#[post("/api/impersonate")]
pub async fn impersonate(
    Input(Admin(identity), body): Input<Admin, ImpersonateBody>,
    state: web::Data<AppState>,
) -> Reply<Impersonation> {
    let request = pb::ImpersonateRequest {
        user_id: body.user_id.to_string(),
    };
    let reply = state.auth.forward(&identity, request, rpc!(impersonate));
    reply.await
}

pub fn routes(routes: &mut Routes) {
    routes
        .add(create_invite)
        .add(register)
        .add(get_onboarding)
        .add(get_onboarding_state)
        .add(patch_onboarding)
        .add(patch_onboarding_state)
        .add(rbac_sync)
        .add(impersonate);
}
