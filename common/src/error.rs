//! The one error type that crosses service boundaries, with its two mappings: to a gRPC status
//! (inside the platform) and to an HTTP response (at the gateway, docs/DESIGN.md §4). The HTTP
//! response (actix-web's `ResponseError`) is behind the `http` feature, so that the gRPC services
//! do not link actix-web; the status number it answers with is here for everyone.
//!
//! Each crate keeps its own `thiserror` enum and converts it into [`ApiError`]. The `reason` is a
//! stable machine code that clients may match on; the message is for people and never carries
//! internals: an [`ApiError::internal`] always says only "internal error".

use std::borrow::Cow;

use tonic::metadata::MetadataValue;

#[cfg(feature = "http")]
pub use http::ErrorBody;

/// gRPC metadata carrying the stable reason code of an error.
pub const REASON_METADATA: &str = "x-genie-reason";
/// gRPC metadata carrying the name of the offending request field, when there is one.
pub const FIELD_METADATA: &str = "x-genie-field";
/// gRPC metadata carrying the seconds to wait before retrying a rate-limited call.
pub const RETRY_AFTER_METADATA: &str = "x-genie-retry-after";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    InvalidArgument,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    Conflict,
    /// Subscription quota used up: HTTP 403 with `"error":"tier_limit_reached"`.
    QuotaExhausted,
    RateLimited,
    PayloadTooLarge,
    /// A body in an encoding or media type the route does not take: HTTP 415.
    UnsupportedMediaType,
    FailedPrecondition,
    Unavailable,
    /// An outside dependency (LLM provider, Directus) failed: HTTP 502.
    Upstream,
    Internal,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub kind: Kind,
    pub reason: Cow<'static, str>,
    pub message: String,
    pub field: Option<String>,
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(
        kind: Kind,
        reason: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            reason: reason.into(),
            message: message.into(),
            field: None,
            retry_after_secs: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn missing_field(field: &str) -> Self {
        Self::new(
            Kind::InvalidArgument,
            "missing_field",
            format!("{field} is required"),
        )
        .with_field(field)
    }

    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::new(Kind::InvalidArgument, "invalid_body", message).with_field(field)
    }

    pub fn unauthenticated(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(Kind::Unauthenticated, reason, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(Kind::PermissionDenied, "forbidden", message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(Kind::NotFound, "not_found", format!("{what} not found"))
    }

    pub fn conflict(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(Kind::Conflict, reason, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(Kind::Unavailable, "service_unavailable", message)
    }

    /// An unexpected failure. Log the cause where it happened; this error never carries it.
    pub fn internal() -> Self {
        Self::new(Kind::Internal, "internal", "internal error")
    }

    /// The HTTP status the gateway answers this error with (docs/DESIGN.md §4).
    pub fn http_status_code(&self) -> u16 {
        match self.kind {
            Kind::InvalidArgument => 400,
            Kind::Unauthenticated => 401,
            Kind::PermissionDenied | Kind::QuotaExhausted => 403,
            Kind::NotFound => 404,
            Kind::Conflict => 409,
            Kind::RateLimited => 429,
            Kind::PayloadTooLarge => 413,
            Kind::UnsupportedMediaType => 415,
            Kind::FailedPrecondition | Kind::Unavailable => 503,
            Kind::Upstream => 502,
            Kind::Internal => 500,
        }
    }

    /// [`Self::http_status_code`] as actix-web's type.
    #[cfg(feature = "http")]
    pub fn http_status(&self) -> actix_web::http::StatusCode {
        // Every code above is a valid status; the fallback is never taken.
        actix_web::http::StatusCode::from_u16(self.http_status_code())
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn grpc_code(&self) -> tonic::Code {
        match self.kind {
            Kind::InvalidArgument => tonic::Code::InvalidArgument,
            Kind::Unauthenticated => tonic::Code::Unauthenticated,
            Kind::PermissionDenied => tonic::Code::PermissionDenied,
            Kind::NotFound => tonic::Code::NotFound,
            Kind::Conflict => tonic::Code::AlreadyExists,
            Kind::QuotaExhausted | Kind::RateLimited => tonic::Code::ResourceExhausted,
            Kind::PayloadTooLarge => tonic::Code::OutOfRange,
            Kind::UnsupportedMediaType => tonic::Code::InvalidArgument,
            Kind::FailedPrecondition => tonic::Code::FailedPrecondition,
            Kind::Unavailable => tonic::Code::Unavailable,
            Kind::Upstream => tonic::Code::Aborted,
            Kind::Internal => tonic::Code::Internal,
        }
    }
}

fn metadata_str<'a>(status: &'a tonic::Status, key: &str) -> Option<&'a str> {
    status
        .metadata()
        .get(key)
        .and_then(|value| value.to_str().ok())
}

/// Lets a conversion that cannot fail stand where one that can is expected.
impl From<std::convert::Infallible> for ApiError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

impl From<ApiError> for tonic::Status {
    fn from(err: ApiError) -> Self {
        let mut status = tonic::Status::new(err.grpc_code(), err.message);
        let metadata = status.metadata_mut();
        if let Ok(reason) = MetadataValue::try_from(err.reason.as_ref()) {
            metadata.insert(REASON_METADATA, reason);
        }
        if let Some(field) = err
            .field
            .as_deref()
            .and_then(|f| MetadataValue::try_from(f).ok())
        {
            metadata.insert(FIELD_METADATA, field);
        }
        if let Some(secs) = err.retry_after_secs {
            metadata.insert(RETRY_AFTER_METADATA, MetadataValue::from(secs));
        }
        status
    }
}

impl From<tonic::Status> for ApiError {
    /// Maps a status from one of our services. Statuses made by the transport (connection refused,
    /// deadline) carry no reason metadata and their messages are not shown to clients.
    fn from(status: tonic::Status) -> Self {
        let reason = metadata_str(&status, REASON_METADATA).map(str::to_owned);
        let field = metadata_str(&status, FIELD_METADATA).map(str::to_owned);
        let retry_after_secs =
            metadata_str(&status, RETRY_AFTER_METADATA).and_then(|s| s.parse().ok());
        let from_service = reason.is_some();
        let kind = match status.code() {
            tonic::Code::InvalidArgument if reason.as_deref() == Some("unsupported_media_type") => {
                Kind::UnsupportedMediaType
            }
            tonic::Code::InvalidArgument => Kind::InvalidArgument,
            tonic::Code::Unauthenticated => Kind::Unauthenticated,
            tonic::Code::PermissionDenied => Kind::PermissionDenied,
            tonic::Code::NotFound => Kind::NotFound,
            tonic::Code::AlreadyExists => Kind::Conflict,
            tonic::Code::ResourceExhausted if reason.as_deref() == Some("rate_limited") => {
                Kind::RateLimited
            }
            tonic::Code::ResourceExhausted => Kind::QuotaExhausted,
            tonic::Code::OutOfRange => Kind::PayloadTooLarge,
            tonic::Code::FailedPrecondition => Kind::FailedPrecondition,
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
                Kind::Unavailable
            }
            tonic::Code::Aborted if from_service => Kind::Upstream,
            _ => Kind::Internal,
        };
        match (kind, reason) {
            (Kind::Internal, _) => Self::internal(),
            (Kind::Unavailable, None) => {
                Self::unavailable("a service is unavailable, try again shortly")
            }
            (kind, reason) => Self {
                kind,
                reason: reason.map_or_else(|| Cow::Borrowed(default_reason(kind)), Cow::Owned),
                message: status.message().to_owned(),
                field,
                retry_after_secs,
            },
        }
    }
}

