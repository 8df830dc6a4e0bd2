//! The Directus-compatible routes: the shapes, cookies and error codes of a real Directus, so
//! that the Directus SDK and apps written for Directus work unchanged (docs/DESIGN.md §3).

use actix_web::cookie::{Cookie, SameSite, time};
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use common::identity::Identity;
use proto::auth::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::non_empty;
use crate::body::{DirectusJson, NonBlank};
use crate::directus::DirectusError;
use crate::kit::{Errors, Routes};
use crate::middleware::request_id;
use crate::rate_limit::{LoginAttempt, email_key};
use crate::session::DirectusUser;
use crate::state::AppState;
use crate::{error_set, rpc};

/// The cookie Directus keeps the refresh token in, in cookie mode.
pub const REFRESH_COOKIE: &str = "directus_refresh_token";
/// Directus' refresh token lifetime (7 days), the cookie's `Max-Age`.
const REFRESH_COOKIE_MAX_AGE_SECS: i64 = 7 * 24 * 3600;

/// Where the refresh token travels: in the JSON body, or in an HTTP-only cookie.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Json,
    Cookie,
}

#[derive(Deserialize, ToSchema)]
pub struct LoginBody {
    #[schema(example = "admin@example.com")]
    pub email: NonBlank,
    #[schema(value_type = String, format = Password, min_length = 1)]
    pub password: NonBlank,
    /// `json` (default) or `cookie`.
    pub mode: Option<Mode>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshBody {
    /// Required unless the `directus_refresh_token` cookie carries it.
    pub refresh_token: Option<String>,
    /// `json` (default) or `cookie`.
    pub mode: Option<Mode>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LogoutBody {
    /// Required unless the `directus_refresh_token` cookie carries it.
    pub refresh_token: Option<String>,
    pub mode: Option<Mode>,
}

/// `{"data": {expires, refresh_token?, access_token}}`
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub data: TokenData,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenData {
    /// Lifetime of the access token in milliseconds.
    #[schema(example = 900000)]
    pub expires: i64,
    /// Opaque, 64 characters; rotated on every refresh. Absent in cookie mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// HS256 JWT.
    pub access_token: String,
}

/// `{"data": user}` with Directus' field names.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeResponse {
    pub data: DirectusUserView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DirectusUserView {
    #[schema(format = Uuid)]
    pub id: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: String,
    /// The role's uuid, as Directus gives it; null for a user without a role.
    #[schema(format = Uuid)]
    pub role: Option<String>,
    #[schema(example = "active")]
    pub status: String,
    /// RFC 3339.
    pub last_access: Option<String>,
    #[schema(example = "EXTENSION_INSTALL")]
    pub onboarding_state: String,
    #[schema(example = "starter")]
    pub pricing_tier: String,
}

impl From<pb::User> for DirectusUserView {
    fn from(user: pb::User) -> Self {
        Self {
            id: user.id,
            first_name: non_empty(user.first_name),
            last_name: non_empty(user.last_name),
            email: user.email,
            role: non_empty(user.role_id),
            status: user.status,
            last_access: non_empty(user.last_access),
            onboarding_state: user.onboarding_state,
            pricing_tier: user.pricing_tier,
        }
    }
}

fn refresh_cookie(value: String, max_age_secs: i64) -> Cookie<'static> {
    Cookie::build(REFRESH_COOKIE, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .max_age(time::Duration::seconds(max_age_secs))
        .finish()
}

fn tokens(pair: pb::TokenPair, mode: Mode) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    let refresh_token = match mode {
        Mode::Json => Some(pair.refresh_token),
        Mode::Cookie => {
            response.cookie(refresh_cookie(
                pair.refresh_token,
                REFRESH_COOKIE_MAX_AGE_SECS,
            ));
            None
        }
    };
    response.json(TokenResponse {
        data: TokenData {
            expires: pair.expires_ms,
            refresh_token,
            access_token: pair.access_token,
        },
    })
}

/// The refresh token from the body, else from the cookie.
fn refresh_token_of(req: &HttpRequest, from_body: Option<String>) -> Result<String, DirectusError> {
    from_body
        .filter(|token| !token.trim().is_empty())
        .or_else(|| {
            req.cookie(REFRESH_COOKIE)
                .map(|cookie| cookie.value().to_owned())
                .filter(|token| !token.is_empty())
        })
        .ok_or_else(|| {
            DirectusError::invalid_payload(
                "The refresh token is required in either the payload or cookie",
            )
        })
}

/// Logs in with email and password.
///
/// Right or wrong, the answer never comes sooner than svc-auth's floor (500 ms), and an unknown
/// email looks exactly like a wrong password.
#[utoipa::path(
    tag = "directus",
    request_body = LoginBody,
    responses(
        (status = 200, description = "Tokens (no refresh_token in cookie mode: it is in the Set-Cookie `directus_refresh_token`)", body = TokenResponse),
        Errors<(DirectusBody, DirectusCredentials, DirectusLoginLimits)>,
    )
)]
#[post("/auth/login")]
pub async fn login(
    state: web::Data<AppState>,
    LoginAttempt(caller): LoginAttempt,
    DirectusJson(body): DirectusJson<LoginBody>,
) -> Result<HttpResponse, DirectusError> {
    let limits = &state.limits;
    limits
        .check(&limits.login_by_email, &email_key(body.email.as_str()))
        .await?;
    let request = pb::LoginRequest {
        email: body.email.into(),
        password: body.password.into(),
    };
    let pair = state.auth.call(&caller, request, rpc!(login)).await?;
    Ok(tokens(pair, body.mode.unwrap_or_default()))
}

