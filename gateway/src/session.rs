//! From a verified token to the [`Identity`] handed to the services: the user is resolved through
//! svc-auth (role, tier, status) with a short cache, and handlers receive it through the
//! [`AuthenticatedUser`] and [`DirectusUser`] extractors. Server-to-server callers prove the RBAC
//! sync secret instead ([`SystemCaller`]); [`OwnerOrSystem`] takes either.

use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest};
use common::identity::{ADMINISTRATOR, Identity, UserIdentity};
use common::{ApiError, Kind};
use futures_util::future::{LocalBoxFuture, Ready, ready};
use moka::future::Cache;
use proto::auth::v1 as pb;
use uuid::Uuid;

use crate::auth::{self, TokenError, TokenVerifier};
use crate::directus::DirectusError;
use crate::middleware::request_id;
use crate::upstream::AuthService;

/// The status of a user who may use the platform (Directus' own word for it).
const ACTIVE: &str = "active";
/// Bounds the cache's memory whatever the number of users.
const CACHE_CAPACITY: u64 = 100_000;

/// Why a request is not authenticated.
#[derive(Debug, Clone)]
pub enum AuthFailure {
    Token(TokenError),
    /// Genuine token of a user svc-auth does not know (deleted since).
    UnknownUser,
    /// The user's status is not `active`.
    Suspended,
    /// An impersonation token whose administrator is no longer an active administrator.
    ImpersonationRevoked,
    /// svc-auth could not be asked.
    Upstream(ApiError),
}

impl From<AuthFailure> for ApiError {
    fn from(failure: AuthFailure) -> Self {
        match failure {
            AuthFailure::Token(TokenError::Missing) => ApiError::unauthenticated(
                "token_missing",
                "an access token is required (Authorization: Bearer <token>)",
            ),
            AuthFailure::Token(TokenError::Ambiguous) => ApiError::new(
                Kind::InvalidArgument,
                "token_ambiguous",
                "send the access token either in the Authorization header or in the access_token \
                 query parameter, not both",
            ),
            AuthFailure::Token(TokenError::Expired) => {
                ApiError::unauthenticated("token_expired", "the access token has expired")
            }
            AuthFailure::Token(TokenError::Invalid) => {
                ApiError::unauthenticated("token_invalid", "the access token is not valid")
            }
            AuthFailure::UnknownUser => {
                ApiError::unauthenticated("token_invalid", "the access token is not valid")
            }
            AuthFailure::Suspended => {
                ApiError::unauthenticated("user_suspended", "this account is not active")
            }
            AuthFailure::ImpersonationRevoked => ApiError::unauthenticated(
                "impersonation_revoked",
                "the administrator who started this impersonation is no longer an active administrator",
            ),
            AuthFailure::Upstream(err) => err,
        }
    }
}

impl From<AuthFailure> for DirectusError {
    fn from(failure: AuthFailure) -> Self {
        match failure {
            AuthFailure::Token(TokenError::Missing)
            | AuthFailure::UnknownUser
            | AuthFailure::Suspended
            | AuthFailure::ImpersonationRevoked => DirectusError::invalid_credentials(),
            AuthFailure::Token(TokenError::Ambiguous) => DirectusError::invalid_payload(
                "The request uses more than one method for including an access token",
            ),
            AuthFailure::Token(TokenError::Expired) => DirectusError::token_expired(),
            AuthFailure::Token(TokenError::Invalid) => DirectusError::invalid_token(),
            AuthFailure::Upstream(err) => DirectusError::from(err),
        }
    }
}

/// What svc-auth says about a token's user.
#[derive(Debug, Clone)]
struct Resolved {
    role: String,
    tier: String,
    status: String,
}

/// Resolves users through svc-auth, remembering each answer for at most the configured time so
/// that a role change, a suspension or a new tier shows within that time. One for all workers.
pub struct UserResolver {
    cache: Option<Cache<Uuid, Resolved>>,
}

impl UserResolver {
    pub fn new(ttl: Duration) -> Self {
        let cache = (!ttl.is_zero()).then(|| {
            Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(ttl)
                .build()
        });
        Self { cache }
    }

