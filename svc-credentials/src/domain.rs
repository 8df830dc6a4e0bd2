//! The vault's rules on input, as plain functions. Field names in errors are the HTTP API's
//! (camelCase, as the original Node API had them), so a client is told which of its fields is
//! wrong. No error message ever repeats a secret.

use chrono::{DateTime, Utc};
use common::identity::{Identity, Principal};
use common::{ApiError, Kind};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::error::VaultError;

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_USERNAME_CHARS: usize = 128;
pub const MAX_PLATFORM_CHARS: usize = 32;
pub const MAX_USER_AGENT_CHARS: usize = 1024;
pub const MAX_NOTES_CHARS: usize = 2000;
pub const MAX_SCRAPE_FREQUENCY_CHARS: usize = 100;
pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 500;
pub const KINDS: [&str; 6] = ["login", "download", "api_key", "cookies", "token", "other"];

/// Who is calling: a user reaches only their own rows; the system reaches every creator profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    User {
        id: Uuid,
        impersonated_by: Option<Uuid>,
    },
    System,
}

impl Caller {
    pub fn of(identity: &Identity) -> Result<Self, VaultError> {
        match &identity.principal {
            Principal::User(user) => Ok(Self::User {
                id: user.id,
                impersonated_by: user.impersonated_by,
            }),
            Principal::System => Ok(Self::System),
            Principal::Anonymous => Err(ApiError::unauthenticated(
                "token_missing",
                "this call needs a signed-in user or the RBAC sync secret",
            )
            .into()),
        }
    }

    /// The rows a query may reach: the user's own, or any (`None`) for the system.
    pub fn owner_filter(self) -> Option<Uuid> {
        match self {
            Self::User { id, .. } => Some(id),
            Self::System => None,
        }
    }

    /// The calling user; the system principal has no vault of its own.
    pub fn user(self) -> Result<Uuid, VaultError> {
        match self {
            Self::User { id, .. } => Ok(id),
            Self::System => Err(ApiError::forbidden(
                "the vault belongs to users: sign in as the user whose vault this is",
            )
            .into()),
        }
    }
}

pub fn id(field: &str, text: &str) -> Result<Uuid, VaultError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(VaultError::missing(field));
    }
    Uuid::parse_str(text)
        .map_err(|_| VaultError::invalid(field, format!("{field} is not a valid id")))
}

fn bounded(field: &str, text: &str, max_chars: usize) -> Result<String, VaultError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(VaultError::missing(field));
    }
    if text.chars().count() > max_chars {
        return Err(VaultError::invalid(
            field,
            format!("{field} must be at most {max_chars} characters"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(VaultError::invalid(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(text.to_owned())
}

/// A platform name: lower-case letters, digits, `_` and `-` (onlyfans, fansly, ...).
pub fn platform(text: &str) -> Result<String, VaultError> {
    let platform = bounded("platform", text, MAX_PLATFORM_CHARS)?.to_lowercase();
    if !platform
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err(VaultError::invalid(
            "platform",
            "platform may hold only letters, digits, '_' and '-'",
        ));
    }
    Ok(platform)
}

pub fn username(text: &str) -> Result<String, VaultError> {
    bounded("username", text, MAX_USERNAME_CHARS)
}

pub fn name(text: &str) -> Result<String, VaultError> {
    bounded("name", text, MAX_NAME_CHARS)
}

pub fn user_agent(text: &str) -> Result<String, VaultError> {
    bounded("userAgent", text, MAX_USER_AGENT_CHARS)
}

pub fn notes(text: &str) -> Result<Option<String>, VaultError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    bounded("notes", text, MAX_NOTES_CHARS).map(Some)
}

/// A vault entry's kind; empty is `other`.
pub fn kind(text: &str) -> Result<String, VaultError> {
    let kind = text.trim();
    if kind.is_empty() {
        return Ok("other".to_owned());
    }
    KINDS
        .iter()
        .find(|known| **known == kind)
        .map(|known| (*known).to_owned())
        .ok_or_else(|| {
            VaultError::invalid("kind", format!("kind must be one of {}", KINDS.join(", ")))
        })
}

/// A five-field cron expression (minute hour day month weekday), or none when empty.
pub fn scrape_frequency(text: &str) -> Result<Option<String>, VaultError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let fields: Vec<&str> = text.split_whitespace().collect();
    let well_formed = text.len() <= MAX_SCRAPE_FREQUENCY_CHARS
        && fields.len() == 5
        && fields.iter().all(|field| {
            field
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"*/,-?".contains(&b))
        });
    if !well_formed {
        return Err(VaultError::invalid(
            "scrapeFrequency",
            "scrapeFrequency must be a five-field cron expression, e.g. \"0 */6 * * *\"",
        ));
    }
    Ok(Some(fields.join(" ")))
}

/// Cached profile stats: a JSON object; empty is `{}`.
pub fn profile_data(text: &str, max_bytes: usize) -> Result<serde_json::Value, VaultError> {
    if text.trim().is_empty() {
        return Ok(serde_json::json!({}));
    }
    if text.len() > max_bytes {
        return Err(too_large("profileData", max_bytes));
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value @ serde_json::Value::Object(_)) => Ok(value),
        _ => Err(VaultError::invalid(
            "profileData",
            "profileData must be a JSON object",
        )),
    }
}

