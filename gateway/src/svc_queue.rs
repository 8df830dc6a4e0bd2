//! Routes owned by svc-queue: media jobs. The gateway checks the shape of a request (types,
//! required fields) and reads the idempotency key; svc-queue is the authority on operations,
//! their parameters, inputs, the quota and who owns a job.

use actix_web::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, ContentType, HeaderValue};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, get, post, web};
use common::ApiError;
use futures_util::StreamExt as _;
use proto::queue::v1 as pb;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::body::{Integer, NonBlank, read_form};
use crate::kit::{
    AdminOnly, Authenticated, Envelope, Errors, Input, JsonBody, PathId, Query, QueryParams,
    QuotaGated, Reply, Routes, non_empty, present,
};
use crate::session::{Admin, AuthenticatedUser};
use crate::state::AppState;
use crate::svc_usage::idempotency_key;
use crate::{error_set, rpc};

/// A media job.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct JobView {
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(example = "resize_image")]
    pub operation: String,
    #[schema(example = "media-jobs")]
    pub queue: String,
    /// `queued`, `active`, `completed`, `failed` or `cancelled`.
    #[schema(example = "queued")]
    pub status: String,
    /// 1 (first) to 20 (last).
    #[schema(example = 10)]
    pub priority: i32,
    pub attempts: i32,
    pub max_attempts: i32,
    /// 0 to 100.
    pub progress: i32,
    #[schema(format = Uuid)]
    pub creator_profile_id: Option<String>,
    /// The input: `{input_file_id}` or `{input_url}`.
    #[schema(value_type = Object)]
    pub input: Value,
    #[schema(value_type = Object)]
    pub params: Value,
    /// A finished job's output: `{output_file_id, output_url, content_type, bytes, …}`.
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    pub error: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// RFC 3339.
    pub started_at: Option<String>,
    /// RFC 3339.
    pub completed_at: Option<String>,
}

impl TryFrom<pb::Job> for JobView {
    type Error = ApiError;

    fn try_from(job: pb::Job) -> Result<Self, ApiError> {
        let json = |text: &str| {
            serde_json::from_str::<Value>(text).map_err(|err| {
                tracing::error!(%err, "svc-queue sent a job whose JSON does not parse");
                ApiError::internal()
            })
        };
        let mut payload = json(&job.payload_json)?;
        let params = payload
            .get_mut("params")
            .map(Value::take)
            .unwrap_or_else(|| Value::Object(serde_json::Map::new()));
        if let Some(payload) = payload.as_object_mut() {
            payload.remove("params");
        }
        let result = match job.result_json.as_str() {
            "" => None,
            text => Some(json(text)?),
        };
        Ok(Self {
            id: job.id,
            operation: job.operation,
            queue: job.queue,
            status: job.status,
            priority: job.priority,
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            progress: job.progress,
            creator_profile_id: non_empty(job.creator_profile_id),
            input: payload,
            params,
            result,
            error: non_empty(job.error),
            created_at: job.created_at,
            updated_at: job.updated_at,
            started_at: non_empty(job.started_at),
            completed_at: non_empty(job.completed_at),
        })
    }
}

fn job(job: Option<pb::Job>) -> Result<JobView, ApiError> {
    present(job, "job")?.try_into()
}

/// `{jobId, job, replayed}`
#[derive(Debug, Serialize, ToSchema)]
pub struct EnqueuedJob {
    /// The job's id, under the original's name.
    #[serde(rename = "jobId")]
    #[schema(format = Uuid)]
    pub job_id: String,
    pub job: JobView,
    /// True when this is the job an earlier request with the same idempotency key stored
    /// (nothing was consumed or stored this time).
    pub replayed: bool,
}

impl TryFrom<pb::Enqueued> for EnqueuedJob {
    type Error = ApiError;

    fn try_from(enqueued: pb::Enqueued) -> Result<Self, ApiError> {
        let job = job(enqueued.job)?;
        Ok(Self {
            job_id: job.id.clone(),
            job,
            replayed: enqueued.replayed,
        })
    }
}

/// `{job}`
#[derive(Debug, Serialize, ToSchema)]
pub struct OneJob {
    pub job: JobView,
}

impl TryFrom<pb::Job> for OneJob {
    type Error = ApiError;