    /// Drops what is known of a user, after a change made through this gateway (other replicas
    /// see it when their entry expires).
    pub async fn forget(&self, user_id: Uuid) {
        if let Some(cache) = &self.cache {
            cache.invalidate(&user_id).await;
        }
    }

    async fn fetch(
        auth: &AuthService,
        user_id: Uuid,
        request_id: &str,
    ) -> Result<Resolved, ApiError> {
        let reply = auth
            .call(
                &Identity::anonymous(request_id),
                pb::ResolveRequest {
                    user_id: user_id.to_string(),
                },
                |mut client, request| async move { client.resolve(request).await },
            )
            .await?;
        Ok(Resolved {
            role: reply.role,
            tier: reply.pricing_tier,
            status: reply.status,
        })
    }

    async fn resolve(
        &self,
        auth: &AuthService,
        user_id: Uuid,
        request_id: &str,
    ) -> Result<Resolved, AuthFailure> {
        let resolved = match &self.cache {
            // Concurrent requests of one user share one lookup; failures are not remembered.
            Some(cache) => cache
                .try_get_with(user_id, Self::fetch(auth, user_id, request_id))
                .await
                .map_err(|err| (*err).clone()),
            None => Self::fetch(auth, user_id, request_id).await,
        };
        match resolved {
            Ok(resolved) if resolved.status == ACTIVE => Ok(resolved),
            Ok(_) => Err(AuthFailure::Suspended),
            Err(err) if err.kind == Kind::NotFound => Err(AuthFailure::UnknownUser),
            Err(err) => Err(AuthFailure::Upstream(err)),
        }
    }
}

/// The token the request carries, verified. No I/O: a bad token is refused before anything else
/// about the request is looked at.
pub fn verify_request(
    req: &HttpRequest,
    verifier: &TokenVerifier,
) -> Result<auth::Claims, TokenError> {
    let authorization = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    let cookie = req.cookie(auth::SESSION_COOKIE);
    let token = auth::extract_token(
        authorization,
        req.query_string(),
        cookie.as_ref().map(|cookie| cookie.value()),
    )?;
    verifier.verify(&token)
}

/// Verifies the request's token, then resolves its user.
pub async fn authenticate(req: &HttpRequest) -> Result<Identity, AuthFailure> {
    let state = crate::state::of_request(req)
        .map_err(AuthFailure::Upstream)?
        .clone();
    let claims = verify_request(req, &state.verifier).map_err(AuthFailure::Token)?;
    let request_id = request_id(req);
    let resolved = state
        .resolver
        .resolve(&state.auth, claims.user_id, &request_id)
        .await?;
    if let Some(admin) = claims.impersonated_by {
        // The impersonation lasts only while the administrator who started it still is one.
        match state
            .resolver
            .resolve(&state.auth, admin, &request_id)
            .await
        {
            Ok(acting) if acting.role == ADMINISTRATOR => {}
            Ok(_) | Err(AuthFailure::Suspended | AuthFailure::UnknownUser) => {
                return Err(AuthFailure::ImpersonationRevoked);
            }
            Err(other) => return Err(other),
        }
    }
    Ok(Identity::user(
        UserIdentity {
            id: claims.user_id,
            role: resolved.role,
            tier: resolved.tier,
            impersonated_by: claims.impersonated_by,
        },
        request_id,
    ))
}

/// A signed-in, active user, for `/api/*` handlers; failures answer in our error format.
#[derive(Debug, Clone)]
pub struct AuthenticatedUser(pub Identity);

impl FromRequest for AuthenticatedUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            authenticate(&req)
                .await
                .map(AuthenticatedUser)
                .map_err(ApiError::from)
        })
    }
}

/// A signed-in, active administrator. The role is the one svc-auth resolved (not the token's
/// claim), and it is checked before anything else about the request is read.
#[derive(Debug, Clone)]
pub struct Admin(pub Identity);

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let identity = authenticate(&req).await.map_err(ApiError::from)?;
            identity.require_admin()?;
            Ok(Admin(identity))
        })
    }
}

/// A caller that needs no token; services see `Identity::anonymous` with the request id.
#[derive(Debug, Clone)]
pub struct Anonymous(pub Identity);

