use common::{ApiError, Kind};

use crate::domain::OnboardingState;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Wrong email or password, unknown or reused refresh token: never says which.
    #[error("Invalid user credentials.")]
    InvalidCredentials,
    #[error("invite code is invalid, expired or already used")]
    InvalidInvite,
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("onboarding cannot move back from {from} to {to}")]
    OnboardingBackward {
        from: OnboardingState,
        to: OnboardingState,
    },
    #[error("avatar is larger than {max_bytes} bytes")]
    AvatarTooLarge { max_bytes: usize },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    /// Directus (in directus mode) failed or answered what we cannot use. The detail is logged;
    /// clients hear only that the identity provider failed.
    #[error("{0}")]
    Directus(String),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Db(#[from] common::db::DbError),
    #[error("token signing failed: {0}")]
    Token(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// As many passwords are being hashed, and waiting, as the gate admits.
    #[error("too many logins at once, try again in a moment")]
    Busy,
}

common::service_error!(AuthError);

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        let message = err.to_string();
        match err {
            AuthError::InvalidCredentials => {
                ApiError::unauthenticated("invalid_credentials", message)
            }
            AuthError::InvalidInvite => {
                ApiError::new(Kind::PermissionDenied, "invalid_invite", message)
            }
            AuthError::EmailTaken => ApiError::conflict("email_taken", message).with_field("email"),
            AuthError::OnboardingBackward { .. } => {
                ApiError::new(Kind::PermissionDenied, "onboarding_backward", message)
            }
            AuthError::AvatarTooLarge { .. } => {
                ApiError::new(Kind::PayloadTooLarge, "payload_too_large", message)
                    .with_field("avatar")
            }
            AuthError::NotFound(what) => ApiError::not_found(what),
            AuthError::Forbidden(why) => ApiError::forbidden(why),
            AuthError::Directus(detail) => {
                tracing::warn!(error = %detail, "Directus failed");
                ApiError::new(
                    Kind::Upstream,
                    "upstream_error",
                    "the identity provider (Directus) failed",
                )
            }
            AuthError::Busy => {
                let mut err = ApiError::new(Kind::Unavailable, "service_busy", message);
                err.retry_after_secs = Some(1);
                err
            }
            AuthError::Api(err) => err,
            AuthError::Db(err) => err.into(),
            AuthError::Token(_) | AuthError::Hash(_) => {
                tracing::error!(error = %message, "svc-auth internal failure");
                ApiError::internal()
            }
        }
    }
}
