//! Answers for requests no handler takes, in the error format of docs/DESIGN.md §4.

use actix_web::http::header::ALLOW;
use actix_web::{HttpRequest, HttpResponse, web};
use common::error::ErrorBody;
use common::{ApiError, Kind};
use serde::Serialize;
use utoipa::ToSchema;

use crate::openapi::Document;

// Written by `common::ApiError`; this type only describes it in the OpenAPI document.
/// The error body of every `/api` route.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorResponse {
    #[schema(example = false)]
    pub ok: bool,
    #[schema(example = false)]
    pub success: bool,
    /// For people; `tier_limit_reached` when a quota is used up.
    #[schema(example = "email is required")]
    pub error: String,
    /// Stable machine code: `invalid_body`, `missing_field`, `token_missing`, `token_expired`,
    /// `token_invalid`, `user_suspended`, `forbidden`, `limit_reached`, `quota_check_failed`,
    /// `not_found`, `idempotency_key_reused`, `payload_too_large`, `rate_limited`,
    /// `service_unavailable`, `internal`, …
    #[schema(example = "missing_field")]
    pub reason: String,
    /// The request field at fault, when there is one.
    #[schema(example = "email")]
    pub field: Option<String>,
    /// With `tier_limit_reached`: what to do about it.
    pub message: Option<String>,
}

/// A request no route takes: a documented path with another method is 405 with `Allow`,
/// anything else 404.
pub async fn no_route(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let allowed = req
        .app_data::<web::Data<Document>>()
        .and_then(|document| document.allowed_methods(req.path()));
    match allowed {
        Some(allow) => Ok(method_not_allowed(allow)),
        None => Err(ApiError::new(
            Kind::NotFound,
            "not_found",
            "no such endpoint",
        )),
    }
}

fn method_not_allowed(allow: &str) -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header((ALLOW, allow.to_owned()))
        .json(ErrorBody {
            ok: false,
            success: false,
            error: "method not allowed",
            reason: "method_not_allowed",
            field: None,
            message: None,
        })
}