impl FromRequest for Anonymous {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Anonymous(Identity::anonymous(request_id(req)))))
    }
}

/// The same, for the Directus-compatible routes; failures answer in Directus' format.
#[derive(Debug, Clone)]
pub struct DirectusUser(pub Identity);

impl FromRequest for DirectusUser {
    type Error = DirectusError;
    type Future = LocalBoxFuture<'static, Result<Self, DirectusError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            authenticate(&req)
                .await
                .map(DirectusUser)
                .map_err(DirectusError::from)
        })
    }
}

/// The header a server-to-server caller proves the RBAC sync secret with.
pub const RBAC_SYNC_HEADER: &str = "x-rbac-sync-secret";

/// A server-to-server caller that proved the RBAC sync secret; services see `Identity::system`.
/// A user's token counts for nothing here.
#[derive(Debug, Clone)]
pub struct SystemCaller(pub Identity);

impl FromRequest for SystemCaller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(prove_system(req).map(SystemCaller))
    }
}

/// The system identity when the request carries the right `X-RBAC-SYNC-SECRET`; a missing,
/// unreadable or wrong one is 401 `invalid_secret`.
fn prove_system(req: &HttpRequest) -> Result<Identity, ApiError> {
    let state = crate::state::of_request(req)?;
    let presented = req
        .headers()
        .get(RBAC_SYNC_HEADER)
        .and_then(|value| value.to_str().ok());
    // Secret::matches compares in constant time.
    let proven = presented.is_some_and(|secret| state.config.rbac_sync_secret.matches(secret));
    if proven {
        Ok(Identity::system(request_id(req)))
    } else {
        Err(ApiError::unauthenticated(
            "invalid_secret",
            "missing or wrong X-RBAC-SYNC-SECRET",
        ))
    }
}

/// Either a server-to-server caller or a signed-in user, for routes that serve both. A request
/// with an `X-RBAC-SYNC-SECRET` header is judged by that header alone, as [`SystemCaller`]: a
/// wrong secret is 401 `invalid_secret` and the token is not looked at. Without the header, the
/// token is authenticated as for [`AuthenticatedUser`].
#[derive(Debug, Clone)]
pub struct OwnerOrSystem(pub Identity);

