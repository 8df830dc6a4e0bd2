//! Directus' error format, for the Directus-compatible routes (`/auth/*`, `/users/me`), so that
//! the Directus SDK and apps written against a real Directus keep working (docs/DESIGN.md §3).

use std::borrow::Cow;
use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::RETRY_AFTER;
use actix_web::{HttpResponse, ResponseError};
use common::{ApiError, Kind};
use serde::Serialize;
use utoipa::ToSchema;

/// `{"errors":[{"message":"…","extensions":{"code":"…"}}]}`
#[derive(Debug, Clone)]
pub struct DirectusError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: Cow<'static, str>,
    pub retry_after_secs: Option<u64>,
    /// The request field at fault, as `extensions.field` (Directus' validation errors name it
    /// there too).
    pub field: Option<String>,
}

impl DirectusError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after_secs: None,
            field: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// What Directus answers for a field the caller may not use or that does not exist (it does
    /// not tell which): 403 `FORBIDDEN`.
    pub fn forbidden_fields(collection: &str, fields: &[&str]) -> Self {
        let names = fields
            .iter()
            .map(|field| format!("\"{field}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let message = if fields.len() == 1 {
            format!(
                "You don't have permission to access field {names} in collection \"{collection}\" or it does not exist. Queried in root."
            )
        } else {
            format!(
                "You don't have permission to access fields {names} in collection \"{collection}\" or they do not exist. Queried in root."
            )
        };
        let mut err = Self::new(StatusCode::FORBIDDEN, "FORBIDDEN", message);
        err.field = fields.first().map(|field| (*field).to_owned());
        err
    }

    /// Wrong password, unknown email, reused refresh token, no token: one answer for all, so that
    /// the body never tells which it was.
    pub fn invalid_credentials() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "INVALID_CREDENTIALS",
            "Invalid user credentials.",
        )
    }

    pub fn token_expired() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "TOKEN_EXPIRED", "Token expired.")
    }

    pub fn invalid_token() -> Self {
        Self::new(StatusCode::FORBIDDEN, "INVALID_TOKEN", "Invalid token.")
    }

    pub fn invalid_payload(detail: impl fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "INVALID_PAYLOAD",
            format!("Invalid payload. {detail}."),
        )
    }
}

impl fmt::Display for DirectusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<ApiError> for DirectusError {
    fn from(err: ApiError) -> Self {
        let retry_after_secs = err.retry_after_secs;
        let field = err.field.clone();
        let mut mapped = match err.kind {
            Kind::InvalidArgument => Self::invalid_payload(&err.message),
            Kind::Unauthenticated => match err.reason.as_ref() {
                "token_expired" => Self::token_expired(),
                "token_invalid" => Self::invalid_token(),
                // svc-auth's `invalid_credentials`, a missing token, a suspended or unknown user:
                // Directus answers all of them alike.
                _ => Self::invalid_credentials(),
            },
            Kind::PermissionDenied | Kind::QuotaExhausted => Self::new(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                "You don't have permission to access this.",
            ),
            Kind::NotFound => Self::new(StatusCode::NOT_FOUND, "ROUTE_NOT_FOUND", "Not found."),
            // Directus answers a unique field's taken value with 400, not 409.
            Kind::Conflict => Self::new(StatusCode::BAD_REQUEST, "RECORD_NOT_UNIQUE", err.message),
            Kind::RateLimited => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "REQUESTS_EXCEEDED",
                "Too many requests, retry later.",
            ),
            Kind::PayloadTooLarge => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "CONTENT_TOO_LARGE",
                "Uploaded content is too large.",
            ),
            Kind::UnsupportedMediaType => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                err.message,
            ),
            Kind::FailedPrecondition | Kind::Unavailable => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVICE_UNAVAILABLE",
                "Service is unavailable, try again shortly.",
            ),
            Kind::Upstream => Self::new(
                StatusCode::BAD_GATEWAY,
                "SERVICE_UNAVAILABLE",
                "An upstream service failed.",
            ),
            Kind::Internal => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_SERVER_ERROR",
                "An unexpected error occurred.",
            ),
        };
        mapped.retry_after_secs = retry_after_secs;
        mapped.field = field;
        mapped
    }
}

/// The error body Directus answers with (documented in the OpenAPI document).
#[derive(Debug, Serialize, ToSchema)]
pub struct DirectusErrors {
    pub errors: Vec<DirectusErrorItem>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DirectusErrorItem {
    pub message: String,
    pub extensions: DirectusErrorExtensions,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DirectusErrorExtensions {
    /// `INVALID_CREDENTIALS`, `TOKEN_EXPIRED`, `INVALID_TOKEN`, `INVALID_PAYLOAD`, `FORBIDDEN`,
    /// `RECORD_NOT_UNIQUE`, `SERVICE_UNAVAILABLE`, …
    pub code: String,
    /// The request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ResponseError for DirectusError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let body = DirectusErrors {
            errors: vec![DirectusErrorItem {
                message: self.message.clone().into_owned(),
                extensions: DirectusErrorExtensions {
                    code: self.code.to_owned(),
                    field: self.field.clone(),
                },
            }],
        };
        let mut response = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after_secs {
            response.insert_header((RETRY_AFTER, secs.to_string()));
        }
        response.json(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_map_to_directus_codes() {
        let cases = [
            (
                ApiError::unauthenticated("invalid_credentials", "wrong password"),
                401,
                "INVALID_CREDENTIALS",
            ),
            (
                ApiError::unauthenticated("token_missing", "no token"),
                401,
                "INVALID_CREDENTIALS",
            ),
            (
                ApiError::unauthenticated("token_expired", "expired"),
                401,
                "TOKEN_EXPIRED",
            ),
            (
                ApiError::unauthenticated("token_invalid", "bad"),
                403,
                "INVALID_TOKEN",
            ),
            (ApiError::missing_field("email"), 400, "INVALID_PAYLOAD"),
            (
                ApiError::conflict("email_taken", "taken"),
                400,
                "RECORD_NOT_UNIQUE",
            ),
            (ApiError::unavailable("down"), 503, "SERVICE_UNAVAILABLE"),
            (ApiError::internal(), 500, "INTERNAL_SERVER_ERROR"),
        ];
        for (err, status, code) in cases {
            let mapped = DirectusError::from(err);
            assert_eq!(mapped.status.as_u16(), status, "{code}");
            assert_eq!(mapped.code, code);
        }
    }

    #[test]
    fn credential_failures_look_alike_whatever_svc_auth_said() {
        let a = DirectusError::from(ApiError::unauthenticated(
            "invalid_credentials",
            "no such email",
        ));
        let b = DirectusError::from(ApiError::unauthenticated(
            "invalid_credentials",
            "wrong password",
        ));
        assert_eq!(a.message, b.message);
    }
}
