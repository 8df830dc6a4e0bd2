//! `genie.queue.v1.Queue` over gRPC: translates messages to and from [`QueueService`] calls.

use std::sync::Arc;

use common::grpc::identity;
use proto::queue::v1 as pb;
use tonic::{Request, Response, Status};

use crate::posts::PostRequest;
use crate::service::{MediaRequest, QueueService};
use crate::store::{FanRow, FileRow, JobRow, PostRow};
use crate::taxonomy::CacheStats;

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

impl From<CacheStats> for pb::TaxonomyCache {
    fn from(stats: CacheStats) -> Self {
        Self {
            hits: stats.hits,
            misses: stats.misses,
            size: stats.size,
        }
    }
}

impl From<FanRow> for pb::Fan {
    fn from(fan: FanRow) -> Self {
        Self {
            id: fan.id.to_string(),
            creator_profile_id: fan.creator_profile_id.to_string(),
            platform_fan_id: fan.platform_fan_id,
            username: fan.username.unwrap_or_default(),
            engagement_score: fan.engagement_score,
            total_spent: fan.total_spent,
            last_interaction: fan.last_interaction.map(rfc3339).unwrap_or_default(),
            notes: fan.notes.unwrap_or_default(),
            created_at: rfc3339(fan.created_at),
            updated_at: rfc3339(fan.updated_at),
        }
    }
}

impl From<PostRow> for pb::Post {
    fn from(post: PostRow) -> Self {
        let id = |id: Option<uuid::Uuid>| id.map(|id| id.to_string()).unwrap_or_default();
        Self {
            id: post.id.to_string(),
            creator_profile_id: post.creator_profile_id.to_string(),
            platform: post.platform,
            file_id: id(post.file_id),
            media_id: id(post.media_id),
            scheduled_for: rfc3339(post.scheduled_for),
            status: post.status,
            caption: post.caption,
            platform_specific_config_json: post.platform_specific_config.to_string(),
            published_at: post.published_at.map(rfc3339).unwrap_or_default(),
            error_message: post.error_message.unwrap_or_default(),
            job_id: id(post.job_id),
            created_at: rfc3339(post.created_at),
            updated_at: rfc3339(post.updated_at),
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

    async fn stats(
        &self,
        request: Request<pb::StatsRequest>,
    ) -> Result<Response<pb::QueueStats>, Status> {
        let caller = identity(&request)?;
        let (queues, cache) = self.service.stats(&caller).await?;
        let queues = queues
            .into_iter()
            .map(|stats| pb::QueueCounts {
                queue: stats.queue.to_owned(),
                waiting: stats.waiting,
                active: stats.active,
                completed: stats.completed,
                failed: stats.failed,
                delayed: stats.delayed,
                cancelled: stats.cancelled,
                broker_seen: stats.broker.is_some(),
                broker_ready: stats.broker.map(|depth| depth.ready).unwrap_or_default(),
                broker_consumers: stats
                    .broker
                    .map(|depth| depth.consumers)
                    .unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(pb::QueueStats {
            queues,
            taxonomy_cache: Some(cache.into()),
        }))
    }

    async fn classify_tags(
        &self,
        request: Request<pb::ClassifyTagsRequest>,
    ) -> Result<Response<pb::Classification>, Status> {
        let caller = identity(&request)?;
        let classified = self
            .service
            .classify(&caller, &request.get_ref().tags)
            .await?;
        Ok(Response::new(pb::Classification {
            concepts: classified
                .concepts
                .into_iter()
                .map(|concept| pb::ConceptScore {
                    concept: concept.concept,
                    score: concept.score,
                    tags: concept.tags,
                })
                .collect(),
            unmatched: classified.unmatched,
        }))
    }

    async fn invalidate_taxonomy(
        &self,
        request: Request<pb::InvalidateTaxonomyRequest>,
    ) -> Result<Response<pb::TaxonomyCache>, Status> {
        let caller = identity(&request)?;
        let stats = self.service.invalidate_taxonomy(&caller).await?;
        Ok(Response::new(stats.into()))
    }

    async fn list_fans(
        &self,
        request: Request<pb::ListFansRequest>,
    ) -> Result<Response<pb::FanPage>, Status> {
        let caller = identity(&request)?;
        let body = request.into_inner();
        let (fans, total) = self
            .service
            .fans(&caller, &body.creator_profile_id, body.limit, body.offset)
            .await?;
        Ok(Response::new(pb::FanPage {
            fans: fans.into_iter().map(Into::into).collect(),
            total,
        }))
    }

    async fn schedule_post(
        &self,
        request: Request<pb::SchedulePostRequest>,
    ) -> Result<Response<pb::Scheduled>, Status> {
        let caller = identity(&request)?;
        let body = request.into_inner();
        let post = PostRequest {
            creator_profile_id: body.creator_profile_id,
            platform: body.platform,
            caption: body.caption,
            scheduled_for: body.scheduled_for,
            file_id: body.file_id,
            media_id: body.media_id,
            platform_specific_config_json: body.platform_specific_config_json,
            idempotency_key: body.idempotency_key,
        };
        let (post, replayed) = self.service.schedule_post(&caller, &post).await?;
        Ok(Response::new(pb::Scheduled {
            post: Some(post.into()),
            replayed,
        }))
    }

    async fn list_posts(
        &self,
        request: Request<pb::ListPostsRequest>,
    ) -> Result<Response<pb::PostPage>, Status> {
        let caller = identity(&request)?;
        let body = request.into_inner();
        let (posts, total) = self
            .service
            .posts(&caller, &body.status, body.limit, body.offset)
            .await?;
        Ok(Response::new(pb::PostPage {
            posts: posts.into_iter().map(Into::into).collect(),
            total,
        }))
    }

    async fn cancel_post(
        &self,
        request: Request<pb::CancelPostRequest>,
    ) -> Result<Response<pb::Post>, Status> {
        let caller = identity(&request)?;
        let post = self
            .service
            .cancel_post(&caller, &request.get_ref().post_id)
            .await?;
        Ok(Response::new(post.into()))
    }
}