impl FromRequest for OwnerOrSystem {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        if req.headers().contains_key(RBAC_SYNC_HEADER) {
            let proven = prove_system(req).map(OwnerOrSystem);
            return Box::pin(ready(proven));
        }
        let req = req.clone();
        Box::pin(async move {
            authenticate(&req)
                .await
                .map(OwnerOrSystem)
                .map_err(ApiError::from)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;
    use actix_web::web;
    use common::identity::Principal;
    use common::secret::Secret;

    use crate::state::AppState;

    use crate::test_support::{DIRECTUS_SECRET as SECRET, RBAC_SECRET};

    fn state_without_upstreams() -> web::Data<AppState> {
        web::Data::new(crate::test_support::state_without_upstreams())
    }

    #[test]
    fn failures_map_to_reasons_and_directus_codes() {
        let cases = [
            (
                AuthFailure::Token(TokenError::Missing),
                401,
                "token_missing",
                401,
                "INVALID_CREDENTIALS",
            ),
            (
                AuthFailure::Token(TokenError::Ambiguous),
                400,
                "token_ambiguous",
                400,
                "INVALID_PAYLOAD",
            ),
            (
                AuthFailure::Token(TokenError::Expired),
                401,
                "token_expired",
                401,
                "TOKEN_EXPIRED",
            ),
            (
                AuthFailure::Token(TokenError::Invalid),
                401,
                "token_invalid",
                403,
                "INVALID_TOKEN",
            ),
            (
                AuthFailure::UnknownUser,
                401,
                "token_invalid",
                401,
                "INVALID_CREDENTIALS",
            ),
            (
                AuthFailure::Suspended,
                401,
                "user_suspended",
                401,
                "INVALID_CREDENTIALS",
            ),
            (
                AuthFailure::Upstream(ApiError::unavailable("down")),
                503,
                "service_unavailable",
                503,
                "SERVICE_UNAVAILABLE",
            ),
        ];
        for (failure, status, reason, directus_status, code) in cases {
            let api = ApiError::from(failure.clone());
            assert_eq!(api.http_status().as_u16(), status, "{reason}");
            assert_eq!(api.reason, reason);
            let directus = DirectusError::from(failure);
            assert_eq!(directus.status.as_u16(), directus_status, "{code}");
            assert_eq!(directus.code, code);
        }
    }

    #[test]
    fn the_request_token_is_read_from_header_query_or_cookie() {
        let verifier = TokenVerifier::new(&Secret::new(SECRET), Duration::from_secs(30));
        let none = TestRequest::default().to_http_request();
        assert_eq!(verify_request(&none, &verifier), Err(TokenError::Missing));
        let garbage = TestRequest::default()
            .insert_header((AUTHORIZATION, "Bearer nope"))
            .to_http_request();
        assert_eq!(
            verify_request(&garbage, &verifier),
            Err(TokenError::Invalid)
        );
        let both = TestRequest::with_uri("/api/onboarding?access_token=x")
            .insert_header((AUTHORIZATION, "Bearer y"))
            .to_http_request();
        assert_eq!(verify_request(&both, &verifier), Err(TokenError::Ambiguous));
        let cookie = TestRequest::default()
            .cookie(actix_web::cookie::Cookie::new(auth::SESSION_COOKIE, "c"))
            .to_http_request();
        assert_eq!(verify_request(&cookie, &verifier), Err(TokenError::Invalid));
    }

    /// A genuine access token of a user svc-auth would be asked about.
    fn valid_token() -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = serde_json::json!({
            "id": Uuid::new_v4(),
            "role": Uuid::new_v4(),
            "app_access": true,
            "admin_access": false,
            "iat": now,
            "exp": now + 600,
            "iss": "directus",
        });
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    #[actix_web::test]
    async fn owner_or_system_judges_a_sent_secret_alone() {
        let state = state_without_upstreams();
        let bearer = format!("Bearer {}", valid_token());
        let request = |secret: Option<&str>, token: bool| {
            let mut req = TestRequest::default().app_data(state.clone());
            if let Some(secret) = secret {
                req = req.insert_header((RBAC_SYNC_HEADER, secret));
            }
            if token {
                req = req.insert_header((AUTHORIZATION, bearer.clone()));
            }
            req.to_http_request()
        };

        // A wrong (or empty) secret is refused, and a genuine token does not rescue it.
        for wrong in ["the wrong rbac sync secret value", ""] {
            let err = OwnerOrSystem::extract(&request(Some(wrong), true))
                .await
                .unwrap_err();
            assert_eq!(err.http_status().as_u16(), 401);
            assert_eq!(err.reason, "invalid_secret");
        }

        // The right secret is the system, with or without a token.
        for token in [true, false] {
            let OwnerOrSystem(identity) =
                OwnerOrSystem::extract(&request(Some(RBAC_SECRET), token))
                    .await
                    .unwrap();
            assert_eq!(identity.principal, Principal::System);
            assert!(!identity.request_id.is_empty());
        }

        // Without the header it is AuthenticatedUser: no token is token_missing, and a genuine
        // token goes on to svc-auth (down here), never to the system identity.
        let err = OwnerOrSystem::extract(&request(None, false))
            .await
            .unwrap_err();
        assert_eq!(err.http_status().as_u16(), 401);
        assert_eq!(err.reason, "token_missing");
        let err = OwnerOrSystem::extract(&request(None, true))
            .await
            .unwrap_err();
        assert_eq!(err.http_status().as_u16(), 503);
        assert_eq!(err.reason, "service_unavailable");

        // SystemCaller shares the check.
        let err = SystemCaller::extract(&request(Some("the wrong rbac sync secret value"), true))
            .await
            .unwrap_err();
        assert_eq!(err.reason, "invalid_secret");
        let SystemCaller(identity) = SystemCaller::extract(&request(Some(RBAC_SECRET), false))
            .await
            .unwrap();
        assert_eq!(identity.principal, Principal::System);
        let err = SystemCaller::extract(&request(None, true))
            .await
            .unwrap_err();
        assert_eq!(err.reason, "invalid_secret");
    }
}