    fn try_from(job: pb::Job) -> Result<Self, ApiError> {
        Ok(Self {
            job: job.try_into()?,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ListMeta {
    /// The caller's items (jobs, fans, posts) passing the filter.
    pub filter_count: i64,
}

/// `{data: [job], meta: {filter_count}}`, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    pub data: Vec<JobView>,
    pub meta: ListMeta,
}

impl TryFrom<pb::JobPage> for JobList {
    type Error = ApiError;

    fn try_from(page: pb::JobPage) -> Result<Self, ApiError> {
        Ok(Self {
            data: page
                .jobs
                .into_iter()
                .map(JobView::try_from)
                .collect::<Result<_, _>>()?,
            meta: ListMeta {
                filter_count: page.total,
            },
        })
    }
}

#[derive(Deserialize, ToSchema)]
pub struct MediaBody {
    /// `convert_image`, `resize_image`, `crop_image`, `apply_watermark`, `strip_metadata`,
    /// `create_teaser`, `resize_video`, `crop_video`, `compress_video`, `trim_video`,
    /// `join_videos`.
    #[schema(example = "resize_image")]
    pub operation: NonBlank,
    /// A file of the caller's stored with `POST /api/files`; or give `input_url`.
    #[serde(alias = "inputFileId")]
    #[schema(format = Uuid)]
    pub input_file_id: Option<String>,
    /// An http or https URL the service fetches; loopback and private addresses are refused.
    #[serde(alias = "inputUrl")]
    #[schema(example = "https://cdn.example.com/photo.png")]
    pub input_url: Option<String>,
    /// The operation's parameters (`resize_image`: `{width?, height?}`; svc-queue's README
    /// lists them all).
    #[schema(value_type = Option<Object>, example = json!({"width": 640}))]
    pub params: Option<Value>,
    #[serde(alias = "creatorProfileId")]
    #[schema(format = Uuid)]
    pub creator_profile_id: NonBlank,
    /// 1 (first) to 20 (last); default 10.
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 20, example = 10)]
    pub priority: Option<Integer>,
    /// A retry with the same key gets the first job back and consumes nothing again. May also
    /// be sent as the `Idempotency-Key` header (both at once must agree).
    #[schema(max_length = 255)]
    pub idempotency_key: Option<String>,
}

/// The query of `GET /api/queue/jobs` and `GET /api/posts`.
#[derive(Debug, Clone, Default, PartialEq, Eq, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatusPageQuery {
    /// Only those with this status.
    pub status: Option<String>,
    /// 1 to 500; default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// Default 0.
    pub offset: Option<i64>,
}

fn whole(field: &str, value: &str) -> Result<i64, ApiError> {
    value
        .parse::<i64>()
        .map_err(|_| ApiError::invalid_field(field, format!("{field} must be a whole number")))
}

/// Other parameters are ignored.
impl QueryParams for StatusPageQuery {
    fn set(&mut self, key: &str, value: &str) -> Result<(), ApiError> {
        match key {
            "status" => self.status = Some(value.to_owned()),
            "limit" => self.limit = Some(whole("limit", value)?),
            "offset" => self.offset = Some(whole("offset", value)?),
            _ => {}
        }
        Ok(())
    }
}

error_set! {
    MediaRules {
        400 "invalid_body": "an unknown operation, a parameter it does not take or of the wrong kind, an input_url that is not public http(s), a priority outside 1..=20 (`field` names it)",
        400 "unsupported_operation": "a video operation where ffmpeg is not installed",
        403 "limit_reached": "the tier's `ai_media_ops` for this billing cycle are used up (`message` tells to upgrade)",
        403 "quota_check_failed": "svc-usage could not be asked; nothing was consumed or stored",
        409 "idempotency_key_reused": "the idempotency key was used for another request",
        409 "idempotency_key_refunded": "the request with this key failed and its quota was given back; send it with a new key",
    }
}

error_set! {
    JobNotFound {
        404 "not_found": "no job with this id, or another user's",
    }
}

error_set! {
    ListRules {
        400 "invalid_body": "`status` not a job status, `limit` outside 1..=500, or a negative `offset` (`field` names it)",
    }
}

/// Queues a media operation: checked, one `ai_media_ops` consumed, stored with its outbox row
/// in one transaction, then published to RabbitMQ with publisher confirms.
#[utoipa::path(tag = "queue",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "The idempotency key, instead of (or the same as) the body's `idempotency_key`"),
    ),
    request_body = MediaBody,
    responses((status = 200, description = "The stored job (or, `replayed: true`, the one the same key stored before)", body = Envelope<EnqueuedJob>),
              Errors<(Authenticated, JsonBody, MediaRules)>))]