/// Trades a refresh token for new tokens; the one presented is rejected from then on.
#[utoipa::path(
    tag = "directus",
    request_body = RefreshBody,
    params(("directus_refresh_token" = Option<String>, Cookie, description = "The refresh token, in cookie mode")),
    responses(
        (status = 200, description = "New tokens (cookie mode: the new refresh token in the Set-Cookie)", body = TokenResponse),
        Errors<(DirectusBody, DirectusCredentials)>,
    )
)]
#[post("/auth/refresh")]
pub async fn refresh(
    state: web::Data<AppState>,
    req: HttpRequest,
    DirectusJson(body): DirectusJson<RefreshBody>,
) -> Result<HttpResponse, DirectusError> {
    let refresh_token = refresh_token_of(&req, body.refresh_token)?;
    let caller = Identity::anonymous(request_id(&req));
    let request = pb::RefreshRequest { refresh_token };
    let pair = state.auth.call(&caller, request, rpc!(refresh)).await?;
    Ok(tokens(pair, body.mode.unwrap_or_default()))
}

/// Ends the session of a refresh token.
#[utoipa::path(
    tag = "directus",
    request_body = LogoutBody,
    params(("directus_refresh_token" = Option<String>, Cookie, description = "The refresh token, in cookie mode")),
    responses(
        (status = 204, description = "Logged out; the refresh cookie is cleared"),
        Errors<(DirectusBody, DirectusCredentials)>,
    )
)]
#[post("/auth/logout")]
pub async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    DirectusJson(body): DirectusJson<LogoutBody>,
) -> Result<HttpResponse, DirectusError> {
    let had_cookie = req.cookie(REFRESH_COOKIE).is_some();
    let refresh_token = refresh_token_of(&req, body.refresh_token)?;
    let caller = Identity::anonymous(request_id(&req));
    let request = pb::LogoutRequest { refresh_token };
    state.auth.call(&caller, request, rpc!(logout)).await?;
    let mut response = HttpResponse::NoContent();
    if had_cookie || body.mode == Some(Mode::Cookie) {
        response.cookie(refresh_cookie(String::new(), 0));
    }
    Ok(response.finish())
}

/// The signed-in user, with Directus' field names (`role` is the role's uuid).
#[utoipa::path(
    tag = "directus",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "The user", body = MeResponse),
        Errors<DirectusToken>,
    )
)]
#[get("/users/me")]
pub async fn me(
    DirectusUser(identity): DirectusUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DirectusError> {
    let user = state
        .auth
        .call(&identity, pb::MeRequest {}, rpc!(me))
        .await?;
    Ok(HttpResponse::Ok().json(MeResponse { data: user.into() }))
}

error_set! {
    directus DirectusBody {
        400 "INVALID_PAYLOAD": "a field is missing or invalid, or no refresh token in the body or the cookie",
        413 "CONTENT_TOO_LARGE": "the body is over the configured limit, as sent or once decoded",
        415 "UNSUPPORTED_MEDIA_TYPE": "a `Content-Encoding` other than gzip or deflate",
        503 "SERVICE_UNAVAILABLE": "svc-auth is down or did not answer in time",
    }
}

error_set! {
    directus DirectusCredentials {
        401 "INVALID_CREDENTIALS": "wrong email or password, or an unknown, expired or already used refresh token",
    }
}

error_set! {
    directus DirectusLoginLimits {
        429 "REQUESTS_EXCEEDED": "too many logins from this address or for this account (`GATEWAY_LOGIN_*` limits); `Retry-After` tells the seconds to wait",
        503 "SERVICE_UNAVAILABLE": "svc-auth is hashing as many passwords as it can; `Retry-After` tells when to try again",
    }
}

error_set! {
    directus DirectusToken {
        400 "INVALID_PAYLOAD": "an access token both in the Authorization header and the query",
        401 "INVALID_CREDENTIALS": "no token, or an unknown or suspended user",
        401 "TOKEN_EXPIRED": "the access token has expired",
        403 "INVALID_TOKEN": "bad signature, algorithm or issuer",
        503 "SERVICE_UNAVAILABLE": "svc-auth is down or did not answer in time",
    }
}

pub fn routes(routes: &mut Routes) {
    routes.add(login).add(refresh).add(logout).add(me);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refresh_cookie_has_directus_attributes() {
        let cookie = refresh_cookie("abc".into(), REFRESH_COOKIE_MAX_AGE_SECS).to_string();
        for part in [
            "directus_refresh_token=abc",
            "Max-Age=604800",
            "Path=/",
            "HttpOnly",
            "SameSite=Lax",
        ] {
            assert!(cookie.contains(part), "{cookie}");
        }
    }

    #[test]
    fn cookie_mode_keeps_the_refresh_token_out_of_the_body() {
        let pair = || pb::TokenPair {
            access_token: "access".into(),
            refresh_token: "refresh".into(),
            expires_ms: 900_000,
        };
        let json = tokens(pair(), Mode::Json);
        assert!(json.cookies().next().is_none());
        let cookie = tokens(pair(), Mode::Cookie);
        let set = cookie.cookies().next().unwrap();
        assert_eq!(set.name(), REFRESH_COOKIE);
        assert_eq!(set.value(), "refresh");
    }
}
