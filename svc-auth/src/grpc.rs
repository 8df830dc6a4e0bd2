//! `genie.auth.v1.Auth` over gRPC: translates messages to and from [`AuthService`] calls.

use std::sync::Arc;

use common::grpc::identity;
use proto::auth::v1 as pb;
use tonic::{Request, Response, Status};

use crate::service::{AuthService, Tokens};
use crate::store::User;
use crate::tokens::rfc3339;

#[derive(Clone)]
pub struct AuthGrpc {
    service: Arc<AuthService>,
}

impl AuthGrpc {
    pub fn new(service: Arc<AuthService>) -> Self {
        Self { service }
    }
}

fn millis(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl From<Tokens> for pb::TokenPair {
    fn from(tokens: Tokens) -> Self {
        Self {
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            expires_ms: millis(tokens.expires),
        }
    }
}

impl From<User> for pb::User {
    fn from(user: User) -> Self {
        Self {
            id: user.id.to_string(),
            email: user.email,
            first_name: user.first_name.unwrap_or_default(),
            last_name: user.last_name.unwrap_or_default(),
            role: user.role.unwrap_or_default(),
            role_id: user.role_id.map(|id| id.to_string()).unwrap_or_default(),
            status: user.status,
            onboarding_state: user.onboarding_state,
            pricing_tier: user.pricing_tier,
            avatar_content_type: user.avatar_content_type.unwrap_or_default(),
            created_at: rfc3339(user.created_at),
            last_access: user.last_access.map(rfc3339).unwrap_or_default(),
        }
    }
}

fn onboarding(onboarding: crate::service::Onboarding) -> pb::Onboarding {
    pb::Onboarding {
        user_id: onboarding.user_id.to_string(),
        state: onboarding.state,
        updated_at: rfc3339(onboarding.updated_at),
    }
}

#[tonic::async_trait]
impl pb::auth_server::Auth for AuthGrpc {
    async fn login(
        &self,
        request: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::TokenPair>, Status> {
        let body = request.into_inner();
        let tokens = self.service.login(&body.email, &body.password).await?;
        Ok(Response::new(tokens.into()))
    }

    async fn refresh(
        &self,
        request: Request<pb::RefreshRequest>,
    ) -> Result<Response<pb::TokenPair>, Status> {
        let tokens = self
            .service
            .refresh(&request.into_inner().refresh_token)
            .await?;
        Ok(Response::new(tokens.into()))
    }

    async fn logout(
        &self,
        request: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::LogoutResponse>, Status> {
        self.service
            .logout(&request.into_inner().refresh_token)
            .await?;
        Ok(Response::new(pb::LogoutResponse {}))
    }

    async fn me(&self, request: Request<pb::MeRequest>) -> Result<Response<pb::User>, Status> {
        let caller = identity(&request)?;
        let user = self.service.user(caller.require_user()?.id).await?;
        Ok(Response::new(user.into()))
    }

    async fn resolve(
        &self,
        request: Request<pb::ResolveRequest>,
    ) -> Result<Response<pb::ResolvedUser>, Status> {
        let user_id = request.into_inner().user_id;
        let resolved = self.service.resolve(&user_id).await?;
        Ok(Response::new(pb::ResolvedUser {
            user_id,
            role: resolved.role,
            pricing_tier: resolved.pricing_tier,
            status: resolved.status,
            onboarding_state: resolved.onboarding_state,
        }))
    }

    async fn create_invite(
        &self,
        request: Request<pb::CreateInviteRequest>,
    ) -> Result<Response<pb::Invite>, Status> {
        let caller = identity(&request)?;
        let body = request.into_inner();
        let invite = self
            .service
            .create_invite(&caller, body.email.as_deref(), body.expires_in_hours)
            .await?;
        Ok(Response::new(pb::Invite {
            code: invite.code,
            expires_at: rfc3339(invite.expires_at),
            email: invite.email.unwrap_or_default(),
        }))
    }

    async fn register(
        &self,
        request: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let body = request.into_inner();
        let user = self
            .service
            .register(
                &body.email,
                &body.password,
                &body.invite_code,
                body.first_name.as_deref(),
                body.last_name.as_deref(),
            )
            .await?;
        Ok(Response::new(user.into()))
    }

    async fn get_onboarding(
        &self,
        request: Request<pb::GetOnboardingRequest>,
    ) -> Result<Response<pb::Onboarding>, Status> {
        let caller = identity(&request)?;
        Ok(Response::new(onboarding(
            self.service.onboarding(&caller).await?,
        )))
    }

    async fn set_onboarding(
        &self,
        request: Request<pb::SetOnboardingRequest>,
    ) -> Result<Response<pb::Onboarding>, Status> {
        let caller = identity(&request)?;
        let body = request.into_inner();
        let state = self
            .service
            .set_onboarding(&caller, &body.state, body.user_id.as_deref())
            .await?;
        Ok(Response::new(onboarding(state)))
    }

    async fn rbac_sync(
        &self,
        request: Request<pb::RbacSyncRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let caller = identity(&request)?;
        let body = request.into_inner();
        let user = self
            .service
            .rbac_sync(
                &caller,
                &body.user_id,
                body.role.as_deref(),
                body.status.as_deref(),
                body.pricing_tier.as_deref(),
            )
            .await?;
        Ok(Response::new(user.into()))
    }

    async fn impersonate(
        &self,
        request: Request<pb::ImpersonateRequest>,
    ) -> Result<Response<pb::ImpersonateResponse>, Status> {
        let caller = identity(&request)?;
        let granted = self
            .service
            .impersonate(&caller, &request.into_inner().user_id)
            .await?;
        Ok(Response::new(pb::ImpersonateResponse {
            access_token: granted.access_token,
            expires_ms: millis(granted.expires),
            user: Some(granted.user.into()),
        }))
    }

    async fn get_profile(
        &self,
        request: Request<pb::GetProfileRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let caller = identity(&request)?;
        let user = self.service.user(caller.require_user()?.id).await?;
        Ok(Response::new(user.into()))
    }

    async fn update_profile(
        &self,
        request: Request<pb::UpdateProfileRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let caller = identity(&request)?;
        let body = request.into_inner();
        let user = self
            .service
            .update_profile(
                &caller,
                body.first_name.as_deref(),
                body.last_name.as_deref(),
            )
            .await?;
        Ok(Response::new(user.into()))
    }

    async fn update_me(
        &self,
        request: Request<pb::UpdateMeRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let caller = identity(&request)?;
        let body = request.into_inner();
        let user = self
            .service
            .update_me(
                &caller,
                body.first_name.as_deref(),
                body.last_name.as_deref(),
                body.email.as_deref(),
            )
            .await?;
        Ok(Response::new(user.into()))
    }

    async fn set_avatar(
        &self,
        request: Request<pb::SetAvatarRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let caller = identity(&request)?;
        let body = request.into_inner();
        let user = self
            .service
            .set_avatar(&caller, &body.content_type, &body.image)
            .await?;
        Ok(Response::new(user.into()))
    }

    async fn get_avatar(
        &self,
        request: Request<pb::GetAvatarRequest>,
    ) -> Result<Response<pb::Avatar>, Status> {
        let caller = identity(&request)?;
        let (content_type, image) = self.service.avatar(&caller).await?;
        Ok(Response::new(pb::Avatar {
            content_type,
            image,
        }))
    }
}