#[post("/api/queue/media")]
pub async fn enqueue_media(
    Input(AuthenticatedUser(caller), body): Input<AuthenticatedUser, MediaBody>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Reply<EnqueuedJob> {
    let idempotency_key = idempotency_key(req.headers(), body.idempotency_key)?;
    let priority = match body.priority {
        None => 0,
        Some(Integer(priority)) => i32::try_from(priority)
            .ok()
            .filter(|priority| *priority != 0)
            .ok_or_else(|| ApiError::invalid_field("priority", "must be 1 (first) to 20 (last)"))?,
    };
    let params_json = match body.params {
        None | Some(Value::Null) => String::new(),
        Some(params @ Value::Object(_)) => params.to_string(),
        Some(_) => return Err(ApiError::invalid_field("params", "must be a JSON object")),
    };
    let request = pb::EnqueueMediaRequest {
        operation: body.operation.into(),
        input_file_id: body.input_file_id.unwrap_or_default(),
        input_url: body.input_url.unwrap_or_default(),
        params_json,
        creator_profile_id: body.creator_profile_id.into(),
        priority,
        idempotency_key: idempotency_key.unwrap_or_default(),
    };
    state
        .queue
        .forward(&caller, request, rpc!(enqueue_media))
        .await
}

/// One of the caller's jobs: status, attempts, progress, and the result or the error.
#[utoipa::path(tag = "queue",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "The job's id")),
    responses((status = 200, description = "The job", body = Envelope<OneJob>),
              Errors<(Authenticated, JobNotFound)>))]
#[get("/api/queue/jobs/{id}")]
pub async fn get_job(
    AuthenticatedUser(caller): AuthenticatedUser,
    PathId(job_id): PathId,
    state: web::Data<AppState>,
) -> Reply<OneJob> {
    state
        .queue
        .forward(&caller, pb::GetJobRequest { job_id }, rpc!(get_job))
        .await
}

/// The caller's jobs, newest first, optionally of one status.
#[utoipa::path(tag = "queue",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    params(StatusPageQuery),
    responses((status = 200, description = "A page of jobs and how many pass the filter", body = Envelope<JobList>),
              Errors<(Authenticated, ListRules)>))]
#[get("/api/queue/jobs")]
pub async fn list_jobs(
    AuthenticatedUser(caller): AuthenticatedUser,
    Query(query): Query<StatusPageQuery>,
    state: web::Data<AppState>,
) -> Reply<JobList> {
    let request = pb::ListJobsRequest {
        status: query.status.unwrap_or_default(),
        limit: query.limit.unwrap_or(0),
        offset: query.offset.unwrap_or(0),
    };
    state.queue.forward(&caller, request, rpc!(list_jobs)).await
}

error_set! {
    RetryRules {
        404 "not_found": "no job with this id, or another user's",
        409 "job_not_failed": "the job has not failed (it is queued, active, completed or cancelled)",
    }
}

/// Sends a failed job of the caller's again, with fresh attempts: the same job, and no new
/// `ai_media_ops` (it was consumed when the job was enqueued).
#[utoipa::path(tag = "queue",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "The job's id")),
    responses((status = 200, description = "The job, queued again", body = Envelope<OneJob>),
              Errors<(Authenticated, RetryRules)>))]
#[post("/api/queue/retry/{id}")]
pub async fn retry_job(
    AuthenticatedUser(caller): AuthenticatedUser,
    PathId(job_id): PathId,
    state: web::Data<AppState>,
) -> Reply<OneJob> {
    state
        .queue
        .forward(&caller, pb::RetryJobRequest { job_id }, rpc!(retry_job))
        .await
}

error_set! {
    CancelRules {
        404 "not_found": "no job with this id, or another user's",
        409 "job_finished": "the job has completed or failed already",
        503 "service_unavailable": "the job is cancelled but svc-usage could not give back its quota yet: send the cancel again",
    }
}

/// Cancels a queued or active job of the caller's: a queued one never starts, a running one is
/// stopped on whichever worker holds it (its partial output discarded), and its `ai_media_ops`
/// is given back. Cancelling a cancelled job answers it again.
#[utoipa::path(tag = "queue",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "The job's id")),
    responses((status = 200, description = "The job, cancelled", body = Envelope<OneJob>),
              Errors<(Authenticated, CancelRules)>))]
#[post("/api/queue/jobs/{id}/cancel")]
pub async fn cancel_job(
    AuthenticatedUser(caller): AuthenticatedUser,
    PathId(job_id): PathId,
    state: web::Data<AppState>,
) -> Reply<OneJob> {
    state
        .queue
        .forward(&caller, pb::CancelJobRequest { job_id }, rpc!(cancel_job))
        .await
}

/// A stored file: an upload, or a job's output.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FileView {
    #[schema(format = Uuid)]
    pub id: String,
    /// Read from the file's bytes.
    #[schema(example = "image/png")]
    pub content_type: String,
    pub bytes: i64,
    pub filename: Option<String>,
    pub width: Option<i32>,
    pub height: Option<i32>,
    /// The job that produced it; null for an upload.
    #[schema(format = Uuid)]
    pub job_id: Option<String>,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
    /// Where its bytes are read: `/api/files/{id}`.
    pub url: String,
    /// RFC 3339.
    pub created_at: String,
}

