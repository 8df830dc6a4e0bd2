//! Directus access tokens: where a request carries one, and whether it is genuine (docs/DESIGN.md §3).
//!
//! Pure functions with no I/O, so that every attack has a unit test; the extractors that turn a
//! verified token into an [`common::Identity`] live in [`crate::session`].

use std::time::Duration;

use common::secret::Secret;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde::Deserialize;
use uuid::Uuid;

/// The cookie Directus' session mode keeps the access token in.
pub const SESSION_COOKIE: &str = "directus_session_token";
/// Directus' `iss`.
pub const ISSUER: &str = "directus";
/// Far above any real token (Directus' are about 250 bytes); a bigger one is not worth decoding.
const MAX_TOKEN_LEN: usize = 4096;

/// Why a request did not carry a usable token. Each maps to one reason code on `/api/*` and to
/// one Directus error code on the Directus-compatible routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    Missing,
    /// A token both in the `Authorization` header and in `?access_token=`.
    Ambiguous,
    /// Genuine, but `exp` is further in the past than the leeway.
    Expired,
    /// Anything else: bad signature, another algorithm, wrong issuer, missing claims, garbage.
    Invalid,
}

/// What a genuine token says. Only `id` and `impersonated_by` are used to authorise: role, tier
/// and status come fresh from svc-auth, so a demoted user's old token carries no power.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub user_id: Uuid,
    /// The role's uuid; `None` for a user without a role (Directus writes `null`).
    pub role: Option<Uuid>,
    pub app_access: bool,
    pub admin_access: bool,
    pub impersonated_by: Option<Uuid>,
}

/// The claims as they sit in the token. `role` is a `Value` without a default so that a token
/// lacking the key fails, while an explicit `null` passes.
#[derive(Deserialize)]
struct RawClaims {
    id: Uuid,
    role: serde_json::Value,
    app_access: bool,
    admin_access: bool,
    #[serde(default)]
    impersonated_by: Option<Uuid>,
}

/// Picks the token from where Directus accepts one: the `Authorization: Bearer` header, the
/// `access_token` query parameter, or the session cookie. Header and query together are refused
/// (as Directus does); the cookie counts only when neither is there.
pub fn extract_token(
    authorization: Option<&str>,
    query_string: &str,
    session_cookie: Option<&str>,
) -> Result<String, TokenError> {
    let from_header = authorization.and_then(bearer);
    let mut from_query = query_tokens(query_string);
    if from_query.len() > 1 {
        return Err(TokenError::Ambiguous);
    }
    let from_query = from_query.pop();
    let token = match (from_header, from_query) {
        (Some(_), Some(_)) => return Err(TokenError::Ambiguous),
        (Some(token), None) => token.to_owned(),
        (None, Some(token)) => token,
        (None, None) => session_cookie.unwrap_or_default().to_owned(),
    };
    if token.trim().is_empty() {
        Err(TokenError::Missing)
    } else {
        Ok(token)
    }
}

/// The token of an `Authorization: Bearer …` header; other schemes are not ours to judge.
fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

fn query_tokens(query_string: &str) -> Vec<String> {
    if query_string.is_empty() {
        return Vec::new();
    }
    // A query that does not parse carries no token we could use; the route decides the rest.
    actix_web::web::Query::<Vec<(String, String)>>::from_query(query_string)
        .map(|pairs| {
            pairs
                .into_inner()
                .into_iter()
                .filter(|(key, value)| key == "access_token" && !value.is_empty())
                .map(|(_, value)| value)
                .collect()
        })
        .unwrap_or_default()
}

