use common::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("job not found")]
    NotFound,
    #[error("this idempotency key was used for another job request")]
    KeyReused,
    #[error("{0}")]
    UnsupportedOperation(String),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Db(#[from] common::db::DbError),
}

common::service_error!(QueueError);

impl From<QueueError> for ApiError {
    fn from(err: QueueError) -> Self {
        let message = err.to_string();
        match err {
            QueueError::NotFound => ApiError::not_found("job"),
            QueueError::KeyReused => {
                ApiError::conflict("idempotency_key_reused", message).with_field("idempotency_key")
            }
            QueueError::UnsupportedOperation(_) => ApiError::new(
                common::Kind::InvalidArgument,
                "unsupported_operation",
                message,
            )
            .with_field("operation"),
            QueueError::Api(err) => err,
            QueueError::Db(err) => err.into(),
        }
    }
}