impl From<pb::File> for FileView {
    fn from(file: pb::File) -> Self {
        let positive = |number: i32| (number > 0).then_some(number);
        Self {
            url: format!("/api/files/{}", file.id),
            id: file.id,
            content_type: file.content_type,
            bytes: file.bytes,
            filename: non_empty(file.filename),
            width: positive(file.width),
            height: positive(file.height),
            job_id: non_empty(file.job_id),
            sha256: file.sha256,
            created_at: file.created_at,
        }
    }
}

/// `{file}`
#[derive(Debug, Serialize, ToSchema)]
pub struct StoredFile {
    pub file: FileView,
}

impl From<pb::File> for StoredFile {
    fn from(file: pb::File) -> Self {
        Self { file: file.into() }
    }
}

/// The multipart form of `POST /api/files`.
#[derive(ToSchema)]
#[allow(dead_code)] // only its schema is used
pub struct UploadForm {
    /// The image (PNG, JPEG, WebP, GIF, BMP, TIFF) or video (MP4, QuickTime, WebM); its type is
    /// read from its bytes.
    #[schema(value_type = String, format = Binary, content_media_type = "application/octet-stream")]
    file: Vec<u8>,
}

error_set! {
    UploadRules {
        400 "invalid_body": "not a multipart form, no `file` part or more than one, an empty file, or a malformed form (`field` names it)",
        413 "payload_too_large": "over the gateway's upload limit or svc-queue's largest file",
        415 "unsupported_media_type": "not an image or a video this service keeps",
        415 "unsupported_content_encoding": "a compressed form",
    }
}

error_set! {
    FileNotFound {
        404 "not_found": "no file with this id, or another user's",
    }
}

/// Stores a file of the caller's, to give as a media job's `input_file_id`.
#[utoipa::path(tag = "queue",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    request_body(content((UploadForm = "multipart/form-data"))),
    responses((status = 200, description = "The stored file", body = Envelope<StoredFile>),
              Errors<(Authenticated, UploadRules)>))]
#[post("/api/files")]
pub async fn upload_file(
    AuthenticatedUser(caller): AuthenticatedUser,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Reply<StoredFile> {
    if !req
        .content_type()
        .eq_ignore_ascii_case("multipart/form-data")
    {
        return Err(ApiError::invalid_field(
            "file",
            "send the file as a multipart/form-data part named file",
        ));
    }
    let limit = state.config.upload_limit_bytes;
    let mut parts = read_form(&req, payload.into_inner(), limit, &["file"]).await?;
    let part = match (parts.pop(), parts.is_empty()) {
        (Some(part), true) => part,
        (None, _) => return Err(ApiError::missing_field("file")),
        (Some(_), false) => {
            return Err(ApiError::invalid_field("file", "send one file at a time"));
        }
    };
    let request = pb::UploadFileRequest {
        filename: part.filename.unwrap_or_default(),
        content: part.bytes,
    };
    state
        .queue
        .forward(&caller, request, rpc!(upload_file))
        .await
}

/// The bytes of one of the caller's files, with its content type.
#[utoipa::path(tag = "queue",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "The file's id")),
    responses(
        (status = 200, description = "The file's bytes", content(
            ("image/png"), ("image/jpeg"), ("image/webp"), ("image/gif"), ("image/bmp"),
            ("image/tiff"), ("video/mp4"), ("video/quicktime"), ("video/webm"),
        )),
        Errors<(Authenticated, FileNotFound)>,
    ))]
#[get("/api/files/{id}")]
pub async fn get_file(
    AuthenticatedUser(caller): AuthenticatedUser,
    PathId(file_id): PathId,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let mut chunks = state
        .queue
        .call(&caller, pb::GetFileRequest { file_id }, rpc!(get_file))
        .await?;
    let file = match chunks.message().await {
        Ok(Some(pb::FileChunk {
            file: Some(file), ..
        })) => file,
        Ok(_) => {
            tracing::error!("svc-queue sent a file without its description first");
            return Err(ApiError::internal());
        }
        Err(status) => return Err(status.into()),
    };
    let length = u64::try_from(file.bytes).unwrap_or_default();
    let content_type = file
        .content_type
        .parse()
        .map(ContentType)
        .unwrap_or_else(|_| ContentType::octet_stream());
    let body = chunks.map(|chunk| chunk.map(|chunk| web::Bytes::from(chunk.data)));
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((CACHE_CONTROL, HeaderValue::from_static("private, no-cache")))
        .insert_header((
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; sandbox"),
        ))
        .insert_header(("x-content-type-options", "nosniff"))
        // The length is known: a stream that breaks off shows as a short body, not a whole one.
        .no_chunking(length)
        .streaming(body))
}

