//! argon2id password hashing with Directus' parameters, off the async runtime's threads.

use std::sync::LazyLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::AuthError;

/// A fresh 16-byte salt from the operating system's random source.
fn salt() -> Result<SaltString, AuthError> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| AuthError::Hash("no randomness for a salt".into()))?;
    SaltString::encode_b64(&bytes).map_err(|err| AuthError::Hash(err.to_string()))
}

fn argon2() -> Result<Argon2<'static>, AuthError> {
    // m = 64 MiB, t = 3, p = 4: what Directus uses.
    let params = Params::new(65_536, 3, 4, None).map_err(|err| AuthError::Hash(err.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

pub async fn hash(password: String) -> Result<String, AuthError> {
    tokio::task::spawn_blocking(move || {
        argon2()?
            .hash_password(password.as_bytes(), &salt()?)
            .map(|hash| hash.to_string())
            .map_err(|err| AuthError::Hash(err.to_string()))
    })
    .await
    .map_err(|err| AuthError::Hash(err.to_string()))?
}

/// A hash of a password nobody has, verified when the email is unknown so that an unknown email
/// costs the same work as a wrong password. Made once; if it cannot be made, logins of unknown
/// emails fail as internal errors.
static DECOY_HASH: LazyLock<Result<String, String>> = LazyLock::new(|| {
    let salt = salt().map_err(|err| err.to_string())?;
    argon2()
        .map_err(|err| err.to_string())?
        .hash_password(b"decoy password for unknown emails", &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| err.to_string())
});

/// Whether `password` matches `stored`; with no stored hash the work is done against a decoy and
/// the answer is always no.
pub async fn verify(password: String, stored: Option<String>) -> Result<bool, AuthError> {
    tokio::task::spawn_blocking(move || {
        let known = stored.is_some();
        let stored = match stored {
            Some(stored) => stored,
            None => DECOY_HASH.clone().map_err(AuthError::Hash)?,
        };
        let parsed = PasswordHash::new(&stored).map_err(|err| AuthError::Hash(err.to_string()))?;
        let matches = argon2()?
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(known && matches)
    })
    .await
    .map_err(|err| AuthError::Hash(err.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_with_argon2id_and_verifies() {
        let stored = hash("correct horse battery".into()).await.unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=65536,t=3,p=4$"),
            "{stored}"
        );
        assert!(
            verify("correct horse battery".into(), Some(stored.clone()))
                .await
                .unwrap()
        );
        assert!(!verify("wrong".into(), Some(stored)).await.unwrap());
        assert!(
            !verify("decoy password for unknown emails".into(), None)
                .await
                .unwrap()
        );
    }
}
