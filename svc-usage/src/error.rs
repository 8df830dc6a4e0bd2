use common::{ApiError, Kind};

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("this idempotency key was used with other parameters")]
    KeyReused,
    #[error(
        "{0} is a standing count, taken and released with what holds it (for platforms: creating a creator profile), not consumed"
    )]
    Gauge(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Db(#[from] common::db::DbError),
}

common::service_error!(UsageError);

impl From<UsageError> for ApiError {
    fn from(err: UsageError) -> Self {
        let message = err.to_string();
        match err {
            UsageError::KeyReused => {
                ApiError::conflict("idempotency_key_reused", message).with_field("idempotency_key")
            }
            UsageError::Gauge(_) => {
                ApiError::new(Kind::InvalidArgument, "operation_is_a_gauge", message)
                    .with_field("operation")
            }
            UsageError::NotFound(what) => ApiError::not_found(what),
            UsageError::Forbidden(why) => ApiError::new(Kind::PermissionDenied, "forbidden", why),
            UsageError::Api(err) => err,
            UsageError::Db(err) => err.into(),
        }
    }
}
