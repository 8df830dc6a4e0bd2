use common::{ApiError, Kind};

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
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
    /// A request field that is absent: the shape of error every service gives (`common`).
    pub fn missing(field: &str) -> Self {
        Self::Api(ApiError::missing_field(field))
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Api(ApiError::invalid_field(field, message))
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
