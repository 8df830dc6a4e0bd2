//! Routes owned by svc-usage: the signed-in user's usage report and the consumption of a quota.
//! The gateway checks only the shape of a request; svc-usage is the authority on operations,
//! amounts, limits and idempotency keys. Consumption goes through [`common::quota::QuotaClient`],
//! so it is fail-closed here exactly as in the billable services: svc-usage down or late is a 403
//! `quota_check_failed`, never a grant.

use actix_web::http::header::HeaderMap;
use actix_web::{HttpRequest, get, post, web};
use common::ApiError;
use common::identity::Identity;
use proto::usage::v1 as pb;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use utoipa::ToSchema;

use crate::body::{Integer, NonBlank};
use crate::kit::{Authenticated, Envelope, Errors, Input, JsonBody, QuotaGated, Reply, Routes};
use crate::session::AuthenticatedUser;
use crate::state::AppState;
use crate::{error_set, rpc};

/// The header a client may send its idempotency key in, instead of the body field.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// `amount` when the body has none.
pub const DEFAULT_AMOUNT: i64 = 1;

/// One operation's quota: in the current billing cycle, or, for a standing gauge (`platforms`),
/// what the user holds now. `-1` is unlimited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct OperationUsage {
    #[schema(example = 1)]
    pub used: i64,
    /// `-1`: unlimited.
    #[schema(example = 3)]
    pub limit: i64,
    /// `-1`: unlimited.
    #[schema(example = 2)]
    pub remaining: i64,
}

/// Operations keyed by name, serialised as a JSON object in the order svc-usage reports them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UsageByOperation(Vec<(String, OperationUsage)>);

impl FromIterator<pb::OperationUsage> for UsageByOperation {
    /// Keeps the first entry of an operation named twice, so the object never repeats a key.
    fn from_iter<I: IntoIterator<Item = pb::OperationUsage>>(operations: I) -> Self {
        let mut entries: Vec<(String, OperationUsage)> = Vec::new();
        for operation in operations {
            if entries.iter().any(|(name, _)| *name == operation.operation) {
                continue;
            }
            entries.push((
                operation.operation,
                OperationUsage {
                    used: operation.used,
                    limit: operation.limit,
                    remaining: operation.remaining,
                },
            ));
        }
        Self(entries)
    }
}

impl Serialize for UsageByOperation {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (operation, usage) in &self.0 {
            map.serialize_entry(operation, usage)?;
        }
        map.end()
    }
}

/// `{tier, cycle_start, cycle_end, usage}`
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageReport {
    /// `starter`, `creator`, `pro` or `studio`.
    #[schema(example = "starter")]
    pub tier: String,
    /// RFC 3339, start of the current billing cycle (inclusive).
    #[schema(example = "2026-11-01T00:00:00Z")]
    pub cycle_start: String,
    /// RFC 3339, end of the current billing cycle (exclusive).
    #[schema(example = "2026-12-01T00:00:00Z")]
    pub cycle_end: String,
    /// Every billable operation of the tier, keyed by operation name (`captions`,
    /// `taxonomy_ai`, `ai_media_ops`, `scheduled_posts`, `published_posts`, `platforms`). The
    /// gauges' `used` (`platforms`: the creator profiles held) is the standing count, which no
    /// billing cycle resets.
    #[schema(value_type = std::collections::HashMap<String, OperationUsage>)]
    pub usage: UsageByOperation,
}

