//! The Directus-compatible routes: the shapes, cookies and error codes of a real Directus, so
//! that the Directus SDK and apps written for Directus work unchanged (docs/DESIGN.md §3).

use actix_web::cookie::{Cookie, SameSite, time};
use actix_web::{HttpRequest, HttpResponse, get, patch, post, web};
use common::identity::Identity;
use proto::auth::v1 as pb;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::body::{DirectusJson, NonBlank, body_limit, parse_object, read_json};
use crate::directus::DirectusError;
use crate::kit::non_empty;
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

/// A user with Directus' field names. Every field is there unless `fields` asked for fewer.
#[derive(Debug, Serialize, ToSchema)]
pub struct DirectusUserView {
    #[schema(format = Uuid, required = false)]
    pub id: String,
    #[schema(required = false)]
    pub first_name: Option<String>,
    #[schema(required = false)]
    pub last_name: Option<String>,
    #[schema(required = false)]
    pub email: String,
    /// The role's uuid, as Directus gives it; null for a user without a role.
    #[schema(format = Uuid, required = false)]
    pub role: Option<String>,
    #[schema(example = "active", required = false)]
    pub status: String,
    /// RFC 3339.
    #[schema(required = false)]
    pub last_access: Option<String>,
    #[schema(example = "EXTENSION_INSTALL", required = false)]
    pub onboarding_state: String,
    #[schema(example = "starter", required = false)]
    pub pricing_tier: String,
}

/// The fields of [`DirectusUserView`], in its order: what `fields` may name.
pub const USER_FIELDS: [&str; 9] = [
    "id",
    "first_name",
    "last_name",
    "email",
    "role",
    "status",
    "last_access",
    "onboarding_state",
    "pricing_tier",
];

/// The Directus collection our users stand for, as Directus' errors name it.
const USERS_COLLECTION: &str = "directus_users";

/// Directus' `fields` query parameter: which fields of the item to answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fields {
    /// Absent, empty, or `*` among them.
    All,
    /// These, in [`USER_FIELDS`] order.
    Only(Vec<&'static str>),
}

impl Fields {
    /// Reads `fields=a,b` and `fields[]=a&fields[]=b` (both may be repeated, and mixed) from a
    /// query string; other parameters are not ours to judge. `*` (and `*.*`, …: we have no
    /// relations to expand) means every field. A Directus user field we do not hold is left out
    /// (only `id` when nothing else is left, as Directus answers). A name that is no user field,
    /// a relational path (`role.name`) included, is Directus' 403 `FORBIDDEN`, naming it
    /// (Directus 11 itself drops such names silently; a typo should not pass unnoticed).
    pub fn parse(query: &str) -> Result<Self, DirectusError> {
        let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
            .map_err(|_| DirectusError::invalid_payload("the query string is not valid"))?
            .into_inner();
        let mut all = false;
        let mut named_absent = false;
        let mut wanted = Vec::new();
        let mut unknown: Vec<String> = Vec::new();
        let names = pairs
            .iter()
            .filter(|(key, _)| key == "fields" || key == "fields[]")
            .flat_map(|(_, value)| value.split(','))
            .map(str::trim)
            .filter(|name| !name.is_empty());
        for name in names {
            if name.split('.').all(|part| part == "*") {
                all = true;
            } else if let Some(known) = USER_FIELDS.iter().find(|known| **known == name) {
                wanted.push(*known);
            } else if READ_ONLY_FIELDS.iter().any(|(field, _)| *field == name) {
                // A Directus user field we do not hold (`avatar`, `language`, …): left out, as
                // Directus leaves out what it cannot give.
                named_absent = true;
            } else if !unknown.iter().any(|seen| seen == name) {
                unknown.push(name.to_owned());
            }
        }
        if !unknown.is_empty() {
            let unknown: Vec<&str> = unknown.iter().map(String::as_str).collect();
            return Err(DirectusError::forbidden_fields(USERS_COLLECTION, &unknown));
        }
        if all || (wanted.is_empty() && !named_absent) {
            return Ok(Self::All);
        }
        if wanted.is_empty() {
            // Directus answers the primary key when none of the fields named is there.
            wanted.push("id");
        }
        Ok(Self::Only(
            USER_FIELDS
                .into_iter()
                .filter(|field| wanted.contains(field))
                .collect(),
        ))
    }

