//! What wraps every request: its id, its tracing span (child of the caller's `traceparent`), and
//! the headers every response carries.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{CACHE_CONTROL, HeaderName, HeaderValue, X_CONTENT_TYPE_OPTIONS};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpRequest};
use tracing::Instrument;

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");
const MAX_REQUEST_ID_LEN: usize = 64;

/// The id of the current request, in the request's extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The current request's id; a fresh one when the middleware did not run (unit tests).
pub fn request_id(req: &HttpRequest) -> String {
    req.extensions()
        .get::<RequestId>()
        .map(|id| id.0.clone())
        .unwrap_or_else(new_request_id)
}

fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A caller's id is kept when it is short and plain, so that it can go into logs and metadata
/// as it is; anything else is replaced rather than escaped.
pub fn accept_request_id(incoming: Option<&str>) -> String {
    match incoming {
        Some(id)
            if !id.is_empty()
                && id.len() <= MAX_REQUEST_ID_LEN
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            id.to_owned()
        }
        _ => new_request_id(),
    }
}

/// Gives the request its id and its span, runs the rest inside the span, and stamps the response.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
    };
    let id = accept_request_id(header(REQUEST_ID_HEADER.as_str()));
    // The path only: the query may hold an access token.
    let span = tracing::info_span!(
        "http",
        method = %req.method(),
        path = %req.path(),
        request_id = %id,
        status = tracing::field::Empty,
    );
    common::telemetry::adopt_remote_parent(&span, header("traceparent"), header("tracestate"));
    req.extensions_mut().insert(RequestId(id.clone()));
    let started = Instant::now();

    // Handlers' errors are responses by now; an `Err` could only come from a middleware, and
    // actix answers it itself.
    let mut response = next.call(req).instrument(span.clone()).await?;

    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&id) {
        headers.insert(REQUEST_ID_HEADER, value);
    }
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Answers carry tokens, invite codes, revealed secrets and personal data: no browser or
    // proxy keeps them, unless the route chose its own caching (the docs' files, avatars).
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }

    let status = response.status().as_u16();
    span.record("status", status);
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(status, elapsed_ms, "request failed");
        } else {
            tracing::debug!(status, elapsed_ms, "request");
        }
    });
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_short_ids_are_kept_and_others_replaced() {
        assert_eq!(accept_request_id(Some("abc-123_X")), "abc-123_X");
        let long = "a".repeat(64);
        assert_eq!(accept_request_id(Some(&long)), long);
        for hostile in [
            "a".repeat(65),
            "<script>".into(),
            "a b".into(),
            "é".into(),
            String::new(),
        ] {
            let replaced = accept_request_id(Some(&hostile));
            assert_ne!(replaced, hostile);
            assert!(uuid::Uuid::parse_str(&replaced).is_ok());
        }
        assert!(uuid::Uuid::parse_str(&accept_request_id(None)).is_ok());
    }
}