fn default_reason(kind: Kind) -> &'static str {
    match kind {
        Kind::InvalidArgument => "invalid_body",
        Kind::Unauthenticated => "token_invalid",
        Kind::PermissionDenied => "forbidden",
        Kind::NotFound => "not_found",
        Kind::Conflict => "conflict",
        Kind::QuotaExhausted => "limit_reached",
        Kind::RateLimited => "rate_limited",
        Kind::PayloadTooLarge => "payload_too_large",
        Kind::UnsupportedMediaType => "unsupported_media_type",
        Kind::FailedPrecondition | Kind::Unavailable => "service_unavailable",
        Kind::Upstream => "upstream_error",
        Kind::Internal => "internal",
    }
}

/// What every service's error enum repeats, written once. The enum keeps its own variants and
/// its own `From<Enum> for ApiError` (the one mapping of its variants); it must have the variants
/// `Api(ApiError)` and `Db(common::db::DbError)`. This adds to it:
/// - `missing(field)` and `invalid(field, message)`: the request-field errors of every service;
/// - `From<tokio_postgres::Error>` and `From<deadpool_postgres::PoolError>`, through
///   [`crate::db::DbError`], so that `?` works on queries and pool checkouts;
/// - `From<Enum> for tonic::Status`, through the enum's mapping to [`ApiError`].
///
/// ```ignore
/// #[derive(Debug, thiserror::Error)]
/// pub enum UsageError {
///     #[error("this idempotency key was used with other parameters")]
///     KeyReused,
///     #[error(transparent)]
///     Api(#[from] ApiError),
///     #[error(transparent)]
///     Db(#[from] common::db::DbError),
/// }
/// common::service_error!(UsageError);
/// ```
#[macro_export]
macro_rules! service_error {
    ($error:ident) => {
        impl $error {
            /// A request field that is absent.
            pub fn missing(field: &str) -> Self {
                Self::Api($crate::ApiError::missing_field(field))
            }

            /// A request field whose value is not acceptable, and why.
            pub fn invalid(field: &str, message: impl Into<String>) -> Self {
                Self::Api($crate::ApiError::invalid_field(field, message))
            }
        }

        impl From<$crate::__private::tokio_postgres::Error> for $error {
            fn from(err: $crate::__private::tokio_postgres::Error) -> Self {
                Self::Db(err.into())
            }
        }

        impl From<$crate::__private::deadpool_postgres::PoolError> for $error {
            fn from(err: $crate::__private::deadpool_postgres::PoolError) -> Self {
                Self::Db(err.into())
            }
        }

        impl From<$error> for $crate::__private::tonic::Status {
            fn from(err: $error) -> Self {
                $crate::ApiError::from(err).into()
            }
        }
    };
}

