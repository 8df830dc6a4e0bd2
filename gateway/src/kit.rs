//! The route kit: how every gateway route is written.
//!
//! A route is one handler with its `#[utoipa::path]` documentation and its actix method macro,
//! and one line in its module's `routes`:
//!
//! ```ignore
//! /// Reveals a creator profile's login credentials (audited).
//! #[utoipa::path(tag = "credentials", security(OWNER_OR_SECRET),
//!     request_body = ProfileRef,
//!     responses((status = 200, body = Envelope<RevealedCredentials>),
//!               Errors<(OwnerOrSecret, JsonBody, ProfileNotFound)>))]
//! #[post("/api/credentials/reveal")]
//! async fn reveal(Input(OwnerOrSystem(caller), body): Input<OwnerOrSystem, ProfileRef>,
//!                 state: web::Data<AppState>) -> Reply<RevealedCredentials> {
//!     state.credentials.forward(&caller, body.into(), rpc!(reveal_credentials)).await
//! }
//!
//! pub fn routes(routes: &mut Routes) { routes.add(reveal); }
//! ```
//!
//! - [`Routes::add`] mounts a route and puts it in the OpenAPI document in one step; nothing
//!   else can mount a route, so the document lists exactly what is served.
//! - [`Input`] runs the caller check (token, role, shared secret) before the body is read, so a
//!   request that may not use a route is refused as such whatever its body.
//! - Bodies are real types (required fields are not `Option`); a failure names the field and
//!   never echoes a value ([`crate::body`]).
//! - [`Service::forward`](crate::upstream::Service::forward) calls the RPC with the caller's
//!   identity and a deadline, converts the reply, and wraps it in the [`Envelope`].
//! - Errors are documented by sets ([`ErrorSet`]) that a route combines: `Errors<(A, B, C)>`.
//!   Reasons that share a status are listed together under it.

use std::collections::BTreeMap;
use std::marker::PhantomData;

use actix_web::body::BoxBody;
use actix_web::dev::{HttpServiceFactory, Payload};
use actix_web::{FromRequest, HttpRequest, HttpResponse, Responder};
use common::ApiError;
use futures_util::future::LocalBoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{IntoResponses, ToSchema};
use utoipa_actix_web::OpenApiFactory;

