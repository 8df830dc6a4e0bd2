//! Request bodies, read by hand rather than through actix's `Json`, so that every failure answers
//! in our format (or Directus'), names the offending field, and never echoes a value back (it may
//! be a password).
//!
//! Body structs are real types: a required field is not an `Option`, blank text is
//! [`NonBlank`], closed sets are enums. Every failure names the field.

use std::io::Write as _;

use actix_web::dev::Payload;
use actix_web::http::header::{CONTENT_ENCODING, CONTENT_LENGTH};
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use common::{ApiError, Kind};
use futures_util::StreamExt as _;
use futures_util::future::LocalBoxFuture;
use std::fmt;

use serde::de::{self, DeserializeOwned, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::config::DEFAULT_BODY_LIMIT;
use crate::directus::DirectusError;
use crate::state::AppState;

pub fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        Kind::PayloadTooLarge,
        "payload_too_large",
        format!("the body is larger than the limit of {limit} bytes"),
    )
}

fn invalid_body(message: &str) -> ApiError {
    ApiError::new(Kind::InvalidArgument, "invalid_body", message)
}

/// Refuses a body announced bigger than `limit` before reading any of it.
pub fn check_announced_length(req: &HttpRequest, limit: usize) -> Result<(), ApiError> {
    let announced = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    match announced {
        Some(length) if length > limit as u64 => Err(too_large(limit)),
        _ => Ok(()),
    }
}

/// How a request body is compressed. gzip and deflate are decoded as they arrive, into a buffer
/// that refuses to grow past the body limit, so a small compressed body cannot inflate into a
/// large one in memory; any other coding is refused.
enum Coding {
    Identity,
    Gzip,
    Deflate,
}

fn unsupported_coding() -> ApiError {
    ApiError::new(
        Kind::UnsupportedMediaType,
        "unsupported_content_encoding",
        "the body's Content-Encoding is not supported: send it uncompressed, gzip or deflate",
    )
}

fn coding(req: &HttpRequest) -> Result<Coding, ApiError> {
    let Some(value) = req.headers().get(CONTENT_ENCODING) else {
        return Ok(Coding::Identity);
    };
    let value = value.to_str().map_err(|_| unsupported_coding())?;
    match value.trim().to_ascii_lowercase().as_str() {
        "" | "identity" => Ok(Coding::Identity),
        "gzip" | "x-gzip" => Ok(Coding::Gzip),
        "deflate" => Ok(Coding::Deflate),
        _ => Err(unsupported_coding()),
    }
}

/// Refuses a compressed body, for routes that stream their body as it is (multipart).
pub fn require_uncompressed(req: &HttpRequest) -> Result<(), ApiError> {
    match coding(req)? {
        Coding::Identity => Ok(()),
        Coding::Gzip | Coding::Deflate => Err(ApiError::new(
            Kind::UnsupportedMediaType,
            "unsupported_content_encoding",
            "this route takes its body uncompressed",
        )),
    }
}

/// A part of a multipart form.
#[derive(Debug)]
pub struct FormPart {
    pub name: String,
    pub filename: Option<String>,
    /// The part's own `Content-Type`, without parameters.
    pub content_type: Option<String>,
    pub bytes: Vec<u8>,
}

pub fn malformed_form() -> ApiError {
    invalid_body("the multipart form is malformed")
}

/// Reads a multipart form (uncompressed), counting every byte against `limit`; the parts named
/// in `keep` are kept, the others read and dropped.
pub async fn read_form(
    req: &HttpRequest,
    payload: Payload,
    limit: usize,
    keep: &[&str],
) -> Result<Vec<FormPart>, ApiError> {
    check_announced_length(req, limit)?;
    require_uncompressed(req)?;
    let mut form = actix_multipart::Multipart::new(req.headers(), payload);
    let mut parts = Vec::new();
    let mut total = 0usize;
    while let Some(field) = form.next().await {
        let mut field = field.map_err(|_| malformed_form())?;
        let name = field.name().unwrap_or_default().to_owned();
        let kept = keep.contains(&name.as_str());
        let mut bytes = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(|_| malformed_form())?;
            total += chunk.len();
            if total > limit {
                return Err(too_large(limit));
            }
            if kept {
                bytes.extend_from_slice(&chunk);
            }
        }
        if kept {
            parts.push(FormPart {
                filename: field
                    .content_disposition()
                    .and_then(|disposition| disposition.get_filename())
                    .map(str::to_owned),
                content_type: field
                    .content_type()
                    .map(|mime| mime.essence_str().to_owned()),
                name,
                bytes,
            });
        }
    }
    Ok(parts)
}

