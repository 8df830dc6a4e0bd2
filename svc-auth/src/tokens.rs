//! Access tokens in Directus' exact form, opaque refresh tokens and invite codes.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hmac};
use serde::Serialize;
use uuid::Uuid;

use crate::error::AuthError;

pub const ISSUER: &str = "directus";

/// The claims a Directus access token carries, plus `impersonated_by` on impersonation tokens.
#[derive(Debug, Serialize)]
pub struct AccessClaims {
    pub id: Uuid,
    pub role: Option<Uuid>,
    pub app_access: bool,
    pub admin_access: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impersonated_by: Option<Uuid>,
    pub iat: i64,
    pub exp: i64,
    pub iss: &'static str,
}

/// The JOSE header exactly as Directus writes it, key order included, so that our tokens cannot
/// be told from Directus' own.
const DIRECTUS_HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

pub struct Signer {
    key: hmac::Key,
}

impl Signer {
    /// Directus signs with the UTF-8 bytes of its `SECRET`, as they are.
    pub fn new(secret: &str) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
        }
    }

    pub fn sign(&self, claims: &AccessClaims) -> Result<String, AuthError> {
        let claims = serde_json::to_vec(claims).map_err(|err| AuthError::Token(err.to_string()))?;
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(DIRECTUS_HEADER),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let signature = hmac::sign(&self.key, signing_input.as_bytes());
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        ))
    }
}

/// Random URL-safe text of `bytes` random bytes (4 characters for every 3 bytes).
fn random_token(bytes: usize) -> Result<String, AuthError> {
    let mut buffer = vec![0u8; bytes];
    SystemRandom::new()
        .fill(&mut buffer)
        .map_err(|_| AuthError::Token("no randomness for a token".into()))?;
    Ok(URL_SAFE_NO_PAD.encode(buffer))
}

/// 64 characters of `[A-Za-z0-9_-]`, like Directus' refresh tokens.
pub fn new_refresh_token() -> Result<String, AuthError> {
    random_token(48)
}

/// 32 characters of `[A-Za-z0-9_-]`.
pub fn new_invite_code() -> Result<String, AuthError> {
    random_token(24)
}

/// Refresh tokens and invite codes are stored only as this digest.
pub fn digest(token: &str) -> Vec<u8> {
    digest::digest(&digest::SHA256, token.as_bytes())
        .as_ref()
        .to_vec()
}

pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};

    #[test]
    fn refresh_tokens_look_like_directus_ones() {
        let token = new_refresh_token().unwrap();
        assert_eq!(token.len(), 64);
        assert!(
            token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        );
        assert_ne!(token, new_refresh_token().unwrap());
        assert_eq!(digest(&token).len(), 32);
    }

    #[test]
    fn access_tokens_carry_exactly_the_directus_claims() {
        let signer = Signer::new("a secret of thirty-two bytes or more!!");
        let claims = AccessClaims {
            id: Uuid::new_v4(),
            role: None,
            app_access: true,
            admin_access: false,
            impersonated_by: None,
            iat: 1_700_000_000,
            exp: 1_700_000_900,
            iss: ISSUER,
        };
        let token = signer.sign(&claims).unwrap();
        let header = URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap();
        assert_eq!(header, br#"{"alg":"HS256","typ":"JWT"}"#);
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        let decoded = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            &token,
            &DecodingKey::from_secret(b"a secret of thirty-two bytes or more!!"),
            &validation,
        )
        .unwrap();
        let mut keys: Vec<_> = decoded.claims.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "admin_access",
                "app_access",
                "exp",
                "iat",
                "id",
                "iss",
                "role"
            ]
        );
        assert!(decoded.claims["role"].is_null());
    }
}