/// proto3 has no absent strings; an empty one in a service's answer means "none".
pub fn non_empty(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

/// A part of an answer a service must send; its absence is that service's bug, answered as a
/// 500.
pub fn present<T>(value: Option<T>, what: &'static str) -> Result<T, ApiError> {
    value.ok_or_else(|| {
        tracing::error!(what, "a service left out a part of its answer");
        ApiError::internal()
    })
}

/// Calls one RPC of a generated client: `rpc!(reveal_credentials)` is the closure that
/// [`Service::call`](crate::upstream::Service::call) and `forward` take.
#[macro_export]
macro_rules! rpc {
    ($method:ident) => {
        |mut client, request| async move { client.$method(request).await }
    };
}

/// Where routes are mounted. Only documented routes can be added.
pub struct Routes<'c, 's>(&'c mut utoipa_actix_web::service_config::ServiceConfig<'s>);

impl<'c, 's> Routes<'c, 's> {
    pub fn new(config: &'c mut utoipa_actix_web::service_config::ServiceConfig<'s>) -> Self {
        Self(config)
    }

    /// Mounts a handler made by an actix method macro and annotated with `#[utoipa::path]`.
    pub fn add<R: HttpServiceFactory + OpenApiFactory + 'static>(&mut self, route: R) -> &mut Self {
        self.0.service(route);
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Query strings

/// A query string read by hand, so that each bad parameter is named: the pairs in order, values
/// trimmed, empty ones left out (absent), the last of a repeated one winning; which keys count
/// (and what an unknown one does) is up to [`QueryParams::set`]. The extractor is [`Query`].
pub trait QueryParams: Default {
    /// Takes one parameter (`value` trimmed and not empty).
    fn set(&mut self, key: &str, value: &str) -> Result<(), ApiError>;

    fn parse(query: &str) -> Result<Self, ApiError> {
        let pairs = actix_web::web::Query::<Vec<(String, String)>>::from_query(query)
            .map_err(|_| ApiError::invalid_field("query", "the query string is not valid"))?
            .into_inner();
        let mut parsed = Self::default();
        for (key, value) in pairs {
            let value = value.trim();
            if !value.is_empty() {
                parsed.set(&key, value)?;
            }
        }
        Ok(parsed)
    }
}

/// The query string as a [`QueryParams`] type: `Query(query): Query<SkillsQuery>`.
pub struct Query<T>(pub T);

impl<T: QueryParams> FromRequest for Query<T> {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(T::parse(req.query_string()).map(Query))
    }
}

/// The `{id}` segment of the route's path, as sent: `PathId(id): PathId` (the service that owns
/// the resource says whether it names one).
pub struct PathId(pub String);

impl FromRequest for PathId {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(
            req.match_info()
                .get("id")
                .map(|id| PathId(id.to_owned()))
                .ok_or_else(|| ApiError::missing_field("id")),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Success

/// Every `/api` success body: `{"ok": true, "success": true, ...the route's fields}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Envelope<T> {
    #[schema(example = true)]
    ok: bool,
    #[schema(example = true)]
    success: bool,
    #[serde(flatten)]
    pub body: T,
}

impl<T> Envelope<T> {
    pub fn new(body: T) -> Self {
        Self {
            ok: true,
            success: true,
            body,
        }
    }
}

impl<T: Serialize> Responder for Envelope<T> {
    type Body = BoxBody;

    fn respond_to(self, _: &HttpRequest) -> HttpResponse {
        HttpResponse::Ok().json(self)
    }
}

/// What an `/api` handler returns.
pub type Reply<T> = Result<Envelope<T>, ApiError>;

// ---------------------------------------------------------------------------------------------
// Input

/// A caller check and a JSON body, in that order: the body is read only once the caller may use
/// the route. `C` is one of the extractors of [`crate::session`].
pub struct Input<C, B>(pub C, pub B);

impl<C, B> FromRequest for Input<C, B>
where
    C: FromRequest<Error = ApiError> + 'static,
    C::Future: 'static,
    B: DeserializeOwned + 'static,
{
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let caller = C::from_request(req, &mut Payload::None);
        let req = req.clone();
        let payload = payload.take();
        Box::pin(async move {
            let caller = caller.await?;
            let limit = crate::body::body_limit(&req);
            let body = crate::body::read_json(&req, payload, limit).await?;
            Ok(Input(caller, body))
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Documented errors

/// The error body a reason is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorFormat {
    /// `{ok, success, error, reason, field?}` (`ErrorResponse`).
    Api,
    /// Directus' `{errors: [{message, extensions: {code}}]}` (`DirectusErrors`).
    Directus,
}

/// One way a route can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorDoc {
    pub status: u16,
    pub reason: &'static str,
    pub when: &'static str,
    pub format: ErrorFormat,
}

/// A set of documented failures that routes share.
pub trait ErrorSet {
    fn collect(into: &mut Vec<ErrorDoc>);
}

macro_rules! tuple_error_sets {
    ($($set:ident),+) => {
        impl<$($set: ErrorSet),+> ErrorSet for ($($set,)+) {
            fn collect(into: &mut Vec<ErrorDoc>) {
                $($set::collect(into);)+
            }
        }
    };
}
tuple_error_sets!(A);
tuple_error_sets!(A, B);
tuple_error_sets!(A, B, C);
tuple_error_sets!(A, B, C, D);
tuple_error_sets!(A, B, C, D, E);
tuple_error_sets!(A, B, C, D, E, F);

/// Declares an [`ErrorSet`]: `error_set!(pub NotYours { 404 "not_found": "another user's" });`.
/// `error_set!(directus pub Name { ... })` declares one answered in Directus' format.
#[macro_export]
macro_rules! error_set {
    ($(#[$meta:meta])* $vis:vis $name:ident { $($status:literal $reason:literal : $when:literal),+ $(,)? }) => {
        $crate::error_set!(@format Api $(#[$meta])* $vis $name { $($status $reason : $when),+ });
    };
    (directus $(#[$meta:meta])* $vis:vis $name:ident { $($status:literal $reason:literal : $when:literal),+ $(,)? }) => {
        $crate::error_set!(@format Directus $(#[$meta])* $vis $name { $($status $reason : $when),+ });
    };
    (@format $format:ident $(#[$meta:meta])* $vis:vis $name:ident { $($status:literal $reason:literal : $when:literal),+ }) => {
        $(#[$meta])*
        $vis struct $name;

        impl $crate::kit::ErrorSet for $name {
            fn collect(into: &mut Vec<$crate::kit::ErrorDoc>) {
                into.extend([$($crate::kit::ErrorDoc {
                    status: $status,
                    reason: $reason,
                    when: $when,
                    format: $crate::kit::ErrorFormat::$format,
                }),+]);
            }
        }
    };
}

/// The responses of an [`ErrorSet`], one per status, each listing its reasons.
pub struct Errors<S>(PhantomData<S>);

impl<S: ErrorSet> IntoResponses for Errors<S> {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut docs = Vec::new();
        S::collect(&mut docs);
        let mut by_status: BTreeMap<u16, Vec<ErrorDoc>> = BTreeMap::new();
        for doc in docs {
            let listed = by_status.entry(doc.status).or_default();
            if !listed.iter().any(|seen| seen.reason == doc.reason) {
                listed.push(doc);
            }
        }
        by_status
            .into_iter()
            .map(|(status, docs)| (status.to_string(), RefOr::T(response(status, &docs))))
            .collect()
    }
}

fn response(status: u16, docs: &[ErrorDoc]) -> Response {
    let description = docs
        .iter()
        .map(|doc| format!("- `{}`: {}", doc.reason, doc.when))
        .collect::<Vec<_>>()
        .join("\n");
    let schema = match docs.first().map(|doc| doc.format) {
        Some(ErrorFormat::Directus) => "DirectusErrors",
        _ => "ErrorResponse",
    };
    let mut builder = ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(schema)))
            .build(),
    );
    if status == 429 {
        builder = builder.header(
            "Retry-After",
            utoipa::openapi::HeaderBuilder::new()
                .schema(Some(u64::schema()))
                .description(Some("Seconds until the next attempt is allowed"))
                .build(),
        );
    }
    builder.build()
}

use utoipa::PartialSchema as _;

error_set! {
    /// Routes that need a signed-in, active user.
    pub Authenticated {
        400 "token_ambiguous": "an access token both in the Authorization header and in the `access_token` query parameter",
        401 "token_missing": "no access token",
        401 "token_expired": "the access token has expired",
        401 "token_invalid": "bad signature, algorithm or issuer, or a user that no longer exists",
        401 "user_suspended": "the account is not active",
        401 "impersonation_revoked": "an impersonation token whose administrator has since been suspended, demoted or removed",
        503 "service_unavailable": "a service (svc-auth or the route's own) is down or did not answer in time",
    }
}

error_set! {
    /// Routes for administrators only: checked before the body is read.
    pub AdminOnly {
        403 "forbidden": "the caller is not an administrator",
    }
}

error_set! {
    /// Routes for a server-to-server caller proving `X-RBAC-SYNC-SECRET` (a token does not count).
    pub SecretOnly {
        401 "invalid_secret": "missing or wrong `X-RBAC-SYNC-SECRET`",
        503 "service_unavailable": "the route's service is down or did not answer in time",
    }
}

error_set! {
    /// Routes for a signed-in owner or a server-to-server caller: with `X-RBAC-SYNC-SECRET`
    /// present, only the secret counts.
    pub SecretOrToken {
        401 "invalid_secret": "a wrong `X-RBAC-SYNC-SECRET` (the token is then not looked at)",
    }
}

error_set! {
    /// Routes that read a JSON body.
    pub JsonBody {
        400 "missing_field": "a required field is absent, null or blank (`field` names it)",
        400 "invalid_body": "the body is not a JSON object, or a field has the wrong type or value (`field` names it)",
        413 "payload_too_large": "the body is over the configured limit, as sent or once decoded",
        415 "unsupported_content_encoding": "a `Content-Encoding` other than gzip or deflate",
    }
}

error_set! {
    /// Routes that consume a quota (fail-closed).
    pub QuotaGated {
        403 "limit_reached": "the tier's limit for this billing cycle is used up (`error` is `tier_limit_reached`, `message` tells to upgrade)",
        403 "quota_check_failed": "svc-usage could not be asked; nothing was consumed or done",
        409 "idempotency_key_reused": "the idempotency key was used with another request (operation or amount)",
        409 "idempotency_key_refunded": "the request with this idempotency key failed and was refunded; send it again with a new key",
    }
}

/// Routes for a signed-in owner or a server-to-server caller.
pub type OwnerOrSecret = (SecretOrToken, Authenticated);