/// The decoded body, refusing to hold more than `limit` bytes.
struct Bounded {
    body: web::BytesMut,
    limit: usize,
}

impl std::io::Write for Bounded {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if self.body.len() + bytes.len() > self.limit {
            return Err(std::io::Error::other(BodyTooLarge));
        }
        self.body.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the decoded body is over the limit")]
struct BodyTooLarge;

enum Decoder {
    Identity(Bounded),
    Gzip(flate2::write::GzDecoder<Bounded>),
    Deflate(flate2::write::ZlibDecoder<Bounded>),
}

impl Decoder {
    fn write_all(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        match self {
            Decoder::Identity(sink) => sink.write_all(chunk),
            Decoder::Gzip(decoder) => decoder.write_all(chunk),
            Decoder::Deflate(decoder) => decoder.write_all(chunk),
        }
    }

    fn finish(self) -> std::io::Result<Bounded> {
        match self {
            Decoder::Identity(sink) => Ok(sink),
            Decoder::Gzip(decoder) => decoder.finish(),
            Decoder::Deflate(decoder) => decoder.finish(),
        }
    }
}

fn decode_error(err: &std::io::Error, limit: usize) -> ApiError {
    if err
        .get_ref()
        .is_some_and(|inner| inner.is::<BodyTooLarge>())
    {
        too_large(limit)
    } else {
        invalid_body("the compressed body could not be decoded")
    }
}

/// Reads the whole body, decoded, refusing it as soon as it (compressed or decoded) grows past
/// `limit`.
pub async fn read_limited(
    req: &HttpRequest,
    mut payload: Payload,
    limit: usize,
) -> Result<web::BytesMut, ApiError> {
    check_announced_length(req, limit)?;
    let sink = Bounded {
        body: web::BytesMut::new(),
        limit,
    };
    let mut decoder = match coding(req)? {
        Coding::Identity => Decoder::Identity(sink),
        Coding::Gzip => Decoder::Gzip(flate2::write::GzDecoder::new(sink)),
        Coding::Deflate => Decoder::Deflate(flate2::write::ZlibDecoder::new(sink)),
    };
    let mut received = 0usize;
    let mut refused = None;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| invalid_body("the body could not be read"))?;
        received += chunk.len();
        if received > limit {
            return Err(too_large(limit));
        }
        // Once the decoded body is refused, the rest of the (small) compressed body is still
        // read and dropped, so that the client gets the answer rather than a reset connection.
        if refused.is_none() {
            refused = decoder.write_all(&chunk).err();
        }
    }
    if let Some(err) = refused {
        return Err(decode_error(&err, limit));
    }
    let sink = decoder.finish().map_err(|err| decode_error(&err, limit))?;
    Ok(sink.body)
}

fn is_json(req: &HttpRequest) -> bool {
    let mime = req.content_type().to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Reads a JSON object into `T`. An empty body is `{}`: a body whose fields are all optional
/// may be left out.
pub async fn read_json<T: DeserializeOwned>(
    req: &HttpRequest,
    payload: Payload,
    limit: usize,
) -> Result<T, ApiError> {
    let body = read_limited(req, payload, limit).await?;
    if body.is_empty() {
        return parse_object(Map::new());
    }
    // Only JSON bodies: a form post from another site (no CORS preflight) must not pass as one.
    if !is_json(req) {
        return Err(invalid_body(
            "the body must be JSON, sent with Content-Type: application/json",
        ));
    }
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(object)) => parse_object(object),
        Ok(_) => Err(invalid_body("the body must be a JSON object")),
        Err(_) => Err(invalid_body("the body is not valid JSON")),
    }
}