/// Verifies Directus access tokens: HS256 only, `iss == "directus"`, `exp` with leeway.
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl TokenVerifier {
    /// `secret` is Directus' `SECRET`; its UTF-8 bytes are the key as they are (Directus does not
    /// base64-decode it).
    pub fn new(secret: &Secret, leeway: Duration) -> Self {
        // `Validation::new` lists exactly one algorithm, so a token naming any other (HS384,
        // HS512, RS256 with the secret as a "public key", `none`) is refused before any check.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = false;
        // Directus sets no `aud`; checking it would refuse every genuine token.
        validation.validate_aud = false;
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        Self {
            key: DecodingKey::from_secret(secret.expose().as_bytes()),
            validation,
        }
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Invalid);
        }
        let raw = jsonwebtoken::decode::<RawClaims>(token, &self.key, &self.validation)
            .map_err(|err| match err.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?
            .claims;
        let role = match raw.role {
            serde_json::Value::Null => None,
            serde_json::Value::String(role) => {
                Some(Uuid::parse_str(&role).map_err(|_| TokenError::Invalid)?)
            }
            _ => return Err(TokenError::Invalid),
        };
        Ok(Claims {
            user_id: raw.id,
            role,
            app_access: raw.app_access,
            admin_access: raw.admin_access,
            impersonated_by: raw.impersonated_by,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::{Value, json};

    const SECRET: &str = "a directus secret of at least thirty-two bytes";

    fn verifier() -> TokenVerifier {
        TokenVerifier::new(&Secret::new(SECRET), Duration::from_secs(30))
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    /// Exactly what Directus 11 puts in an access token.
    fn directus_claims() -> Value {
        json!({
            "id": "8f2f7a4e-3f1c-4a53-9e55-1a2b3c4d5e6f",
            "role": "0a6bd33b-6e0c-4f42-a7b9-0e3a34c2f7a1",
            "app_access": true,
            "admin_access": false,
            "iat": now(),
            "exp": now() + 900,
            "iss": "directus",
        })
    }

    fn sign_with(claims: &Value, algorithm: Algorithm, key: &str) -> String {
        jsonwebtoken::encode(
            &Header::new(algorithm),
            claims,
            &EncodingKey::from_secret(key.as_bytes()),
        )
        .unwrap()
    }

    fn sign(claims: &Value) -> String {
        sign_with(claims, Algorithm::HS256, SECRET)
    }

    fn with(key: &str, value: Value) -> Value {
        let mut claims = directus_claims();
        claims[key] = value;
        claims
    }

    fn without(key: &str) -> Value {
        let mut claims = directus_claims();
        claims.as_object_mut().unwrap().remove(key);
        claims
    }

    #[test]
    fn a_token_with_exactly_directus_claims_is_accepted() {
        let claims = verifier().verify(&sign(&directus_claims())).unwrap();
        assert_eq!(
            claims.user_id.to_string(),
            "8f2f7a4e-3f1c-4a53-9e55-1a2b3c4d5e6f"
        );
        assert!(claims.role.is_some());
        assert!(claims.app_access);
        assert!(!claims.admin_access);
        assert_eq!(claims.impersonated_by, None);
    }

    #[test]
    fn a_null_role_is_a_user_without_a_role() {
        let claims = verifier()
            .verify(&sign(&with("role", Value::Null)))
            .unwrap();
        assert_eq!(claims.role, None);
    }

    #[test]
    fn impersonation_is_carried() {
        let admin = Uuid::new_v4();
        let claims = verifier()
            .verify(&sign(&with("impersonated_by", json!(admin))))
            .unwrap();
        assert_eq!(claims.impersonated_by, Some(admin));
        let bad = sign(&with("impersonated_by", json!("not a uuid")));
        assert_eq!(verifier().verify(&bad), Err(TokenError::Invalid));
    }

    #[test]
    fn other_algorithms_are_refused_even_with_the_right_key() {
        for algorithm in [Algorithm::HS384, Algorithm::HS512] {
            let token = sign_with(&directus_claims(), algorithm, SECRET);
            assert_eq!(
                verifier().verify(&token),
                Err(TokenError::Invalid),
                "{algorithm:?}"
            );
        }
    }

    #[test]
    fn alg_none_is_refused() {
        let payload = URL_SAFE_NO_PAD.encode(directus_claims().to_string());
        for header in [
            r#"{"alg":"none","typ":"JWT"}"#,
            r#"{"alg":"None","typ":"JWT"}"#,
            r#"{"typ":"JWT"}"#,
        ] {
            let header = URL_SAFE_NO_PAD.encode(header);
            for token in [
                format!("{header}.{payload}."),
                format!("{header}.{payload}"),
            ] {
                assert_eq!(
                    verifier().verify(&token),
                    Err(TokenError::Invalid),
                    "{token}"
                );
            }
        }
    }

    #[test]
    fn expiry_beyond_the_leeway_is_expired_and_within_it_accepted() {
        let expired = sign(&with("exp", json!(now() - 120)));
        assert_eq!(verifier().verify(&expired), Err(TokenError::Expired));
        let within = sign(&with("exp", json!(now() - 10)));
        assert!(verifier().verify(&within).is_ok());
        let strict = TokenVerifier::new(&Secret::new(SECRET), Duration::ZERO);
        assert_eq!(strict.verify(&within), Err(TokenError::Expired));
    }

    #[test]
    fn the_issuer_must_be_directus() {
        for iss in [json!("evil"), json!(""), json!(42), json!("Directus")] {
            let token = sign(&with("iss", iss.clone()));
            assert_eq!(verifier().verify(&token), Err(TokenError::Invalid), "{iss}");
        }
    }

    #[test]
    fn every_required_claim_must_be_present() {
        for key in ["id", "role", "app_access", "admin_access", "exp", "iss"] {
            let token = sign(&without(key));
            assert_eq!(verifier().verify(&token), Err(TokenError::Invalid), "{key}");
        }
    }

    #[test]
    fn claims_of_the_wrong_type_are_refused() {
        let cases = [
            ("id", json!("not-a-uuid")),
            ("id", json!(7)),
            ("role", json!(7)),
            ("role", json!("administrator")),
            ("app_access", json!("true")),
            ("admin_access", Value::Null),
            ("exp", json!("tomorrow")),
        ];
        for (key, value) in cases {
            let token = sign(&with(key, value.clone()));
            assert_eq!(
                verifier().verify(&token),
                Err(TokenError::Invalid),
                "{key}={value}"
            );
        }
    }

    #[test]
    fn a_tampered_payload_is_refused() {
        let genuine = sign(&directus_claims());
        let mut parts: Vec<&str> = genuine.split('.').collect();
        let elevated = URL_SAFE_NO_PAD.encode(with("admin_access", json!(true)).to_string());
        parts[1] = &elevated;
        assert_eq!(
            verifier().verify(&parts.join(".")),
            Err(TokenError::Invalid)
        );
        let mut signature = genuine.clone();
        let last = signature.pop().unwrap();
        signature.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(verifier().verify(&signature), Err(TokenError::Invalid));
    }

    #[test]
    fn a_token_signed_with_another_key_is_refused() {
        let token = sign_with(
            &directus_claims(),
            Algorithm::HS256,
            "another secret that is also long enough",
        );
        assert_eq!(verifier().verify(&token), Err(TokenError::Invalid));
    }

    #[test]
    fn garbage_is_refused() {
        let huge = "a".repeat(MAX_TOKEN_LEN + 1);
        for token in ["", "not.a.token", "a.b", "....", huge.as_str()] {
            assert_eq!(verifier().verify(token), Err(TokenError::Invalid));
        }
    }

    #[test]
    fn the_token_comes_from_header_query_or_cookie() {
        assert_eq!(
            extract_token(Some("Bearer abc"), "", None),
            Ok("abc".into())
        );
        assert_eq!(
            extract_token(Some("bearer  abc "), "", None),
            Ok("abc".into())
        );
        assert_eq!(
            extract_token(None, "x=1&access_token=abc", None),
            Ok("abc".into())
        );
        assert_eq!(extract_token(None, "", Some("abc")), Ok("abc".into()));
        assert_eq!(
            extract_token(Some("Bearer header"), "", Some("cookie")),
            Ok("header".into()),
            "the cookie is only a fallback"
        );
    }

    #[test]
    fn header_and_query_together_are_ambiguous() {
        assert_eq!(
            extract_token(Some("Bearer abc"), "access_token=abc", None),
            Err(TokenError::Ambiguous)
        );
        assert_eq!(
            extract_token(None, "access_token=a&access_token=b", None),
            Err(TokenError::Ambiguous)
        );
    }

    #[test]
    fn no_usable_token_is_missing() {
        assert_eq!(extract_token(None, "", None), Err(TokenError::Missing));
        assert_eq!(
            extract_token(Some("Basic dXNlcjpwYXNz"), "", None),
            Err(TokenError::Missing)
        );
        assert_eq!(
            extract_token(Some("Bearer "), "", None),
            Err(TokenError::Missing)
        );
        assert_eq!(
            extract_token(None, "access_token=", None),
            Err(TokenError::Missing)
        );
        assert_eq!(extract_token(None, "", Some("")), Err(TokenError::Missing));
    }
}
