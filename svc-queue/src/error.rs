use common::ApiError;

use crate::storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("job not found")]
    NotFound,
    #[error("post not found")]
    PostNotFound,
    #[error(
        "publishing is not set up here: set QUEUE_PUBLISH_WEBHOOK_URL and QUEUE_PUBLISH_WEBHOOK_SECRET to the connector that posts to the platforms"
    )]
    PublishingUnavailable,
    #[error("no such item in the owner's content library")]
    MediaNotFound,
    #[error("file not found")]
    FileNotFound { field: Option<&'static str> },
    #[error("this idempotency key was used for another request")]
    KeyReused,
    #[error("only a failed job can be retried; this one is {0}")]
    NotRetryable(String),
    #[error("only a queued or active job can be cancelled; this one is {0}")]
    NotCancellable(String),
    #[error("only a post not published yet can be cancelled; this one is {0}")]
    PostFinished(String),
    #[error("cancelled, but giving back its quota failed: send the cancel again")]
    RefundFailed,
    #[error("{0}")]
    UnsupportedOperation(String),
    #[error("{0}")]
    UnsupportedMedia(String),
    #[error("the file is over the {0} byte limit")]
    FileTooLarge(usize),
    #[error(transparent)]
    Storage(#[from] StorageError),
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
            QueueError::PostNotFound => ApiError::not_found("post"),
            QueueError::MediaNotFound => ApiError::not_found("media").with_field("media_id"),
            QueueError::PublishingUnavailable => {
                ApiError::new(common::Kind::Unavailable, "publishing_unavailable", message)
            }
            QueueError::FileNotFound { field } => {
                let err = ApiError::not_found("file");
                match field {
                    Some(field) => err.with_field(field),
                    None => err,
                }
            }
            QueueError::KeyReused => {
                ApiError::conflict("idempotency_key_reused", message).with_field("idempotency_key")
            }
            QueueError::NotRetryable(_) => ApiError::conflict("job_not_failed", message),
            QueueError::NotCancellable(_) => ApiError::conflict("job_finished", message),
            QueueError::PostFinished(_) => ApiError::conflict("post_finished", message),
            QueueError::RefundFailed => ApiError::unavailable(message),
            QueueError::UnsupportedOperation(_) => ApiError::new(
                common::Kind::InvalidArgument,
                "unsupported_operation",
                message,
            )
            .with_field("operation"),
            QueueError::UnsupportedMedia(_) => ApiError::new(
                common::Kind::UnsupportedMediaType,
                "unsupported_media_type",
                message,
            )
            .with_field("file"),
            QueueError::FileTooLarge(_) => {
                ApiError::new(common::Kind::PayloadTooLarge, "payload_too_large", message)
                    .with_field("file")
            }
            QueueError::Storage(StorageError::NotFound) => {
                tracing::error!("a file's row names bytes the storage does not have");
                ApiError::internal()
            }
            QueueError::Storage(StorageError::Io(err)) => {
                tracing::error!(%err, "file storage failed");
                ApiError::unavailable("file storage is unavailable, try again shortly")
            }
            QueueError::Api(err) => err,
            QueueError::Db(err) => err.into(),
        }
    }
}
