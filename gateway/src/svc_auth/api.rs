//! svc-auth's `/api` routes: invites, registration, onboarding, RBAC sync, impersonation.

use actix_web::http::header::{CACHE_CONTROL, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use common::ApiError;
use common::identity::Identity;
use proto::auth::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{UserResponse, UserView, non_empty};
use crate::body::{Json, required};
use crate::errors::ErrorResponse;
use crate::middleware::request_id;
use crate::rate_limit::RegisterAttempt;
use crate::session::{AuthenticatedUser, SystemCaller};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
pub struct InviteBody {
    /// When set, only this email can redeem the invite.
    pub email: Option<String>,
    /// Default 72.
    #[schema(example = 72)]
    pub expires_in_hours: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InviteResponse {
    #[schema(example = true)]
    pub ok: bool,
    #[schema(example = true)]
    pub success: bool,
    pub code: String,
    /// RFC 3339.
    pub expires_at: String,
    /// The only email that can redeem it; null when anyone can.
    pub email: Option<String>,
}

/// Creates a registration invite (administrators only).
#[utoipa::path(
    post,
    path = "/api/invites",
    tag = "auth",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    request_body = InviteBody,
    responses(
        (status = 200, description = "The invite", body = InviteResponse),
        (status = 400, description = "`invalid_body`: a field is invalid", body = ErrorResponse),
        (status = 401, description = "`token_missing`, `token_expired`, `token_invalid`, `user_suspended`", body = ErrorResponse),
        (status = 403, description = "`forbidden`: not an administrator", body = ErrorResponse),
        (status = 413, description = "`payload_too_large`", body = ErrorResponse),
        (status = 503, description = "`service_unavailable`", body = ErrorResponse),
    )
)]
pub async fn create_invite(
    AuthenticatedUser(identity): AuthenticatedUser,
    state: web::Data<AppState>,
    Json(body): Json<InviteBody>,
) -> Result<HttpResponse, ApiError> {
    let invite = state
        .auth
        .call(
            &identity,
            pb::CreateInviteRequest {
                email: body.email,
                expires_in_hours: body.expires_in_hours,
            },
            |mut client, request| async move { client.create_invite(request).await },
        )
        .await?;
    Ok(HttpResponse::Ok().json(InviteResponse {
        ok: true,
        success: true,
        code: invite.code,
        expires_at: invite.expires_at,
        email: non_empty(invite.email),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterBody {
    #[schema(value_type = String, required = true, example = "ada@example.com")]
    pub email: Option<String>,
    #[schema(value_type = String, required = true, format = Password)]
    pub password: Option<String>,
    #[schema(value_type = String, required = true)]
    pub invite_code: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

/// Registers a new user with an invite code. New users are active `creator`s on the `starter`
/// tier in onboarding state `EXTENSION_INSTALL`.
///
/// Rate limited per client address (10 per 15 minutes by default).
#[utoipa::path(
    post,
    path = "/api/register",
    tag = "auth",
    request_body = RegisterBody,
    responses(
        (status = 200, description = "The new user", body = UserResponse),
        (status = 400, description = "`missing_field` or `invalid_body`, with the `field`", body = ErrorResponse),
        (status = 403, description = "`invalid_invite`: unknown, used, expired or for another email", body = ErrorResponse),
        (status = 409, description = "`email_taken`", body = ErrorResponse),
        (status = 413, description = "`payload_too_large`", body = ErrorResponse),
        (status = 429, description = "`rate_limited`; `Retry-After` tells the seconds to wait", body = ErrorResponse,
            headers(("Retry-After" = u64, description = "Seconds until the next attempt is allowed"))),
        (status = 503, description = "`service_unavailable`", body = ErrorResponse),
    )
)]
pub async fn register(
    _attempt: RegisterAttempt,
    state: web::Data<AppState>,
    req: HttpRequest,
    Json(body): Json<RegisterBody>,
) -> Result<HttpResponse, ApiError> {
    let request = pb::RegisterRequest {
        email: required(body.email, "email")?,
        password: required(body.password, "password")?,
        invite_code: required(body.invite_code, "invite_code")?,
        first_name: body.first_name,
        last_name: body.last_name,
    };
    let user = state
        .auth
        .call(
            &Identity::anonymous(request_id(&req)),
            request,
            |mut client, request| async move { client.register(request).await },
        )
        .await?;
    Ok(HttpResponse::Ok().json(UserResponse::new(user)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OnboardingResponse {
    #[schema(example = true)]
    pub ok: bool,
    #[schema(example = true)]
    pub success: bool,
    #[schema(format = Uuid)]
    pub user_id: String,
    /// `EXTENSION_INSTALL`, `DATA_COLLECTION`, `PROCESSING` or `COMPLETE`.
    #[schema(example = "EXTENSION_INSTALL")]
    pub state: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl From<pb::Onboarding> for OnboardingResponse {
    fn from(onboarding: pb::Onboarding) -> Self {
        Self {
            ok: true,
            success: true,
            user_id: onboarding.user_id,
            state: onboarding.state,
            updated_at: onboarding.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct OnboardingBody {
    /// The new state. Non-administrators may only move forward.
    #[schema(value_type = String, required = true, example = "DATA_COLLECTION")]
    pub state: Option<String>,
    /// Administrators may name another user.
    pub user_id: Option<Uuid>,
}

async fn get_onboarding_of(
    identity: Identity,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let onboarding = state
        .auth
        .call(
            &identity,
            pb::GetOnboardingRequest {},
            |mut client, request| async move { client.get_onboarding(request).await },
        )
        .await?;
    Ok(HttpResponse::Ok().json(OnboardingResponse::from(onboarding)))
}

async fn set_onboarding_of(
    identity: Identity,
    state: web::Data<AppState>,
    body: OnboardingBody,
) -> Result<HttpResponse, ApiError> {
    let request = pb::SetOnboardingRequest {
        state: required(body.state, "state")?,
        user_id: body.user_id.map(|id| id.to_string()),
    };
    let onboarding = state
        .auth
        .call(&identity, request, |mut client, request| async move {
            client.set_onboarding(request).await
        })
        .await?;
    Ok(HttpResponse::Ok().json(OnboardingResponse::from(onboarding)))
}

/// The signed-in user's onboarding state.
#[utoipa::path(
    get,
    path = "/api/onboarding",
    tag = "auth",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "The onboarding state", body = OnboardingResponse),
        (status = 401, description = "`token_missing`, `token_expired`, `token_invalid`, `user_suspended`", body = ErrorResponse),
        (status = 503, description = "`service_unavailable`", body = ErrorResponse),
    )
)]
pub async fn get_onboarding(
    AuthenticatedUser(identity): AuthenticatedUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    get_onboarding_of(identity, state).await
}

/// The signed-in user's onboarding state (same as `GET /api/onboarding`).
#[utoipa::path(
    get,
    path = "/api/onboarding/state",
    tag = "auth",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "The onboarding state", body = OnboardingResponse),
        (status = 401, description = "`token_missing`, `token_expired`, `token_invalid`, `user_suspended`", body = ErrorResponse),
        (status = 503, description = "`service_unavailable`", body = ErrorResponse),
    )
)]
pub async fn get_onboarding_state(
    AuthenticatedUser(identity): AuthenticatedUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    get_onboarding_of(identity, state).await
}

/// Moves the onboarding state: `EXTENSION_INSTALL → DATA_COLLECTION → PROCESSING → COMPLETE`,
/// forward only unless the caller is an administrator.
#[utoipa::path(
    patch,
    path = "/api/onboarding",
    tag = "auth",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    request_body = OnboardingBody,
    responses(
        (status = 200, description = "The new state", body = OnboardingResponse),
        (status = 400, description = "`missing_field`, or an unknown state (`invalid_body`)", body = ErrorResponse),
        (status = 401, description = "`token_missing`, `token_expired`, `token_invalid`, `user_suspended`", body = ErrorResponse),
        (status = 403, description = "`onboarding_backward`: a backward move by a non-administrator; `forbidden`", body = ErrorResponse),
        (status = 404, description = "`not_found`: no such user", body = ErrorResponse),
        (status = 413, description = "`payload_too_large`", body = ErrorResponse),
        (status = 503, description = "`service_unavailable`", body = ErrorResponse),
    )
)]
pub async fn patch_onboarding(
    AuthenticatedUser(identity): AuthenticatedUser,
    state: web::Data<AppState>,
    Json(body): Json<OnboardingBody>,
) -> Result<HttpResponse, ApiError> {
    set_onboarding_of(identity, state, body).await
}