/// One job queue's jobs by state, and what the broker holds of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueCountsView {
    /// Queued and due: waiting for a worker.
    pub waiting: i64,
    pub active: i64,
    pub completed: i64,
    pub failed: i64,
    /// Queued for a retry that is not due yet.
    pub delayed: i64,
    pub cancelled: i64,
    /// Messages ready on RabbitMQ and its consumers (workers), as the relay last saw them;
    /// null when it has not reached the broker lately.
    pub broker: Option<BrokerView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BrokerView {
    pub ready: u32,
    pub consumers: u32,
}

/// The taxonomy cache of the svc-queue replica that answered.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaxonomyCacheView {
    pub hits: u64,
    pub misses: u64,
    /// Tags held now.
    pub size: u64,
}

impl From<pb::TaxonomyCache> for TaxonomyCacheView {
    fn from(cache: pb::TaxonomyCache) -> Self {
        Self {
            hits: cache.hits,
            misses: cache.misses,
            size: cache.size,
        }
    }
}

/// `{stats: {"media-jobs": {…}, "scrape-jobs": {…}, "onboarding-jobs": {…}}, taxonomy_cache}`
#[derive(Debug, Serialize, ToSchema)]
pub struct Stats {
    pub stats: std::collections::BTreeMap<String, QueueCountsView>,
    pub taxonomy_cache: TaxonomyCacheView,
}

impl From<pb::QueueStats> for Stats {
    fn from(stats: pb::QueueStats) -> Self {
        let queues = stats
            .queues
            .into_iter()
            .map(|counts| {
                let broker = counts.broker_seen.then_some(BrokerView {
                    ready: counts.broker_ready,
                    consumers: counts.broker_consumers,
                });
                let view = QueueCountsView {
                    waiting: counts.waiting,
                    active: counts.active,
                    completed: counts.completed,
                    failed: counts.failed,
                    delayed: counts.delayed,
                    cancelled: counts.cancelled,
                    broker,
                };
                (counts.queue, view)
            })
            .collect();
        Self {
            stats: queues,
            taxonomy_cache: stats.taxonomy_cache.unwrap_or_default().into(),
        }
    }
}

/// Every job queue's jobs by state (all users', from the database) and depth on RabbitMQ, and
/// the taxonomy cache's hits, misses and size. Counted at most once a second.
#[utoipa::path(tag = "queue",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    responses((status = 200, description = "The queues' figures", body = Envelope<Stats>),
              Errors<(Authenticated,)>))]
#[get("/api/queue/stats")]
pub async fn queue_stats(
    AuthenticatedUser(caller): AuthenticatedUser,
    state: web::Data<AppState>,
) -> Reply<Stats> {
    state
        .queue
        .forward(&caller, pb::StatsRequest {}, rpc!(stats))
        .await
}

/// `{taxonomy_cache}`, after the bust.
#[derive(Debug, Serialize, ToSchema)]
pub struct Invalidated {
    pub taxonomy_cache: TaxonomyCacheView,
}

impl From<pb::TaxonomyCache> for Invalidated {
    fn from(cache: pb::TaxonomyCache) -> Self {
        Self {
            taxonomy_cache: cache.into(),
        }
    }
}

/// Busts the taxonomy cache (administrators), on every svc-queue replica: after the mapping in
/// `queue.taxonomy_mapping` changed.
#[utoipa::path(tag = "queue",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    responses((status = 200, description = "The answering replica's cache, emptied", body = Envelope<Invalidated>),
              Errors<(Authenticated, AdminOnly)>))]
#[post("/api/queue/taxonomy/invalidate")]
pub async fn invalidate_taxonomy(
    Admin(caller): Admin,
    state: web::Data<AppState>,
) -> Reply<Invalidated> {
    state
        .queue
        .forward(
            &caller,
            pb::InvalidateTaxonomyRequest {},
            rpc!(invalidate_taxonomy),
        )
        .await
}