/// Deserialises `object` into `T`, naming the field at fault. Text holding NUL is refused here:
/// PostgreSQL cannot store it in `text` or `jsonb`.
pub fn parse_object<T: DeserializeOwned>(object: Map<String, Value>) -> Result<T, ApiError> {
    if let Some(field) = object.iter().find_map(|(name, value)| {
        (name.contains('\0') || common::sql::holds_nul(value)).then_some(name)
    }) {
        return Err(ApiError::invalid_field(
            field,
            format!("{field} must not contain the NUL character (\\u0000)"),
        ));
    }
    serde_path_to_error::deserialize(Value::Object(object)).map_err(|err| {
        let field = match err.path().iter().next() {
            Some(serde_path_to_error::Segment::Map { key }) => Some(key.clone()),
            _ => None,
        };
        field_error(field, err.inner())
    })
}

/// The message a [`NonBlank`] gives for blank text; answered as `missing_field`.
const BLANK: &str = "blank";

/// serde says `invalid type: <the value>, expected <type>`: only the part after the last
/// "expected" comes from our code, the rest may be the client's secret.
fn field_error(field: Option<String>, err: &serde_json::Error) -> ApiError {
    let message = err.to_string();
    // At the top level (no path), the only failure is a required field that is absent.
    let Some(field) = field else {
        return match missing_field_name(&message) {
            Some(name) => ApiError::missing_field(name),
            None => invalid_body("the body does not have the expected shape"),
        };
    };
    if message == BLANK || message.starts_with("invalid type: null") {
        return ApiError::missing_field(&field);
    }
    match message.rsplit_once(", expected ") {
        Some((_, expected)) => {
            ApiError::invalid_field(&field, format!("{field} must be {expected}"))
        }
        None => ApiError::invalid_field(&field, format!("{field} is not valid")),
    }
}

/// The field of serde's "missing field `name`".
fn missing_field_name(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name)
}

/// Text with at least one character that is not white space, kept as sent. Blank text is
/// `missing_field`, as absence is.
#[derive(Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(value_type = String, min_length = 1, pattern = "\\S")]
pub struct NonBlank(String);

impl NonBlank {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Never prints the text: it may be a password.
impl fmt::Debug for NonBlank {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NonBlank(..)")
    }
}

impl From<NonBlank> for String {
    fn from(text: NonBlank) -> Self {
        text.0
    }
}

impl<'de> Deserialize<'de> for NonBlank {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.trim().is_empty() {
            return Err(de::Error::custom(BLANK));
        }
        Ok(Self(text))
    }
}

/// A whole number in a body: `2` is one; `2.5`, `"2"`, `true` and numbers beyond `i64` are not,
/// and the error says "must be an integer" rather than naming a Rust type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Integer(pub i64);

impl<'de> Deserialize<'de> for Integer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IntegerVisitor;

        impl Visitor<'_> for IntegerVisitor {
            type Value = Integer;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("an integer")
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Integer, E> {
                Ok(Integer(value))
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Integer, E> {
                i64::try_from(value)
                    .map(Integer)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(value), &self))
            }
        }

        deserializer.deserialize_i64(IntegerVisitor)
    }
}

pub fn body_limit(req: &HttpRequest) -> usize {
    req.app_data::<web::Data<AppState>>()
        .map_or(DEFAULT_BODY_LIMIT, |state| state.config.body_limit_bytes)
}

/// A JSON body for `/api/*` handlers; failures answer in our format.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let payload = payload.take();
        Box::pin(async move { read_json(&req, payload, body_limit(&req)).await.map(Json) })
    }
}