/// Moves the onboarding state (same as `PATCH /api/onboarding`).
#[utoipa::path(
    patch,
    path = "/api/onboarding/state",
    tag = "auth",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    request_body = OnboardingBody,
    responses(
        (status = 200, description = "The new state", body = OnboardingResponse),
        (status = 400, description = "`missing_field`, or an unknown state (`invalid_body`)", body = ErrorResponse),
        (status = 401, description = "`token_missing`, `token_expired`, `token_invalid`, `user_suspended`", body = ErrorResponse),
        (status = 403, description = "`onboarding_backward`: a backward move by a non-administrator; `forbidden`", body = ErrorResponse),
        (status = 404, description = "`not_found`: no such user", body = ErrorResponse),
        (status = 413, description = "`payload_too_large`", body = ErrorResponse),
        (status = 503, description = "`service_unavailable`", body = ErrorResponse),
    )
)]
pub async fn patch_onboarding_state(
    AuthenticatedUser(identity): AuthenticatedUser,
    state: web::Data<AppState>,
    Json(body): Json<OnboardingBody>,
) -> Result<HttpResponse, ApiError> {
    set_onboarding_of(identity, state, body).await
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RbacSyncBody {
    #[schema(value_type = Uuid, required = true)]
    pub user_id: Option<Uuid>,
    /// Role name (`administrator`, `creator`, `viewer`) or role uuid.
    pub role: Option<String>,
    /// `active`, `suspended`, …
    pub status: Option<String>,
    /// `starter`, `creator`, `pro` or `studio`.
    pub pricing_tier: Option<String>,
}

/// Role, status or tier change from the identity provider's webhook. Authenticated by the
/// `X-RBAC-SYNC-SECRET` shared secret (a user token does not count).
#[utoipa::path(
    post,
    path = "/api/rbac-sync",
    tag = "auth",
    security(("rbac_sync_secret" = [])),
    request_body = RbacSyncBody,
    responses(
        (status = 200, description = "The user after the change", body = UserResponse),
        (status = 400, description = "`missing_field` or `invalid_body`, with the `field`", body = ErrorResponse),
        (status = 401, description = "`invalid_secret`: missing or wrong X-RBAC-SYNC-SECRET", body = ErrorResponse),
        (status = 404, description = "`not_found`: no such user", body = ErrorResponse),
        (status = 413, description = "`payload_too_large`", body = ErrorResponse),
        (status = 503, description = "`service_unavailable`", body = ErrorResponse),
    )
)]
pub async fn rbac_sync(
    SystemCaller(identity): SystemCaller,
    state: web::Data<AppState>,
    Json(body): Json<RbacSyncBody>,
) -> Result<HttpResponse, ApiError> {
    let user_id = required(body.user_id, "user_id")?;
    let request = pb::RbacSyncRequest {
        user_id: user_id.to_string(),
        role: body.role,
        status: body.status,
        pricing_tier: body.pricing_tier,
    };
    let user = state
        .auth
        .call(&identity, request, |mut client, request| async move {
            client.rbac_sync(request).await
        })
        .await?;
    // A suspension or a demotion takes effect here at once, not when the cache entry expires.
    state.resolver.forget(user_id).await;
    Ok(HttpResponse::Ok().json(UserResponse::new(user)))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ImpersonateBody {
    /// The user to act as.
    #[schema(value_type = Uuid, required = true)]
    pub user_id: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImpersonateResponse {
    #[schema(example = true)]
    pub ok: bool,
    #[schema(example = true)]
    pub success: bool,
    /// A short-lived access token for the target user, carrying `impersonated_by`.
    pub access_token: String,
    /// Lifetime of the token in milliseconds.
    pub expires: i64,
    pub user: Option<UserView>,
}

/// Issues a short-lived token to act as another user (administrators only; audited).
#[utoipa::path(
    post,
    path = "/api/impersonate",
    tag = "auth",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    request_body = ImpersonateBody,
    responses(
        (status = 200, description = "The token and the user it acts as", body = ImpersonateResponse),
        (status = 400, description = "`missing_field` or `invalid_body`, with the `field`", body = ErrorResponse),
        (status = 401, description = "`token_missing`, `token_expired`, `token_invalid`, `user_suspended`", body = ErrorResponse),
        (status = 403, description = "`forbidden`: not an administrator", body = ErrorResponse),
        (status = 404, description = "`not_found`: no such user", body = ErrorResponse),
        (status = 413, description = "`payload_too_large`", body = ErrorResponse),
        (status = 503, description = "`service_unavailable`", body = ErrorResponse),
    )
)]
pub async fn impersonate(
    AuthenticatedUser(identity): AuthenticatedUser,
    state: web::Data<AppState>,
    Json(body): Json<ImpersonateBody>,
) -> Result<HttpResponse, ApiError> {
    let request = pb::ImpersonateRequest {
        user_id: required(body.user_id, "user_id")?.to_string(),
    };
    let reply = state
        .auth
        .call(&identity, request, |mut client, request| async move {
            client.impersonate(request).await
        })
        .await?;
    Ok(HttpResponse::Ok()
        // A token must not linger in shared or browser caches.
        .insert_header((CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .json(ImpersonateResponse {
            ok: true,
            success: true,
            access_token: reply.access_token,
            expires: reply.expires_ms,
            user: reply.user.map(UserView::from),
        }))
}