#[derive(Deserialize, ToSchema)]
pub struct ClassifyBody {
    /// 1 to 100 tags; case, `#`, `_` and `-` do not matter.
    #[schema(example = json!(["lingerie", "Behind_The_Scenes", "#fyp"]))]
    pub tags: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConceptView {
    #[schema(example = "Intimacy Level")]
    pub concept: String,
    /// 0 to 1: 1 − Π(1 − weight) over the tags of the concept.
    pub score: f64,
    /// The tags (normalized) that count for it.
    pub tags: Vec<String>,
}

/// `{concepts: [...best first], unmatched: [tag]}`
#[derive(Debug, Serialize, ToSchema)]
pub struct Classified {
    pub concepts: Vec<ConceptView>,
    /// Tags the mapping does not know.
    pub unmatched: Vec<String>,
}

impl From<pb::Classification> for Classified {
    fn from(classified: pb::Classification) -> Self {
        Self {
            concepts: classified
                .concepts
                .into_iter()
                .map(|concept| ConceptView {
                    concept: concept.concept,
                    score: concept.score,
                    tags: concept.tags,
                })
                .collect(),
            unmatched: classified.unmatched,
        }
    }
}

error_set! {
    ClassifyRules {
        400 "invalid_body": "no tags, over 100, or a tag empty, over 100 bytes or holding a control character (`field` is `tags`)",
    }
}

/// Classifies tags along the six concepts (Intimacy Level, Production Quality, Content Type,
/// Audience Appeal, Platform Fit, Engagement Potential), through the taxonomy cache.
#[utoipa::path(tag = "queue",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    request_body = ClassifyBody,
    responses((status = 200, description = "The concepts, best first", body = Envelope<Classified>),
              Errors<(Authenticated, JsonBody, ClassifyRules)>))]
#[post("/api/queue/taxonomy/classify")]
pub async fn classify_tags(
    Input(AuthenticatedUser(caller), body): Input<AuthenticatedUser, ClassifyBody>,
    state: web::Data<AppState>,
) -> Reply<Classified> {
    let request = pb::ClassifyTagsRequest { tags: body.tags };
    state
        .queue
        .forward(&caller, request, rpc!(classify_tags))
        .await
}

/// A fan of one of the caller's creator profiles.
#[derive(Debug, Serialize, ToSchema)]
pub struct FanView {
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(format = Uuid)]
    pub creator_profile_id: String,
    pub platform_fan_id: String,
    pub username: Option<String>,
    pub engagement_score: i32,
    /// A decimal as a string, exact (as Directus sends decimals).
    #[schema(example = "125.50")]
    pub total_spent: String,
    /// RFC 3339.
    pub last_interaction: Option<String>,
    pub notes: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// `{data: [fan], meta: {filter_count}}`, most engaged first.
#[derive(Debug, Serialize, ToSchema)]
pub struct FanList {
    pub data: Vec<FanView>,
    pub meta: ListMeta,
}

impl From<pb::FanPage> for FanList {
    fn from(page: pb::FanPage) -> Self {
        let data = page
            .fans
            .into_iter()
            .map(|fan| FanView {
                id: fan.id,
                creator_profile_id: fan.creator_profile_id,
                platform_fan_id: fan.platform_fan_id,
                username: non_empty(fan.username),
                engagement_score: fan.engagement_score,
                total_spent: fan.total_spent,
                last_interaction: non_empty(fan.last_interaction),
                notes: non_empty(fan.notes),
                created_at: fan.created_at,
                updated_at: fan.updated_at,
            })
            .collect();
        Self {
            data,
            meta: ListMeta {
                filter_count: page.total,
            },
        }
    }
}

/// `GET /api/fans`' query.
#[derive(Debug, Clone, Default, PartialEq, Eq, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FansQuery {
    /// Only the fans of this creator profile of the caller's.
    pub creator_profile_id: Option<String>,
    /// 1 to 500; default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// Default 0.
    pub offset: Option<i64>,
}

/// Other parameters are ignored.
impl QueryParams for FansQuery {
    fn set(&mut self, key: &str, value: &str) -> Result<(), ApiError> {
        match key {
            "creator_profile_id" | "creatorProfileId" => {
                self.creator_profile_id = Some(value.to_owned());
            }
            "limit" => self.limit = Some(whole("limit", value)?),
            "offset" => self.offset = Some(whole("offset", value)?),
            _ => {}
        }
        Ok(())
    }
}

error_set! {
    FanRules {
        400 "invalid_body": "`creator_profile_id` not a UUID, `limit` outside 1..=500, or a negative `offset` (`field` names it)",
    }
}

/// The fan profiles of the caller's creator profiles, most engaged first.
#[utoipa::path(tag = "queue",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    params(FansQuery),
    responses((status = 200, description = "A page of fans and how many pass the filter", body = Envelope<FanList>),
              Errors<(Authenticated, FanRules)>))]
#[get("/api/fans")]
pub async fn list_fans(
    AuthenticatedUser(caller): AuthenticatedUser,
    Query(query): Query<FansQuery>,
    state: web::Data<AppState>,
) -> Reply<FanList> {
    let request = pb::ListFansRequest {
        creator_profile_id: query.creator_profile_id.unwrap_or_default(),
        limit: query.limit.unwrap_or(0),
        offset: query.offset.unwrap_or(0),
    };
    state.queue.forward(&caller, request, rpc!(list_fans)).await
}