/// A JSON body for the Directus-compatible routes; failures answer in Directus' format.
pub struct DirectusJson<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for DirectusJson<T> {
    type Error = DirectusError;
    type Future = LocalBoxFuture<'static, Result<Self, DirectusError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let payload = payload.take();
        Box::pin(async move {
            read_json(&req, payload, body_limit(&req))
                .await
                .map(DirectusJson)
                .map_err(DirectusError::from)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn integers_are_whole_numbers_and_say_so() {
        #[derive(Debug, Deserialize)]
        struct Increment {
            amount: Option<Integer>,
        }
        let parse = |body: Value| match body {
            Value::Object(object) => parse_object::<Increment>(object),
            _ => unreachable!("tests pass objects"),
        };
        let cases = [
            (serde_json::json!({"amount": 3}), Some(Integer(3))),
            (serde_json::json!({"amount": -2}), Some(Integer(-2))),
            (serde_json::json!({"amount": null}), None),
            (serde_json::json!({}), None),
        ];
        for (body, amount) in cases {
            assert_eq!(parse(body.clone()).unwrap().amount, amount, "{body}");
        }
        let bad = [
            serde_json::json!({"amount": 1.5}),
            serde_json::json!({"amount": "2"}),
            serde_json::json!({"amount": true}),
            serde_json::json!({"amount": u64::MAX}),
            serde_json::json!({"amount": 1e300}),
            serde_json::json!({"amount": [1]}),
        ];
        for body in bad {
            let err = parse(body.clone()).unwrap_err();
            assert_eq!(err.reason, "invalid_body", "{body}");
            assert_eq!(err.field.as_deref(), Some("amount"));
            assert_eq!(err.message, "amount must be an integer");
        }
    }

    #[derive(Debug, Deserialize)]
    struct Register {
        email: Option<NonBlank>,
        password: Option<String>,
        hours: Option<u32>,
        user_id: Option<uuid::Uuid>,
    }

    #[derive(Debug, Deserialize)]
    struct Required {
        #[allow(dead_code)] // read by serde only
        email: NonBlank,
    }

    fn parse(body: Value) -> Result<Register, ApiError> {
        match body {
            Value::Object(object) => parse_object(object),
            _ => unreachable!("tests pass objects"),
        }
    }

    #[test]
    fn a_field_of_the_wrong_type_is_named_without_its_value() {
        let cases = [
            (serde_json::json!({"email": 42, "password": "x"}), "email"),
            (
                serde_json::json!({"email": "a@b.c", "password": 1234567}),
                "password",
            ),
            (serde_json::json!({"hours": -1}), "hours"),
            (serde_json::json!({"user_id": "hunter2-hunter2"}), "user_id"),
        ];
        for (body, field) in cases {
            let err = parse(body.clone()).unwrap_err();
            assert_eq!(err.kind, Kind::InvalidArgument);
            assert_eq!(err.field.as_deref(), Some(field), "{body}");
            assert!(!err.message.contains("1234567"), "{}", err.message);
            assert!(!err.message.contains("hunter2"), "{}", err.message);
        }
        let body = parse(serde_json::json!({"password": "hunter2"})).unwrap();
        assert_eq!(body.password.as_deref(), Some("hunter2"));
        let message = parse(serde_json::json!({"email": 42})).unwrap_err().message;
        assert_eq!(message, "email must be a string");
    }

    #[test]
    fn absent_null_and_blank_fields_are_missing() {
        for body in [
            serde_json::json!({}),
            serde_json::json!({"email": null}),
            serde_json::json!({"email": " \t"}),
        ] {
            let Value::Object(object) = body else {
                unreachable!("an object")
            };
            let err = parse_object::<Required>(object).unwrap_err();
            assert_eq!(err.reason, "missing_field");
            assert_eq!(err.field.as_deref(), Some("email"));
        }
        let err = parse(serde_json::json!({"email": "  "})).unwrap_err();
        assert_eq!(
            err.reason, "missing_field",
            "blank is absent even when optional"
        );
        let body = parse(serde_json::json!({"password": null})).unwrap();
        assert!(body.password.is_none() && body.hours.is_none() && body.user_id.is_none());
    }

    #[test]
    fn text_with_nul_is_refused_anywhere_in_the_body() {
        for body in [
            serde_json::json!({"email": "a\u{0}b"}),
            serde_json::json!({"email": {"nested": ["x", "\u{0}"]}}),
            serde_json::json!({"email": {"key\u{0}": 1}}),
        ] {
            let err = parse(body.clone()).unwrap_err();
            assert_eq!(err.reason, "invalid_body", "{body}");
            assert_eq!(err.field.as_deref(), Some("email"));
        }
    }

    #[actix_web::test]
    async fn bodies_are_checked_for_size_type_and_syntax() {
        let (req, payload) = TestRequest::post()
            .insert_header(("content-type", "application/json"))
            .set_payload(r#"{"email":"a@b.c"}"#)
            .to_http_parts();
        let body: Register = read_json(&req, payload, 100).await.unwrap();
        assert_eq!(body.email.map(String::from).as_deref(), Some("a@b.c"));

        let (req, payload) = TestRequest::post()
            .insert_header(("content-type", "application/json"))
            .set_payload(vec![b' '; 101])
            .to_http_parts();
        let err = read_json::<Register>(&req, payload, 100).await.unwrap_err();
        assert_eq!(err.kind, Kind::PayloadTooLarge);
        assert_eq!(err.reason, "payload_too_large");

        let (req, payload) = TestRequest::post()
            .insert_header(("content-type", "application/json"))
            .set_payload(r#"{"email":"#)
            .to_http_parts();
        let err = read_json::<Register>(&req, payload, 100).await.unwrap_err();
        assert_eq!(err.reason, "invalid_body");

        let (req, payload) = TestRequest::post()
            .insert_header(("content-type", "text/plain"))
            .set_payload(r#"{"email":"a@b.c"}"#)
            .to_http_parts();
        let err = read_json::<Register>(&req, payload, 100).await.unwrap_err();
        assert_eq!(err.reason, "invalid_body");

        let (req, payload) = TestRequest::post()
            .insert_header(("content-type", "application/json"))
            .set_payload("[1]")
            .to_http_parts();
        assert!(read_json::<Register>(&req, payload, 100).await.is_err());

        let (req, payload) = TestRequest::post().to_http_parts();
        let empty: Register = read_json(&req, payload, 100).await.unwrap();
        assert!(empty.email.is_none());
    }

    fn compressed(coding: &str, bytes: &[u8]) -> Vec<u8> {
        let level = flate2::Compression::best();
        match coding {
            "gzip" => {
                let mut encoder = flate2::write::GzEncoder::new(Vec::new(), level);
                encoder.write_all(bytes).unwrap();
                encoder.finish().unwrap()
            }
            _ => {
                let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), level);
                encoder.write_all(bytes).unwrap();
                encoder.finish().unwrap()
            }
        }
    }

    fn encoded(coding: &str, body: Vec<u8>) -> (HttpRequest, Payload) {
        TestRequest::post()
            .insert_header(("content-type", "application/json"))
            .insert_header(("content-encoding", coding))
            .set_payload(body)
            .to_http_parts()
    }

    #[actix_web::test]
    async fn gzip_and_deflate_bodies_are_decoded_within_the_limit() {
        for coding in ["gzip", "deflate"] {
            let (req, payload) = encoded(coding, compressed(coding, br#"{"email":"a@b.c"}"#));
            let body: Register = read_json(&req, payload, 100).await.unwrap();
            assert_eq!(body.email.map(String::from).as_deref(), Some("a@b.c"));

            // 64 MiB of spaces compress to about 64 KiB: refused once 1 MiB is decoded, and
            // never held beyond it.
            let bomb = compressed(coding, &vec![b' '; 64 << 20]);
            assert!(bomb.len() < 1 << 20, "{}", bomb.len());
            let (req, payload) = encoded(coding, bomb);
            let err = read_limited(&req, payload, 1 << 20).await.unwrap_err();
            assert_eq!(err.reason, "payload_too_large", "{coding}");

            let (req, payload) = encoded(coding, b"not compressed at all".to_vec());
            let err = read_limited(&req, payload, 1 << 20).await.unwrap_err();
            assert_eq!(err.reason, "invalid_body", "{coding}");
        }
    }

    #[actix_web::test]
    async fn other_codings_are_refused_with_415() {
        for coding in ["br", "zstd", "gzip, gzip", "compress"] {
            let (req, payload) = encoded(coding, b"{}".to_vec());
            let err = read_limited(&req, payload, 100).await.unwrap_err();
            assert_eq!(err.kind, Kind::UnsupportedMediaType, "{coding}");
            assert_eq!(err.reason, "unsupported_content_encoding");
        }
        let (req, _) = encoded("gzip", Vec::new());
        assert_eq!(
            require_uncompressed(&req).unwrap_err().reason,
            "unsupported_content_encoding"
        );
        let (req, _) = encoded("identity", Vec::new());
        assert!(require_uncompressed(&req).is_ok());
    }
}