    /// `{"data": user}` with only these fields.
    fn respond(&self, user: DirectusUserView) -> Result<HttpResponse, DirectusError> {
        let Self::Only(only) = self else {
            return Ok(HttpResponse::Ok().json(MeResponse { data: user }));
        };
        let Value::Object(mut all) = serde_json::to_value(user)
            .map_err(|_| DirectusError::from(common::ApiError::internal()))?
        else {
            return Err(common::ApiError::internal().into());
        };
        let data: Map<String, Value> = only
            .iter()
            .filter_map(|field| all.remove_entry(*field))
            .collect();
        Ok(HttpResponse::Ok().json(serde_json::json!({ "data": data })))
    }
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

const FIELDS_PARAM: &str = "Comma-separated field names (`id,email`), or `*` for all (the default); \
    `fields[]=id&fields[]=email` also works. Directus user fields this server does not hold \
    (`avatar`, `language`, …) are left out; a name that is no user field (a relational path such \
    as `role.name` included) is 403 `FORBIDDEN`.";

/// The signed-in user, with Directus' field names (`role` is the role's uuid); `fields` picks
/// which.
#[utoipa::path(
    tag = "directus",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    params(
        ("fields" = Option<String>, Query, description = FIELDS_PARAM, example = "id,email,first_name"),
        ("fields[]" = Option<Vec<String>>, Query, description = "The same, one field per parameter"),
    ),
    responses(
        (status = 200, description = "The user (only the fields asked for)", body = MeResponse),
        Errors<(DirectusToken, DirectusFields)>,
    )
)]
#[get("/users/me")]
pub async fn me(
    DirectusUser(identity): DirectusUser,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, DirectusError> {
    let fields = Fields::parse(req.query_string())?;
    let user = state
        .auth
        .call(&identity, pb::MeRequest {}, rpc!(me))
        .await?;
    fields.respond(user.into())
}

/// Directus' `PATCH /users/me` (the SDK's `updateMe`): what a user may change about themselves
/// here. Names may be cleared with `null`; the email is required and unique (any case).
#[derive(Deserialize, ToSchema)]
pub struct UpdateMeBody {
    /// `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 100, pattern = "\\S")]
    pub first_name: Option<Option<NonBlank>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 100, pattern = "\\S")]
    pub last_name: Option<Option<NonBlank>>,
    /// The new login email; unique whatever its case. It cannot be cleared.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String, format = Email, min_length = 1, pattern = "\\S")]
    pub email: Option<Option<NonBlank>>,
}

/// A field that is present, `null` included: absent is `None`, `null` is `Some(None)`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// What `PATCH /users/me` may change.
pub const SETTABLE_FIELDS: [&str; 3] = ["first_name", "last_name", "email"];

/// Fields a Directus user has that cannot be changed here: ours that other routes or the
/// identity provider own, and Directus' that we do not hold. Each is a 400 naming it; any other
/// name is Directus' 403 `FORBIDDEN` for a field that does not exist.
pub const READ_ONLY_FIELDS: [(&str, &str); 27] = [
    ("id", "is the user's identity"),
    (
        "role",
        "is changed by an administrator (POST /api/rbac-sync)",
    ),
    (
        "status",
        "is changed by an administrator (POST /api/rbac-sync)",
    ),
    (
        "pricing_tier",
        "is changed by the subscription (POST /api/rbac-sync)",
    ),
    (
        "onboarding_state",
        "is changed through PATCH /api/onboarding",
    ),
    ("last_access", "is kept by the server"),
    (
        "password",
        "is not changed here (no password change is offered yet)",
    ),
    ("avatar", "is uploaded through PATCH /api/user-proxy"),
    ("location", "is not stored by this server"),
    ("title", "is not stored by this server"),
    ("description", "is not stored by this server"),
    ("tags", "is not stored by this server"),
    ("language", "is not stored by this server"),
    ("appearance", "is not stored by this server"),
    ("theme_light", "is not stored by this server"),
    ("theme_dark", "is not stored by this server"),
    ("theme_light_overrides", "is not stored by this server"),
    ("theme_dark_overrides", "is not stored by this server"),
    ("text_direction", "is not stored by this server"),
    (
        "tfa_secret",
        "is not stored by this server (no two-factor authentication)",
    ),
    ("email_notifications", "is not stored by this server"),
    ("last_page", "is not stored by this server"),
    ("token", "is not offered (no static tokens)"),
    ("provider", "is kept by the server"),
    ("external_identifier", "is kept by the server"),
    ("auth_data", "is kept by the server"),
    ("policies", "is changed by an administrator"),
];

/// Refuses the fields that cannot be set, before the values are looked at.
fn check_settable(body: &Map<String, Value>) -> Result<(), DirectusError> {
    let mut unknown = Vec::new();
    for name in body.keys() {
        if SETTABLE_FIELDS.contains(&name.as_str()) {
            continue;
        }
        if let Some((field, why)) = READ_ONLY_FIELDS.iter().find(|(field, _)| field == name) {
            return Err(
                DirectusError::invalid_payload(format!("\"{field}\" {why}")).with_field(*field)
            );
        }
        unknown.push(name.as_str());
    }
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(DirectusError::forbidden_fields(USERS_COLLECTION, &unknown))
    }
}