/// A scheduled post.
#[derive(Debug, Serialize, ToSchema)]
pub struct PostView {
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(format = Uuid)]
    pub creator_profile_id: String,
    #[schema(example = "onlyfans")]
    pub platform: String,
    #[schema(format = Uuid)]
    pub file_id: Option<String>,
    #[schema(format = Uuid)]
    pub media_id: Option<String>,
    /// RFC 3339.
    pub scheduled_for: String,
    /// `pending`, `publishing`, `published`, `failed` or `cancelled`.
    #[schema(example = "pending")]
    pub status: String,
    pub caption: String,
    #[schema(value_type = Object)]
    pub platform_specific_config: Value,
    /// RFC 3339.
    pub published_at: Option<String>,
    pub error_message: Option<String>,
    /// The `publish_post` job, once the post was due (`GET /api/queue/jobs/{id}`).
    #[schema(format = Uuid)]
    pub job_id: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl TryFrom<pb::Post> for PostView {
    type Error = ApiError;

    fn try_from(post: pb::Post) -> Result<Self, ApiError> {
        let platform_specific_config = serde_json::from_str(&post.platform_specific_config_json)
            .map_err(|err| {
                tracing::error!(%err, "svc-queue sent a post whose JSON does not parse");
                ApiError::internal()
            })?;
        Ok(Self {
            id: post.id,
            creator_profile_id: post.creator_profile_id,
            platform: post.platform,
            file_id: non_empty(post.file_id),
            media_id: non_empty(post.media_id),
            scheduled_for: post.scheduled_for,
            status: post.status,
            caption: post.caption,
            platform_specific_config,
            published_at: non_empty(post.published_at),
            error_message: non_empty(post.error_message),
            job_id: non_empty(post.job_id),
            created_at: post.created_at,
            updated_at: post.updated_at,
        })
    }
}

/// `{post, replayed}`
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduledPost {
    pub post: PostView,
    /// True when this is the post an earlier request with the same idempotency key stored
    /// (nothing was consumed or stored this time).
    pub replayed: bool,
}

impl TryFrom<pb::Scheduled> for ScheduledPost {
    type Error = ApiError;

    fn try_from(scheduled: pb::Scheduled) -> Result<Self, ApiError> {
        Ok(Self {
            post: present(scheduled.post, "post")?.try_into()?,
            replayed: scheduled.replayed,
        })
    }
}

#[derive(Deserialize, ToSchema)]
pub struct ScheduleBody {
    #[serde(alias = "creatorProfileId")]
    #[schema(format = Uuid)]
    pub creator_profile_id: NonBlank,
    /// RFC 3339 with its offset; at most 5 minutes past (taken as now), at most 366 days ahead.
    #[serde(alias = "scheduledFor")]
    #[schema(example = "2026-12-24T18:00:00Z")]
    pub scheduled_for: NonBlank,
    /// Lower case letters, digits and `_`; default `onlyfans`.
    #[schema(example = "onlyfans")]
    pub platform: Option<String>,
    /// At most 10,000 characters.
    pub caption: Option<String>,
    /// A file of the caller's (`POST /api/files`, or a media job's output) to publish with it.
    #[serde(alias = "fileId")]
    #[schema(format = Uuid)]
    pub file_id: Option<String>,
    /// Or an item of the caller's content library.
    #[serde(alias = "mediaId")]
    #[schema(format = Uuid)]
    pub media_id: Option<String>,
    /// Platform options (hashtags, visibility, …), passed to the connector as they are.
    #[serde(alias = "platformSpecificConfig")]
    #[schema(value_type = Option<Object>)]
    pub platform_specific_config: Option<Value>,
    /// A retry with the same key gets the first post back and consumes nothing again. May also
    /// be sent as the `Idempotency-Key` header (both at once must agree).
    #[schema(max_length = 255)]
    pub idempotency_key: Option<String>,
}

error_set! {
    ScheduleRules {
        400 "invalid_body": "a bad `scheduled_for` (not RFC 3339, past, over 366 days ahead), `platform`, `caption`, `platform_specific_config`, or both `file_id` and `media_id` (`field` names it)",
        404 "not_found": "`file_id` or `media_id` is not the caller's (`field` names it)",
        503 "publishing_unavailable": "no publishing connector is configured (QUEUE_PUBLISH_WEBHOOK_URL)",
    }
}

/// Schedules a post: one `scheduled_posts` consumed; when it is due, the scheduler turns it
/// into a `publish_post` job, which publishes it through the connector and counts one
/// `published_posts`.
#[utoipa::path(tag = "posts",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "The idempotency key, instead of (or the same as) the body's `idempotency_key`"),
    ),
    request_body = ScheduleBody,
    responses((status = 200, description = "The stored post (or, `replayed: true`, the one the same key stored before)", body = Envelope<ScheduledPost>),
              Errors<(Authenticated, JsonBody, QuotaGated, ScheduleRules)>))]