#[cfg(feature = "http")]
mod http {
    use actix_web::http::StatusCode;
    use actix_web::http::header::RETRY_AFTER;
    use actix_web::{HttpResponse, ResponseError};
    use serde::Serialize;

    use super::{ApiError, Kind};

    /// The JSON error body of docs/DESIGN.md §4.
    #[derive(Debug, Serialize)]
    pub struct ErrorBody<'a> {
        pub ok: bool,
        pub success: bool,
        pub error: &'a str,
        pub reason: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub field: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub message: Option<&'a str>,
    }

    impl ResponseError for ApiError {
        fn status_code(&self) -> StatusCode {
            self.http_status()
        }

        fn error_response(&self) -> HttpResponse {
            let quota = self.kind == Kind::QuotaExhausted;
            let body = ErrorBody {
                ok: false,
                success: false,
                error: if quota {
                    "tier_limit_reached"
                } else {
                    &self.message
                },
                reason: &self.reason,
                field: self.field.as_deref(),
                message: quota.then_some(self.message.as_str()),
            };
            let mut response = HttpResponse::build(self.http_status());
            if let Some(secs) = self.retry_after_secs {
                response.insert_header((RETRY_AFTER, secs.to_string()));
            }
            response.json(body)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_a_round_trip_through_grpc() {
        let err = ApiError::invalid_field("email", "email is not an address");
        let back = ApiError::from(tonic::Status::from(err));
        assert_eq!(back.kind, Kind::InvalidArgument);
        assert_eq!(back.reason, "invalid_body");
        assert_eq!(back.field.as_deref(), Some("email"));
        assert_eq!(back.message, "email is not an address");
        assert_eq!(back.http_status_code(), 400);

        let unsupported = ApiError::new(
            Kind::UnsupportedMediaType,
            "unsupported_media_type",
            "not an image",
        )
        .with_field("file");
        let back = ApiError::from(tonic::Status::from(unsupported));
        assert_eq!(back.http_status_code(), 415);
        assert_eq!(back.field.as_deref(), Some("file"));
    }

    #[test]
    fn transport_failures_hide_their_details() {
        let refused = tonic::Status::unavailable("tcp connect error: 127.0.0.1:50051 refused");
        let err = ApiError::from(refused);
        assert_eq!(err.http_status_code(), 503);
        assert_eq!(err.reason, "service_unavailable");
        assert!(!err.message.contains("127.0.0.1"));

        let internal = ApiError::from(tonic::Status::internal(
            "relation auth.users does not exist",
        ));
        assert_eq!(internal.http_status_code(), 500);
        assert_eq!(internal.message, "internal error");
    }

    #[test]
    fn quota_and_rate_limits_map_to_their_statuses() {
        let quota = ApiError::new(
            Kind::QuotaExhausted,
            "limit_reached",
            "Upgrade to continue.",
        );
        assert_eq!(
            ApiError::from(tonic::Status::from(quota)).http_status_code(),
            403
        );
        let mut rate = ApiError::new(Kind::RateLimited, "rate_limited", "slow down");
        rate.retry_after_secs = Some(90);
        let back = ApiError::from(tonic::Status::from(rate));
        assert_eq!(back.http_status_code(), 429);
        assert_eq!(back.retry_after_secs, Some(90));
    }

    #[cfg(feature = "http")]
    #[test]
    fn the_http_response_has_the_status_and_the_retry_after_header() {
        use actix_web::ResponseError;
        let mut rate = ApiError::new(Kind::RateLimited, "rate_limited", "slow down");
        rate.retry_after_secs = Some(90);
        let response = rate.error_response();
        assert_eq!(response.status().as_u16(), 429);
        assert_eq!(
            response.headers().get(actix_web::http::header::RETRY_AFTER),
            Some(&actix_web::http::header::HeaderValue::from_static("90"))
        );
        for kind in [Kind::InvalidArgument, Kind::QuotaExhausted, Kind::Upstream] {
            let err = ApiError::new(kind, "r", "m");
            assert_eq!(err.http_status().as_u16(), err.http_status_code());
        }
    }
}