/// Changes the signed-in user's own names and email (the SDK's `updateMe`); answers the user
/// as `GET /users/me` does, `fields` included.
#[utoipa::path(
    tag = "directus",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    params(
        ("fields" = Option<String>, Query, description = FIELDS_PARAM, example = "id,email,first_name"),
        ("fields[]" = Option<Vec<String>>, Query, description = "The same, one field per parameter"),
    ),
    request_body = UpdateMeBody,
    responses(
        (status = 200, description = "The user after the change (only the fields asked for)", body = MeResponse),
        Errors<(DirectusToken, DirectusUpdate, DirectusFields)>,
    )
)]
#[patch("/users/me")]
pub async fn update_me(
    DirectusUser(identity): DirectusUser,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, DirectusError> {
    let fields = Fields::parse(req.query_string())?;
    let body: Map<String, Value> = read_json(&req, payload.into_inner(), body_limit(&req)).await?;
    check_settable(&body)?;
    let body: UpdateMeBody = parse_object(body)?;
    let name = |name: Option<Option<NonBlank>>| {
        name.map(|name| name.map(String::from).unwrap_or_default())
    };
    let request = pb::UpdateMeRequest {
        first_name: name(body.first_name),
        last_name: name(body.last_name),
        email: match body.email {
            Some(Some(email)) => Some(email.into()),
            Some(None) => {
                return Err(
                    DirectusError::invalid_payload("\"email\" is required").with_field("email")
                );
            }
            None => None,
        },
    };
    let user = state.auth.call(&identity, request, rpc!(update_me)).await?;
    fields.respond(user.into())
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
    directus DirectusFields {
        403 "FORBIDDEN": "`fields` (or the body) names something that is no Directus user field (`extensions.field` names the first)",
    }
}

error_set! {
    directus DirectusUpdate {
        400 "INVALID_PAYLOAD": "the body is not a JSON object; a field is blank, holds NUL, has the wrong type, a name is over 100 characters or the email is not an address; or a field that cannot be changed here (`id`, `role`, `status`, `password`, …) (`extensions.field` names it)",
        400 "RECORD_NOT_UNIQUE": "another user has this email",
        413 "CONTENT_TOO_LARGE": "the body is over the configured limit, as sent or once decoded",
        415 "UNSUPPORTED_MEDIA_TYPE": "a `Content-Encoding` other than gzip or deflate",
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
    routes
        .add(login)
        .add(refresh)
        .add(logout)
        .add(me)
        .add(update_me);
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
    fn fields_are_a_comma_list_an_array_or_all() {
        let only = |fields: &[&'static str]| Fields::Only(fields.to_vec());
        let cases = [
            ("", Fields::All),
            ("fields=", Fields::All),
            ("fields=*", Fields::All),
            ("fields=*.*", Fields::All),
            ("fields=id,*", Fields::All),
            ("access_token=x&limit=3", Fields::All),
            ("fields=email,id", only(&["id", "email"])),
            ("fields=%20email%20,,id", only(&["id", "email"])),
            ("fields[]=email&fields[]=id", only(&["id", "email"])),
            ("fields%5B%5D=status&fields=status", only(&["status"])),
            ("fields=email,avatar", only(&["email"])),
            ("fields=avatar,language", only(&["id"])),
        ];
        for (query, fields) in cases {
            assert_eq!(Fields::parse(query).unwrap(), fields, "{query}");
        }
        for (query, named) in [
            ("fields=nope", "\"nope\""),
            ("fields=id,role.name", "\"role.name\""),
            ("fields=a,b,a", "fields \"a\", \"b\""),
            ("fields=*.nope", "\"*.nope\""),
        ] {
            let err = Fields::parse(query).unwrap_err();
            assert_eq!(
                (err.status.as_u16(), err.code),
                (403, "FORBIDDEN"),
                "{query}"
            );
            assert!(err.message.contains(named), "{query}: {}", err.message);
            assert!(err.message.contains("\"directus_users\""));
        }
    }

    #[test]
    fn only_names_and_email_may_be_patched_and_the_rest_is_named() {
        let object = |body: Value| match body {
            Value::Object(object) => object,
            _ => unreachable!("tests pass objects"),
        };
        for body in [
            serde_json::json!({}),
            serde_json::json!({"first_name": "a", "last_name": null, "email": "a@b.c"}),
        ] {
            assert!(check_settable(&object(body)).is_ok());
        }
        for field in [
            "id",
            "role",
            "status",
            "password",
            "avatar",
            "tfa_secret",
            "onboarding_state",
        ] {
            let err = check_settable(&object(serde_json::json!({"first_name": "a", field: 1})))
                .unwrap_err();
            assert_eq!((err.status.as_u16(), err.code), (400, "INVALID_PAYLOAD"));
            assert_eq!(err.field.as_deref(), Some(field));
        }
        let err = check_settable(&object(serde_json::json!({"colour": 1}))).unwrap_err();
        assert_eq!((err.status.as_u16(), err.code), (403, "FORBIDDEN"));
        assert_eq!(err.field.as_deref(), Some("colour"));
        assert!(
            READ_ONLY_FIELDS
                .iter()
                .all(|(field, _)| !SETTABLE_FIELDS.contains(field) && !field.is_empty())
        );
    }

    #[test]
    fn a_null_name_is_a_clear_and_an_absent_one_no_change() {
        let body: UpdateMeBody = parse_object(
            match serde_json::json!({"first_name": null, "email": "a@b.c"}) {
                Value::Object(object) => object,
                _ => unreachable!("an object"),
            },
        )
        .unwrap();
        assert!(matches!(body.first_name, Some(None)));
        assert!(body.last_name.is_none());
        assert!(matches!(body.email, Some(Some(_))));
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