impl From<pb::UsageReport> for UsageReport {
    fn from(report: pb::UsageReport) -> Self {
        Self {
            tier: report.tier,
            cycle_start: report.cycle_start,
            cycle_end: report.cycle_end,
            usage: report.operations.into_iter().collect(),
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct IncrementBody {
    /// The billable operation: `captions`, `taxonomy_ai`, `ai_media_ops`, `scheduled_posts` or
    /// `published_posts` (svc-usage's tier file is the authority). A standing gauge
    /// (`platforms`) is not consumed here: 400 `operation_is_a_gauge`; creating a creator profile
    /// takes its unit.
    #[schema(example = "captions")]
    pub operation: NonBlank,
    /// How much to consume, 1 to 1000; default 1.
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 1000, example = 1)]
    pub amount: Option<Integer>,
    /// A retry with the same key and parameters gets the first answer again and counts nothing
    /// twice. May also be sent as the `Idempotency-Key` header (both at once must agree).
    #[schema(example = "3f7c1c9e-caption-42", max_length = 255)]
    pub idempotency_key: Option<String>,
}

/// `{operation, used, limit, remaining, cycle_start, cycle_end, replayed}`
#[derive(Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Consumed {
    #[schema(example = "captions")]
    pub operation: String,
    /// Used in this cycle, this consumption included.
    #[schema(example = 1)]
    pub used: i64,
    /// `-1`: unlimited.
    #[schema(example = 3)]
    pub limit: i64,
    /// `-1`: unlimited.
    #[schema(example = 2)]
    pub remaining: i64,
    /// RFC 3339.
    #[schema(example = "2026-11-01T00:00:00Z")]
    pub cycle_start: String,
    /// RFC 3339.
    #[schema(example = "2026-12-01T00:00:00Z")]
    pub cycle_end: String,
    /// True when this is the stored answer to an earlier request with the same idempotency key
    /// (nothing was counted this time).
    #[schema(example = false)]
    pub replayed: bool,
}

impl From<pb::QuotaAnswer> for Consumed {
    fn from(answer: pb::QuotaAnswer) -> Self {
        Self {
            operation: answer.operation,
            used: answer.used,
            limit: answer.limit,
            remaining: answer.remaining,
            cycle_start: answer.cycle_start,
            cycle_end: answer.cycle_end,
            replayed: answer.replayed,
        }
    }
}

fn key_error(message: &str) -> ApiError {
    ApiError::invalid_field("idempotency_key", message)
}

/// The request's idempotency key, from the body or the `Idempotency-Key` header. Blank counts as
/// absent (as svc-usage has it); keys are compared and sent trimmed, as svc-usage stores them.
/// Values are never echoed in errors.
pub fn idempotency_key(
    headers: &HeaderMap,
    body: Option<String>,
) -> Result<Option<String>, ApiError> {
    let mut from_header: Option<&str> = None;
    for value in headers.get_all(IDEMPOTENCY_KEY_HEADER) {
        let value = value
            .to_str()
            .map_err(|_| key_error("the Idempotency-Key header must be printable ASCII"))?
            .trim();
        match from_header {
            Some(seen) if seen != value => {
                return Err(key_error(
                    "Idempotency-Key is sent more than once with different values",
                ));
            }
            _ => from_header = Some(value),
        }
    }
    let from_header = from_header.filter(|key| !key.is_empty());
    let from_body = body.as_deref().map(str::trim).filter(|key| !key.is_empty());
    match (from_body, from_header) {
        (Some(body), Some(header)) if body != header => Err(key_error(
            "idempotency_key and the Idempotency-Key header differ; send one, or the same in both",
        )),
        (Some(key), _) | (None, Some(key)) => Ok(Some(key.to_owned())),
        (None, None) => Ok(None),
    }
}

/// Reads the idempotency key and consumes through the fail-closed quota client.
async fn consume(
    state: &AppState,
    identity: &Identity,
    headers: &HeaderMap,
    body: IncrementBody,
) -> Reply<Consumed> {
    let amount = body.amount.map_or(DEFAULT_AMOUNT, |Integer(amount)| amount);
    let key = idempotency_key(headers, body.idempotency_key)?;
    let answer = state
        .quota
        .consume(identity, body.operation.as_str(), amount, key.as_deref())
        .await?;
    Ok(Envelope::new(answer.into()))
}