/// An RFC 3339 time, or none when empty.
pub fn timestamp(field: &str, text: &str) -> Result<Option<DateTime<Utc>>, VaultError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    DateTime::parse_from_rfc3339(text)
        .map(|at| Some(at.with_timezone(&Utc)))
        .map_err(|_| {
            VaultError::invalid(
                field,
                format!("{field} must be an RFC 3339 time, e.g. 2026-12-01T00:00:00Z"),
            )
        })
}

fn too_large(field: &str, max_bytes: usize) -> VaultError {
    ApiError::new(
        Kind::PayloadTooLarge,
        "payload_too_large",
        format!("{field} must be at most {max_bytes} bytes of JSON"),
    )
    .with_field(field)
    .into()
}

/// What a secret must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Any JSON value but `null`.
    Any,
    /// A JSON array (cookies).
    Array,
}

/// A plaintext secret (JSON text) checked and moved into memory that is wiped when dropped.
/// The checks parse without copying the value; their errors never show it.
pub fn secret(
    field: &str,
    json: Option<String>,
    shape: Shape,
    max_bytes: usize,
) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    let json = Zeroizing::new(json.ok_or_else(|| VaultError::missing(field))?);
    let text = json.trim();
    if text.is_empty() || text == "null" {
        return Err(VaultError::missing(field));
    }
    if text.len() > max_bytes {
        return Err(too_large(field, max_bytes));
    }
    if serde_json::from_str::<serde::de::IgnoredAny>(text).is_err() {
        return Err(VaultError::invalid(field, format!("{field} must be JSON")));
    }
    if shape == Shape::Array && !text.starts_with('[') {
        return Err(VaultError::invalid(
            field,
            format!("{field} must be a JSON array"),
        ));
    }
    Ok(Zeroizing::new(text.as_bytes().to_vec()))
}

