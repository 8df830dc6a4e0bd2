use common::{ApiError, Kind};

use crate::crypto::CryptoError;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("this creator profile already exists for this platform and username")]
    ProfileExists,
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Db(#[from] common::db::DbError),
}

common::service_error!(VaultError);

impl From<CryptoError> for ApiError {
    /// A key that is not configured or retired is the operator's to fix (503, with a reason they
    /// can search for); a record that does not open is our failure (500). Neither says anything
    /// of the secret.
    fn from(err: CryptoError) -> Self {
        let message = err.to_string();
        match err {
            CryptoError::UnknownVersion(_) => {
                tracing::error!(error = %message, "a stored secret needs a key that is not configured");
                ApiError::new(Kind::FailedPrecondition, "key_version_unknown", message)
            }
            CryptoError::Retired(_) => {
                tracing::error!(error = %message, "a stored secret is sealed under a retired key");
                ApiError::new(Kind::FailedPrecondition, "key_retired", message)
            }
            CryptoError::LegacyRefused => {
                tracing::error!(error = %message, "an unbound record of the original service is refused");
                ApiError::new(Kind::FailedPrecondition, "legacy_record_refused", message)
            }
            CryptoError::Malformed | CryptoError::Unauthentic => {
                tracing::error!(error = %message, "a stored secret does not open");
                ApiError::new(Kind::Internal, "decryption_failed", message)
            }
            CryptoError::Random => {
                tracing::error!(error = %message, "cannot seal");
                ApiError::internal()
            }
        }
    }
}

impl From<VaultError> for ApiError {
    fn from(err: VaultError) -> Self {
        let message = err.to_string();
        match err {
            VaultError::NotFound(what) => ApiError::not_found(what),
            VaultError::ProfileExists => {
                ApiError::conflict("profile_exists", message).with_field("username")
            }
            VaultError::Crypto(err) => err.into(),
            VaultError::Api(err) => err,
            VaultError::Db(err) => err.into(),
        }
    }
}