/// The signed-in user's tier, billing cycle and per-operation usage.
#[utoipa::path(
    tag = "usage",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "The usage report; `usage` lists every operation of the tier in svc-usage's order", body = Envelope<UsageReport>),
        Errors<Authenticated>,
    )
)]
#[get("/api/usage")]
pub async fn get_usage(
    AuthenticatedUser(identity): AuthenticatedUser,
    state: web::Data<AppState>,
) -> Reply<UsageReport> {
    let user = identity.require_user()?;
    let request = pb::ReportRequest {
        user_id: user.id.to_string(),
        tier: user.tier.clone(),
    };
    state.usage.forward(&identity, request, rpc!(report)).await
}

/// Consumes `amount` of an operation's quota for the signed-in user, if it fits in the tier's
/// limit for the current billing cycle. Atomic and, with an idempotency key, idempotent.
/// Fail-closed: when svc-usage cannot be asked the answer is 403 `quota_check_failed`.
#[utoipa::path(
    tag = "usage",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "The idempotency key, instead of (or the same as) the body's `idempotency_key`"),
    ),
    request_body = IncrementBody,
    responses(
        (status = 200, description = "Granted (or the stored answer of the same key, `replayed: true`)", body = Envelope<Consumed>),
        Errors<(Authenticated, JsonBody, QuotaGated, UnknownOperation)>,
    )
)]
#[post("/api/usage/increment")]
pub async fn increment(
    Input(AuthenticatedUser(identity), body): Input<AuthenticatedUser, IncrementBody>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Reply<Consumed> {
    consume(&state, &identity, req.headers(), body).await
}

error_set! {
    UnknownOperation {
        400 "invalid_body": "`operation` unknown, `amount` outside 1..=1000, `idempotency_key` over 255 bytes, or body and header keys differ (`field` names it)",
        400 "operation_is_a_gauge": "`operation` is a standing gauge (`platforms`), taken by creating what holds it, not consumed (`field` is `operation`)",
    }
}

pub fn routes(routes: &mut Routes) {
    routes.add(get_usage).add(increment);
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use actix_web::http::header::{HeaderName, HeaderValue};
    use common::Kind;
    use serde_json::json;

    use super::*;
    use crate::test_support::{creator, state_without_upstreams};

    fn headers(keys: &[&[u8]]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for key in keys {
            map.append(
                HeaderName::from_static(IDEMPOTENCY_KEY_HEADER),
                HeaderValue::from_bytes(key).unwrap(),
            );
        }
        map
    }

    fn key(header: &[&[u8]], body: Option<&str>) -> Result<Option<String>, ApiError> {
        idempotency_key(&headers(header), body.map(str::to_owned))
    }

    #[test]
    fn the_idempotency_key_comes_from_the_body_or_the_header() {
        assert_eq!(key(&[], None).unwrap(), None);
        assert_eq!(key(&[], Some("k-1")).unwrap().as_deref(), Some("k-1"));
        assert_eq!(key(&[b"k-2"], None).unwrap().as_deref(), Some("k-2"));
        assert_eq!(key(&[b"k-3"], Some("k-3")).unwrap().as_deref(), Some("k-3"));
        assert_eq!(
            key(&[b"k-4"], Some(" k-4 ")).unwrap().as_deref(),
            Some("k-4")
        );
        assert_eq!(
            key(&[b"k-5", b"k-5"], None).unwrap().as_deref(),
            Some("k-5")
        );
        // Blank is absent, as svc-usage has it.
        assert_eq!(key(&[b""], Some("  ")).unwrap(), None);
        assert_eq!(key(&[b""], Some("k-6")).unwrap().as_deref(), Some("k-6"));
        assert_eq!(key(&[b"k-7"], Some("")).unwrap().as_deref(), Some("k-7"));
    }

    #[test]
    fn conflicting_or_unreadable_keys_are_refused_without_echoing_them() {
        let cases: [(&[&[u8]], Option<&str>); 3] = [
            (&[b"secret-header-key"], Some("secret-body-key")),
            (&[b"secret-one", b"secret-two"], None),
            (&[b"secret-\xff"], None),
        ];
        for (header, body) in cases {
            let err = key(header, body).unwrap_err();
            assert_eq!(err.kind, Kind::InvalidArgument);
            assert_eq!(err.reason, "invalid_body");
            assert_eq!(err.field.as_deref(), Some("idempotency_key"));
            assert!(!err.message.contains("secret"), "{}", err.message);
        }
    }

    fn operation(name: &str, used: i64, limit: i64, remaining: i64) -> pb::OperationUsage {
        pb::OperationUsage {
            operation: name.into(),
            used,
            limit,
            remaining,
        }
    }

    #[test]
    fn the_report_keeps_svc_usage_s_order_and_unlimited_stays_minus_one() {
        let report = pb::UsageReport {
            tier: "starter".into(),
            cycle_start: "2026-11-01T00:00:00Z".into(),
            cycle_end: "2026-12-01T00:00:00Z".into(),
            operations: vec![
                operation("taxonomy_ai", 0, 10, 10),
                operation("captions", 2, 3, 1),
                operation("platforms", 4, -1, -1),
                operation("captions", 99, 99, 99),
            ],
        };
        let body = serde_json::to_string(&Envelope::new(UsageReport::from(report))).unwrap();
        assert_eq!(
            body,
            r#"{"ok":true,"success":true,"tier":"starter","cycle_start":"2026-11-01T00:00:00Z","cycle_end":"2026-12-01T00:00:00Z","usage":{"taxonomy_ai":{"used":0,"limit":10,"remaining":10},"captions":{"used":2,"limit":3,"remaining":1},"platforms":{"used":4,"limit":-1,"remaining":-1}}}"#
        );
        let empty = serde_json::to_value(UsageReport::from(pb::UsageReport::default())).unwrap();
        assert_eq!(empty["usage"], json!({}));
    }

    #[test]
    fn a_granted_answer_becomes_the_increment_response() {
        let answer = pb::QuotaAnswer {
            granted: true,
            operation: "captions".into(),
            used: 3,
            limit: 3,
            remaining: 0,
            cycle_start: "2026-11-01T00:00:00Z".into(),
            cycle_end: "2026-12-01T00:00:00Z".into(),
            replayed: true,
            refunded: false,
        };
        assert_eq!(
            serde_json::to_value(Envelope::new(Consumed::from(answer))).unwrap(),
            json!({
                "ok": true, "success": true, "operation": "captions", "used": 3, "limit": 3,
                "remaining": 0, "cycle_start": "2026-11-01T00:00:00Z",
                "cycle_end": "2026-12-01T00:00:00Z", "replayed": true,
            })
        );
    }

    fn body(value: serde_json::Value) -> Result<IncrementBody, ApiError> {
        match value {
            serde_json::Value::Object(object) => crate::body::parse_object(object),
            _ => unreachable!("tests pass objects"),
        }
    }

    #[tokio::test]
    async fn the_shape_is_checked_before_svc_usage_is_asked() {
        let state = state_without_upstreams();
        for missing in [
            json!({}),
            json!({"operation": "  "}),
            json!({"operation": null}),
            json!({"amount": 2}),
        ] {
            let err = body(missing).err().unwrap();
            assert_eq!(err.reason, "missing_field");
            assert_eq!(err.field.as_deref(), Some("operation"));
        }
        let err = consume(
            &state,
            &creator(),
            &headers(&[b"one"]),
            body(json!({"operation": "captions", "idempotency_key": "two"})).unwrap(),
        )
        .await
        .err()
        .unwrap();
        assert_eq!(err.http_status().as_u16(), 400);
        assert_eq!(err.field.as_deref(), Some("idempotency_key"));
    }

    #[tokio::test]
    async fn svc_usage_down_denies_the_increment_quickly() {
        let state = state_without_upstreams();
        let started = Instant::now();
        let err = consume(
            &state,
            &creator(),
            &headers(&[b"key-1"]),
            body(json!({"operation": "captions", "amount": 1})).unwrap(),
        )
        .await
        .err()
        .unwrap();
        assert_eq!(err.http_status().as_u16(), 403);
        assert_eq!(err.reason, "quota_check_failed");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
}