/// A page of a list: `limit` 0 is the default; more than the most is refused.
pub fn page(limit: u32, offset: u32) -> Result<(i64, i64), VaultError> {
    let limit = match limit {
        0 => DEFAULT_PAGE,
        limit if limit > MAX_PAGE => {
            return Err(VaultError::invalid(
                "limit",
                format!("limit must be between 1 and {MAX_PAGE}"),
            ));
        }
        limit => limit,
    };
    Ok((i64::from(limit), i64::from(offset)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(err: VaultError) -> (String, String) {
        let api = ApiError::from(err);
        (api.reason.into_owned(), api.field.unwrap_or_default())
    }

    #[test]
    fn secrets_must_be_json_of_the_right_shape_and_size() {
        let ok = secret(
            "credentials",
            Some(" {\"pw\":\"x\"} ".into()),
            Shape::Any,
            100,
        )
        .unwrap();
        assert_eq!(ok.as_slice(), b"{\"pw\":\"x\"}");
        assert!(secret("credentials", Some("\"bare\"".into()), Shape::Any, 100).is_ok());
        assert!(secret("cookies", Some("[{\"a\":1}]".into()), Shape::Array, 100).is_ok());
        let cases = [
            (None, Shape::Any, "missing_field"),
            (Some(""), Shape::Any, "missing_field"),
            (Some("null"), Shape::Any, "missing_field"),
            (Some("{\"pw\": hunter2}"), Shape::Any, "invalid_body"),
            (Some("{\"pw\":\"hunter2\"}"), Shape::Array, "invalid_body"),
            (
                Some("[\"hunter2hunter2hunter2\"]"),
                Shape::Array,
                "payload_too_large",
            ),
        ];
        for (json, shape, reason) in cases {
            let err = secret("cookies", json.map(str::to_owned), shape, 16).unwrap_err();
            let api = ApiError::from(err);
            assert_eq!(api.reason, reason, "{json:?}");
            assert_eq!(api.field.as_deref(), Some("cookies"));
            assert!(!api.message.contains("hunter2"), "{}", api.message);
        }
    }

    #[test]
    fn names_platforms_and_kinds_are_checked() {
        assert_eq!(platform(" OnlyFans ").unwrap(), "onlyfans");
        assert_eq!(
            field_of(platform("only fans").unwrap_err()),
            ("invalid_body".into(), "platform".into())
        );
        assert_eq!(
            field_of(platform("").unwrap_err()),
            ("missing_field".into(), "platform".into())
        );
        assert_eq!(
            field_of(username(&"x".repeat(129)).unwrap_err()),
            ("invalid_body".into(), "username".into())
        );
        assert_eq!(
            field_of(name("tab\there").unwrap_err()),
            ("invalid_body".into(), "name".into())
        );
        assert_eq!(kind("").unwrap(), "other");
        assert_eq!(kind("download").unwrap(), "download");
        assert_eq!(
            field_of(kind("password").unwrap_err()),
            ("invalid_body".into(), "kind".into())
        );
    }

    #[test]
    fn cron_expressions_times_ids_and_pages_are_checked() {
        assert_eq!(
            scrape_frequency(" 0  */6 * * * ").unwrap().as_deref(),
            Some("0 */6 * * *")
        );
        assert_eq!(scrape_frequency("").unwrap(), None);
        for bad in ["every hour", "0 */6 * *", "0 */6 * * * *", "0 $(x) * * *"] {
            assert!(scrape_frequency(bad).is_err(), "{bad}");
        }
        assert!(
            timestamp("expiresAt", "2026-12-01T00:00:00+02:00")
                .unwrap()
                .is_some()
        );
        assert_eq!(
            field_of(timestamp("expiresAt", "tomorrow").unwrap_err()),
            ("invalid_body".into(), "expiresAt".into())
        );
        assert_eq!(
            field_of(id("creatorProfileId", "42").unwrap_err()),
            ("invalid_body".into(), "creatorProfileId".into())
        );
        assert_eq!(
            field_of(id("creatorProfileId", " ").unwrap_err()),
            ("missing_field".into(), "creatorProfileId".into())
        );
        assert_eq!(page(0, 0).unwrap(), (50, 0));
        assert_eq!(page(500, 7).unwrap(), (500, 7));
        assert!(page(501, 0).is_err());
        assert!(profile_data("[1]", 100).is_err());
        assert_eq!(profile_data("", 100).unwrap(), serde_json::json!({}));
    }

    #[test]
    fn the_caller_comes_from_the_identity() {
        let anonymous = Identity::anonymous("r");
        assert_eq!(
            ApiError::from(Caller::of(&anonymous).unwrap_err()).reason,
            "token_missing"
        );
        let system = Caller::of(&Identity::system("r")).unwrap();
        assert_eq!(system.owner_filter(), None);
        assert!(system.user().is_err());
    }
}
