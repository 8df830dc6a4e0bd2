use common::{ApiError, Kind};

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("{0} is required")]
    Missing(String),
    #[error("{message}")]
    Invalid { field: String, message: String },
    #[error("this idempotency key was used with other parameters")]
    KeyReused,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Db(#[from] common::db::DbError),
}

impl UsageError {
    pub fn missing(field: &str) -> Self {
        Self::Missing(field.to_owned())
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

impl From<tokio_postgres::Error> for UsageError {
    fn from(err: tokio_postgres::Error) -> Self {
        Self::Db(err.into())
    }
}

impl From<deadpool_postgres::PoolError> for UsageError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        Self::Db(err.into())
    }
}

impl From<UsageError> for ApiError {
    fn from(err: UsageError) -> Self {
        let message = err.to_string();
        match err {
            UsageError::Missing(field) => ApiError::missing_field(&field),
            UsageError::Invalid { field, message } => ApiError::invalid_field(&field, message),
            UsageError::KeyReused => {
                ApiError::conflict("idempotency_key_reused", message).with_field("idempotency_key")
            }
            UsageError::NotFound(what) => ApiError::not_found(what),
            UsageError::Forbidden(why) => ApiError::new(Kind::PermissionDenied, "forbidden", why),
            UsageError::Api(err) => err,
            UsageError::Db(err) => err.into(),
        }
    }
}

impl From<UsageError> for tonic::Status {
    fn from(err: UsageError) -> Self {
        ApiError::from(err).into()
    }
}
