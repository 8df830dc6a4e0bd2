//! Routes owned by svc-auth: the Directus-compatible ones (`/auth/*`, `/users/me`) and ours
//! under `/api`. Each handler checks the shape of the request, calls one RPC, maps the reply;
//! svc-auth is the authority on every rule.

pub mod api;
pub mod directus_compat;
pub mod profile;

use proto::auth::v1 as pb;
use serde::Serialize;
use utoipa::ToSchema;

use crate::kit::{Routes, non_empty};

/// A user as our `/api` routes show it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    #[schema(format = Uuid)]
    pub id: String,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// Role name: `administrator`, `creator` or `viewer`; null for a user without a role.
    #[schema(example = "creator")]
    pub role: Option<String>,
    /// The role's uuid, as access tokens carry it.
    #[schema(format = Uuid)]
    pub role_id: Option<String>,
    /// `active`, `suspended`, …
    #[schema(example = "active")]
    pub status: String,
    /// `EXTENSION_INSTALL`, `DATA_COLLECTION`, `PROCESSING` or `COMPLETE`.
    #[schema(example = "EXTENSION_INSTALL")]
    pub onboarding_state: String,
    /// `starter`, `creator`, `pro` or `studio`.
    #[schema(example = "starter")]
    pub pricing_tier: String,
    /// Content type of the avatar (`GET /api/user-proxy/avatar`); null without one.
    pub avatar_content_type: Option<String>,
    /// RFC 3339.
    pub created_at: Option<String>,
    /// RFC 3339.
    pub last_access: Option<String>,
}

impl From<pb::User> for UserView {
    fn from(user: pb::User) -> Self {
        Self {
            id: user.id,
            email: user.email,
            first_name: non_empty(user.first_name),
            last_name: non_empty(user.last_name),
            role: non_empty(user.role),
            role_id: non_empty(user.role_id),
            status: user.status,
            onboarding_state: user.onboarding_state,
            pricing_tier: user.pricing_tier,
            avatar_content_type: non_empty(user.avatar_content_type),
            created_at: non_empty(user.created_at),
            last_access: non_empty(user.last_access),
        }
    }
}

/// `{user}`
#[derive(Debug, Serialize, ToSchema)]
pub struct UserReply {
    pub user: UserView,
}

impl From<pb::User> for UserReply {
    fn from(user: pb::User) -> Self {
        Self { user: user.into() }
    }
}

pub fn routes(routes: &mut Routes) {
    directus_compat::routes(routes);
    api::routes(routes);
    profile::routes(routes);
}
