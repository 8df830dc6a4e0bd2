//! `genie.queue.v1.Queue` over gRPC: translates messages to and from [`QueueService`] calls.

use std::sync::Arc;

use common::grpc::identity;
use proto::queue::v1 as pb;
use tonic::{Request, Response, Status};

use crate::service::{MediaRequest, QueueService};
use crate::store::{FileRow, JobRow};

fn rfc3339(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

impl From<JobRow> for pb::Job {
    fn from(job: JobRow) -> Self {
        Self {
            id: job.id.to_string(),
            operation: job.job_type,
            queue: job.queue_name,
            status: job.status,
            priority: i32::from(job.priority),
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            progress: i32::from(job.progress),
            creator_profile_id: job
                .creator_profile_id
                .map(|id| id.to_string())
                .unwrap_or_default(),
            payload_json: job.payload.to_string(),
            result_json: job
                .result
                .map(|result| result.to_string())
                .unwrap_or_default(),
            error: job.error.unwrap_or_default(),
            created_at: rfc3339(job.created_at),
            updated_at: rfc3339(job.updated_at),
            started_at: job.started_at.map(rfc3339).unwrap_or_default(),
            completed_at: job.completed_at.map(rfc3339).unwrap_or_default(),
        }
    }
}

impl From<FileRow> for pb::File {
    fn from(file: FileRow) -> Self {
        Self {
            id: file.id.to_string(),
            content_type: file.content_type,
            bytes: file.bytes,
            filename: file.filename.unwrap_or_default(),
            width: file.width.unwrap_or_default(),
            height: file.height.unwrap_or_default(),
            job_id: file.job_id.map(|id| id.to_string()).unwrap_or_default(),
            created_at: rfc3339(file.created_at),
            sha256: hex::encode(&file.sha256),
        }
    }
}

/// A file goes out in chunks of this size, so that no message nears gRPC's limits.
const FILE_CHUNK: usize = 256 * 1024;

#[derive(Clone)]
pub struct QueueGrpc {
    service: Arc<QueueService>,
}

impl QueueGrpc {
    pub fn new(service: Arc<QueueService>) -> Self {
        Self { service }
    }
}

#[tonic::async_trait]
impl pb::queue_server::Queue for QueueGrpc {
    async fn enqueue_media(
        &self,
        request: Request<pb::EnqueueMediaRequest>,
    ) -> Result<Response<pb::Enqueued>, Status> {
        let caller = identity(&request)?;
        let body = request.into_inner();
        let media = MediaRequest {
            operation: body.operation,
            input_file_id: body.input_file_id,
            input_url: body.input_url,
            params_json: body.params_json,
            creator_profile_id: body.creator_profile_id,
            priority: body.priority,
            idempotency_key: body.idempotency_key,
        };
        let (job, replayed) = self.service.enqueue(&caller, &media).await?;
        Ok(Response::new(pb::Enqueued {
            job: Some(job.into()),
            replayed,
        }))
    }

    async fn get_job(
        &self,
        request: Request<pb::GetJobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        let caller = identity(&request)?;
        let job = self.service.job(&caller, &request.get_ref().job_id).await?;
        Ok(Response::new(job.into()))
    }

    async fn list_jobs(
        &self,
        request: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::JobPage>, Status> {
        let caller = identity(&request)?;
        let body = request.into_inner();
        let (jobs, total) = self
            .service
            .jobs(&caller, &body.status, body.limit, body.offset)
            .await?;
        Ok(Response::new(pb::JobPage {
            jobs: jobs.into_iter().map(Into::into).collect(),
            total,
        }))
    }

    async fn retry_job(
        &self,
        request: Request<pb::RetryJobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        let caller = identity(&request)?;
        let job = self
            .service
            .retry(&caller, &request.get_ref().job_id)
            .await?;
        Ok(Response::new(job.into()))
    }

    async fn cancel_job(
        &self,
        request: Request<pb::CancelJobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        let caller = identity(&request)?;
        let job = self
            .service
            .cancel(&caller, &request.get_ref().job_id)
            .await?;
        Ok(Response::new(job.into()))
    }

    async fn upload_file(
        &self,
        request: Request<pb::UploadFileRequest>,
    ) -> Result<Response<pb::File>, Status> {
        let caller = identity(&request)?;
        let body = request.into_inner();
        let file = self
            .service
            .upload(&caller, &body.filename, body.content)
            .await?;
        Ok(Response::new(file.into()))
    }

    type GetFileStream =
        futures_util::stream::Iter<std::vec::IntoIter<Result<pb::FileChunk, Status>>>;

    async fn get_file(
        &self,
        request: Request<pb::GetFileRequest>,
    ) -> Result<Response<Self::GetFileStream>, Status> {
        let caller = identity(&request)?;
        let (file, bytes) = self
            .service
            .file(&caller, &request.get_ref().file_id)
            .await?;
        let mut chunks = vec![Ok(pb::FileChunk {
            file: Some(file.into()),
            data: Vec::new(),
        })];
        chunks.extend(bytes.chunks(FILE_CHUNK).map(|data| {
            Ok(pb::FileChunk {
                file: None,
                data: data.to_vec(),
            })
        }));
        Ok(Response::new(futures_util::stream::iter(chunks)))
    }
}