#[post("/api/posts/schedule")]
pub async fn schedule_post(
    Input(AuthenticatedUser(caller), body): Input<AuthenticatedUser, ScheduleBody>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Reply<ScheduledPost> {
    let idempotency_key = idempotency_key(req.headers(), body.idempotency_key)?;
    // svc-queue checks that it is an object.
    let platform_specific_config_json = match body.platform_specific_config {
        None | Some(Value::Null) => String::new(),
        Some(config) => config.to_string(),
    };
    let request = pb::SchedulePostRequest {
        creator_profile_id: body.creator_profile_id.into(),
        platform: body.platform.unwrap_or_default(),
        caption: body.caption.unwrap_or_default(),
        scheduled_for: body.scheduled_for.into(),
        file_id: body.file_id.unwrap_or_default(),
        media_id: body.media_id.unwrap_or_default(),
        platform_specific_config_json,
        idempotency_key: idempotency_key.unwrap_or_default(),
    };
    state
        .queue
        .forward(&caller, request, rpc!(schedule_post))
        .await
}

/// `{data: [post], meta: {filter_count}}`, latest scheduled first.
#[derive(Debug, Serialize, ToSchema)]
pub struct PostList {
    pub data: Vec<PostView>,
    pub meta: ListMeta,
}

impl TryFrom<pb::PostPage> for PostList {
    type Error = ApiError;

    fn try_from(page: pb::PostPage) -> Result<Self, ApiError> {
        Ok(Self {
            data: page
                .posts
                .into_iter()
                .map(PostView::try_from)
                .collect::<Result<_, _>>()?,
            meta: ListMeta {
                filter_count: page.total,
            },
        })
    }
}

error_set! {
    PostListRules {
        400 "invalid_body": "`status` not a post status, `limit` outside 1..=500, or a negative `offset` (`field` names it)",
    }
}

/// The caller's scheduled posts, latest scheduled first, optionally of one status.
#[utoipa::path(tag = "posts",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    params(StatusPageQuery),
    responses((status = 200, description = "A page of posts and how many pass the filter", body = Envelope<PostList>),
              Errors<(Authenticated, PostListRules)>))]
#[get("/api/posts")]
pub async fn list_posts(
    AuthenticatedUser(caller): AuthenticatedUser,
    Query(query): Query<StatusPageQuery>,
    state: web::Data<AppState>,
) -> Reply<PostList> {
    let request = pb::ListPostsRequest {
        status: query.status.unwrap_or_default(),
        limit: query.limit.unwrap_or(0),
        offset: query.offset.unwrap_or(0),
    };
    state
        .queue
        .forward(&caller, request, rpc!(list_posts))
        .await
}

/// `{post}`
#[derive(Debug, Serialize, ToSchema)]
pub struct OnePost {
    pub post: PostView,
}

impl TryFrom<pb::Post> for OnePost {
    type Error = ApiError;

    fn try_from(post: pb::Post) -> Result<Self, ApiError> {
        Ok(Self {
            post: post.try_into()?,
        })
    }
}

error_set! {
    PostCancelRules {
        404 "not_found": "no post with this id, or another user's",
        409 "post_finished": "the post is published or failed already",
        503 "service_unavailable": "the post is cancelled but svc-usage could not give back its quota yet: send the cancel again",
    }
}

/// Cancels a post of the caller's that is not published yet: a pending one never becomes a job;
/// one being published has its `publish_post` job cancelled wherever it runs. Its
/// `scheduled_posts` is given back (and its `published_posts`, if its attempt had taken them).
/// Cancelling a cancelled post answers it again.
#[utoipa::path(tag = "posts",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "The post's id")),
    responses((status = 200, description = "The post, cancelled", body = Envelope<OnePost>),
              Errors<(Authenticated, PostCancelRules)>))]
#[post("/api/posts/{id}/cancel")]
pub async fn cancel_post(
    AuthenticatedUser(caller): AuthenticatedUser,
    PathId(post_id): PathId,
    state: web::Data<AppState>,
) -> Reply<OnePost> {
    state
        .queue
        .forward(
            &caller,
            pb::CancelPostRequest { post_id },
            rpc!(cancel_post),
        )
        .await
}

pub fn routes(routes: &mut Routes) {
    routes
        .add(queue_stats)
        .add(invalidate_taxonomy)
        .add(classify_tags)
        .add(list_fans)
        .add(schedule_post)
        .add(list_posts)
        .add(cancel_post)
        .add(enqueue_media)
        .add(list_jobs)
        .add(get_job)
        .add(retry_job)
        .add(cancel_job)
        .add(upload_file)
        .add(get_file);
}
