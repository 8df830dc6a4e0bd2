//! svc-queue over real gRPC on a random port, with a real svc-usage for the quota, a fresh
//! PostgreSQL database each, and the shared RabbitMQ under names of the test's own.
// Test code: a helper of these tests that cannot do its job fails the test, as an assertion
// would. (clippy.toml allows this inside test functions only, not in the helpers beside them.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::testing::proxy::TcpProxy;
use common::testing::{
    self, TestService, creator, fresh_database, request, start_service, status_field as field,
    status_reason as reason, user,
};
use lapin::options::BasicGetOptions;
use proto::queue::v1 as pb;
use proto::queue::v1::queue_client::QueueClient;
use proto::usage::v1 as usage_pb;
use proto::usage::v1::usage_client::UsageClient;
use svc_queue::Config;
use svc_queue::broker::Topology;
use svc_queue::operations::Capabilities;
use tonic::Code;
use tonic::transport::Channel;
use uuid::Uuid;

const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const IMAGE_URL: &str = "https://cdn.example.com/photo.png";

struct TestQueue {
    _usage: TestService,
    usage: UsageClient<Channel>,
    _service: TestService,
    client: QueueClient<Channel>,
    database_url: String,
    topology: Topology,
    /// The service's configuration, for workers of the same deployment.
    config: Config,
}

async fn spawn_usage() -> TestService {
    let database = fresh_database().await;
    let config = svc_usage::Config::local(database.url, testing::internal_token());
    start_service(|listener, stop| svc_usage::run(config, listener, stop)).await
}

/// svc-queue, on a database of its own and exchange and queue names no other test uses.
async fn spawn_queue_with(configure: impl FnOnce(&mut Config)) -> TestQueue {
    let usage = spawn_usage().await;
    let database = fresh_database().await;
    let mut config = Config::local(database.url.clone(), testing::internal_token());
    config.usage_grpc_url = format!("http://{}", usage.addr);
    config.name_prefix = testing::broker_prefix();
    config.relay_interval = Duration::from_millis(100);
    config.capabilities = Capabilities { video: false };
    config.storage_dir = std::env::temp_dir().join(format!("genie-files-{}", Uuid::new_v4()));
    config.retry_base = Duration::from_millis(20);
    configure(&mut config);
    let topology = Topology::new(&config.name_prefix, config.delivery_limit);
    let service = {
        let config = config.clone();
        start_service(|listener, stop| svc_queue::run(config, listener, stop)).await
    };
    TestQueue {
        usage: UsageClient::new(usage.channel.clone()),
        _usage: usage,
        client: QueueClient::new(service.channel.clone()),
        _service: service,
        database_url: database.url,
        topology,
        config,
    }
}

async fn spawn_queue() -> TestQueue {
    spawn_queue_with(|_| {}).await
}

/// For a test that publishes nothing and runs no worker: its deployment declares the queues
/// every such test shares, so that test runs do not pile up queues on the broker
/// (deploy/broker-reset.sh).
fn share_the_broker(config: &mut Config) {
    config.name_prefix = "genie_test_queue_api_shared_".to_owned();
}

/// A deployment whose jobs may fetch from this machine, where the test's stand-in CDN runs.
async fn spawn_local_queue(configure: impl FnOnce(&mut Config)) -> TestQueue {
    spawn_queue_with(|config| {
        config.allow_private_urls = true;
        configure(config);
    })
    .await
}

/// A worker of the test's deployment, stopped (its connection dropped, as if its process died)
/// when dropped.
struct TestWorker(tokio::task::JoinHandle<()>);

impl Drop for TestWorker {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn spawn_worker(config: &Config) -> TestWorker {
    let config = config.clone();
    TestWorker(tokio::spawn(async move {
        let (health, _) = common::testing::random_listener().await;
        svc_queue::run_worker(config, health, std::future::pending())
            .await
            .unwrap();
    }))
}

/// Waits until `done` holds, failing with `what` after `within`.
async fn eventually(within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What the stand-in CDN answers: status, content type and body.
type Answer = (u16, &'static str, Vec<u8>);

/// A small HTTP/1.1 server on a random loopback port standing in for the CDN an `input_url`
/// names: it answers every request with the current answer (which the test may change), or
/// holds the request without answering while `stall` is set; it counts requests.
struct Cdn {
    url: String,
    answer: std::sync::Arc<std::sync::Mutex<Answer>>,
    stall: std::sync::Arc<std::sync::atomic::AtomicBool>,
    requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// How long each answer takes, in milliseconds.
    delay_ms: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Held requests whose client closed the connection.
    abandoned: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    _server: tokio::task::JoinHandle<()>,
}

impl Cdn {
    async fn start(answer: Answer) -> Self {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/photo", listener.local_addr().unwrap());
        let answer = std::sync::Arc::new(std::sync::Mutex::new(answer));
        let stall = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let abandoned = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let delay_ms = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let server = tokio::spawn({
            let (answer, stall, requests, abandoned, delay_ms) = (
                answer.clone(),
                stall.clone(),
                requests.clone(),
                abandoned.clone(),
                delay_ms.clone(),
            );
            async move {
                loop {
                    let (mut socket, _) = listener.accept().await.unwrap();
                    let (answer, stall, requests, abandoned, delay_ms) = (
                        answer.clone(),
                        stall.clone(),
                        requests.clone(),
                        abandoned.clone(),
                        delay_ms.clone(),
                    );
                    tokio::spawn(async move {
                        let mut head = Vec::new();
                        let mut buffer = [0u8; 1024];
                        while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                            match socket.read(&mut buffer).await {
                                Ok(0) | Err(_) => return,
                                Ok(read) => head.extend_from_slice(&buffer[..read]),
                            }
                        }
                        requests.fetch_add(1, Ordering::SeqCst);
                        if stall.load(Ordering::SeqCst) {
                            // Held until the client lets go of the connection.
                            let mut rest = [0u8; 64];
                            let _ = tokio::time::timeout(
                                Duration::from_secs(60),
                                socket.read(&mut rest),
                            )
                            .await;
                            abandoned.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                        let delay = delay_ms.load(Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                        let (status, content_type, body) = answer.lock().unwrap().clone();
                        let head = format!(
                            "HTTP/1.1 {status} Answer\r\nContent-Type: {content_type}\r\n\
                             Content-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = socket.write_all(head.as_bytes()).await;
                        let _ = socket.write_all(&body).await;
                    });
                }
            }
        });
        Self {
            url,
            answer,
            stall,
            requests,
            abandoned,
            delay_ms,
            _server: server,
        }
    }

    fn answer(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    fn abandoned(&self) -> usize {
        self.abandoned.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn requests(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A `width`×`height` gradient, encoded as `format`.
fn picture(width: u32, height: u32, format: image::ImageFormat) -> Vec<u8> {
    let picture = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 255 / width) as u8, (y * 255 / height) as u8, 128])
    });
    let mut bytes = Vec::new();
    picture
        .write_to(&mut std::io::Cursor::new(&mut bytes), format)
        .unwrap();
    bytes
}

fn from_url(url: &str, operation: &str, params: &str) -> pb::EnqueueMediaRequest {
    pb::EnqueueMediaRequest {
        input_url: url.into(),
        ..media(operation, params)
    }
}

fn from_file(file_id: &str, operation: &str, params: &str) -> pb::EnqueueMediaRequest {
    pb::EnqueueMediaRequest {
        input_url: String::new(),
        input_file_id: file_id.into(),
        ..media(operation, params)
    }
}

fn media(operation: &str, params: &str) -> pb::EnqueueMediaRequest {
    pb::EnqueueMediaRequest {
        operation: operation.into(),
        input_url: IMAGE_URL.into(),
        params_json: params.into(),
        creator_profile_id: Uuid::new_v4().to_string(),
        ..Default::default()
    }
}

fn resize(key: &str) -> pb::EnqueueMediaRequest {
    pb::EnqueueMediaRequest {
        idempotency_key: key.into(),
        creator_profile_id: "0b7c6f5e-3f1a-4f7e-9a55-2d3c4b5a6e7f".into(),
        ..media("resize_image", r#"{"width": 640}"#)
    }
}

/// A message the broker holds for a job queue.
struct Message {
    job_id: String,
    persistent: bool,
    body: serde_json::Value,
}

impl TestQueue {
    async fn enqueue(
        &self,
        caller: Uuid,
        media: pb::EnqueueMediaRequest,
    ) -> Result<pb::Enqueued, tonic::Status> {
        let mut client = self.client.clone();
        client
            .enqueue_media(request(media, &creator(caller)))
            .await
            .map(tonic::Response::into_inner)
    }

    async fn job(&self, caller: Uuid, job_id: &str) -> pb::Job {
        let mut client = self.client.clone();
        client
            .get_job(request(
                pb::GetJobRequest {
                    job_id: job_id.into(),
                },
                &creator(caller),
            ))
            .await
            .unwrap()
            .into_inner()
    }

    /// Waits until the job is `status`; the job then.
    async fn wait_status(&self, caller: Uuid, job_id: &str, status: &str) -> pb::Job {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let job = self.job(caller, job_id).await;
            if job.status == status {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "job still {} ({} attempts, error {:?}), not {status}",
                job.status,
                job.attempts,
                job.error
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn upload(&self, caller: Uuid, content: Vec<u8>) -> Result<pb::File, tonic::Status> {
        let mut client = self.client.clone();
        client
            .upload_file(request(
                pb::UploadFileRequest {
                    filename: "photo.png".into(),
                    content,
                },
                &creator(caller),
            ))
            .await
            .map(tonic::Response::into_inner)
    }

    /// The file's description and bytes.
    async fn file(
        &self,
        caller: Uuid,
        file_id: &str,
    ) -> Result<(pb::File, Vec<u8>), tonic::Status> {
        let mut client = self.client.clone();
        let mut chunks = client
            .get_file(request(
                pb::GetFileRequest {
                    file_id: file_id.into(),
                },
                &creator(caller),
            ))
            .await?
            .into_inner();
        let file = chunks.message().await?.unwrap().file.unwrap();
        let mut bytes = Vec::new();
        while let Some(chunk) = chunks.message().await? {
            assert!(chunk.file.is_none());
            bytes.extend_from_slice(&chunk.data);
        }
        Ok((file, bytes))
    }

    async fn cancel(&self, caller: Uuid, job_id: &str) -> Result<pb::Job, tonic::Status> {
        let mut client = self.client.clone();
        client
            .cancel_job(request(
                pb::CancelJobRequest {
                    job_id: job_id.into(),
                },
                &creator(caller),
            ))
            .await
            .map(tonic::Response::into_inner)
    }

    async fn sql(&self, query: &str) -> i64 {
        testing::connect(&self.database_url)
            .await
            .query_one(query, &[])
            .await
            .unwrap()
            .get(0)
    }

    /// Waits until `count` outbox rows are marked sent.
    async fn wait_sent(&self, count: i64, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let sent = self
                .sql("SELECT count(*) FROM queue.outbox WHERE sent_at IS NOT NULL")
                .await;
            if sent >= count {
                assert_eq!(sent, count, "more rows sent than jobs stored");
                return;
            }
            assert!(Instant::now() < deadline, "{sent} of {count} sent");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Takes every message of `queue` off the broker.
    async fn take_messages(&self, queue: &str) -> Vec<Message> {
        let connection = svc_queue::broker::connect(AMQP_URL, "svc-queue test")
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        let mut messages = Vec::new();
        while let Some(message) = channel
            .basic_get(
                self.topology.queue(queue).as_str().into(),
                BasicGetOptions { no_ack: true },
            )
            .await
            .unwrap()
        {
            let properties = &message.delivery.properties;
            messages.push(Message {
                job_id: properties.message_id().as_ref().unwrap().to_string(),
                persistent: *properties.delivery_mode() == Some(2),
                body: serde_json::from_slice(&message.delivery.data).unwrap(),
            });
        }
        messages
    }

    async fn used_media_ops(&self, caller: Uuid) -> i64 {
        self.used(&creator(caller), "ai_media_ops").await
    }

    /// How much of `operation` the caller used this cycle.
    async fn used(&self, caller: &common::Identity, operation: &str) -> i64 {
        let user = caller.require_user().unwrap();
        let mut usage = self.usage.clone();
        let report = usage
            .report(request(
                usage_pb::ReportRequest {
                    user_id: user.id.to_string(),
                    tier: user.tier.clone(),
                },
                caller,
            ))
            .await
            .unwrap()
            .into_inner();
        report
            .operations
            .iter()
            .find(|used| used.operation == operation)
            .unwrap()
            .used
    }
}

#[tokio::test]
async fn an_enqueued_job_is_stored_and_published_once_confirmed() {
    let queue = spawn_queue().await;
    let me = Uuid::new_v4();
    let enqueued = queue.enqueue(me, resize("first")).await.unwrap();
    assert!(!enqueued.replayed);
    let job = enqueued.job.unwrap();
    assert_eq!(
        (
            job.operation.as_str(),
            job.queue.as_str(),
            job.status.as_str()
        ),
        ("resize_image", "media-jobs", "queued")
    );
    assert_eq!((job.priority, job.attempts, job.max_attempts), (10, 0, 5));
    let payload: serde_json::Value = serde_json::from_str(&job.payload_json).unwrap();
    assert_eq!(payload["input_url"], IMAGE_URL);
    assert_eq!(payload["params"]["width"], 640);

    queue.wait_sent(1, Duration::from_secs(10)).await;
    let messages = queue.take_messages("media-jobs").await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].job_id, job.id);
    assert!(messages[0].persistent);
    assert_eq!(messages[0].body["job_id"], job.id.as_str());
    assert_eq!(messages[0].body["job_type"], "resize_image");
    assert_eq!(queue.used_media_ops(me).await, 1);

    // Sent rows are kept a week, then pruned.
    let pool = common::db::pool(&queue.database_url, 1, &common::db::Settings::default()).unwrap();
    let db = pool.get().await.unwrap();
    let week_ago = chrono::Utc::now() - chrono::TimeDelta::days(7);
    assert_eq!(
        svc_queue::store::prune_sent(&db, week_ago, 10)
            .await
            .unwrap(),
        0
    );
    db.execute(
        "UPDATE queue.outbox SET sent_at = now() - interval '8 days'",
        &[],
    )
    .await
    .unwrap();
    db.execute(
        "INSERT INTO queue.outbox (job_id, queue_name, priority, payload, sent_at) \
         SELECT job_id, queue_name, priority, payload, now() FROM queue.outbox",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(
        svc_queue::store::prune_sent(&db, week_ago, 10)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        queue
            .sql("SELECT count(*) FROM queue.outbox WHERE sent_at > now() - interval '1 day'")
            .await,
        1,
        "a row sent within the week is kept"
    );

    let mut client = queue.client.clone();
    let fetched = client
        .get_job(request(
            pb::GetJobRequest {
                job_id: job.id.clone(),
            },
            &creator(me),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched, job);
}

#[tokio::test]
async fn a_replayed_key_returns_the_first_job_and_consumes_nothing_more() {
    let queue = spawn_queue().await;
    let me = Uuid::new_v4();
    let first = queue.enqueue(me, resize("same")).await.unwrap();
    let again = queue.enqueue(me, resize("same")).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.job.unwrap().id, first.job.as_ref().unwrap().id);

    // Ten at once with a new key: one job, one unit of quota.
    let concurrent: Vec<_> = (0..10)
        .map(|_| queue.enqueue(me, resize("burst")))
        .collect();
    let answers = futures_util::future::join_all(concurrent).await;
    let ids: HashSet<String> = answers
        .into_iter()
        .map(|answer| answer.unwrap().job.unwrap().id)
        .collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(queue.used_media_ops(me).await, 2);
    assert_eq!(queue.sql("SELECT count(*) FROM queue.media_jobs").await, 2);
    assert_eq!(queue.sql("SELECT count(*) FROM queue.outbox").await, 2);

    let other = pb::EnqueueMediaRequest {
        params_json: r#"{"width": 320}"#.into(),
        ..resize("same")
    };
    let reused = queue.enqueue(me, other).await.unwrap_err();
    assert_eq!(reused.code(), Code::AlreadyExists);
    assert_eq!(
        (reason(&reused), field(&reused)),
        ("idempotency_key_reused", "idempotency_key")
    );
    // Someone else's key of the same name is theirs.
    let stranger = queue.enqueue(Uuid::new_v4(), resize("same")).await.unwrap();
    assert!(!stranger.replayed);
    queue.wait_sent(3, Duration::from_secs(10)).await;
    assert_eq!(queue.take_messages("media-jobs").await.len(), 3);
}

#[tokio::test]
async fn the_quota_refuses_the_sixth_starter_job_and_a_missing_usage_service_denies() {
    let queue = spawn_queue().await;
    let me = Uuid::new_v4();
    for _ in 0..5 {
        queue.enqueue(me, resize("")).await.unwrap();
    }
    let refused = queue.enqueue(me, resize("")).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert_eq!(reason(&refused), "limit_reached");
    assert_eq!(queue.sql("SELECT count(*) FROM queue.media_jobs").await, 5);

    let unreachable = spawn_queue_with(|config| {
        config.usage_grpc_url = "http://127.0.0.1:9".into();
        config.quota_timeout = Duration::from_millis(500);
    })
    .await;
    let denied = unreachable.enqueue(me, resize("")).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert_eq!(reason(&denied), "quota_check_failed");
    assert_eq!(
        unreachable
            .sql("SELECT count(*) FROM queue.media_jobs")
            .await,
        0
    );
}

#[tokio::test]
async fn bad_requests_name_their_field_before_any_quota_is_taken() {
    let queue = spawn_queue().await;
    let me = Uuid::new_v4();
    let cases = [
        (media("sharpen", ""), "operation", "invalid_body"),
        (
            media("trim_video", r#"{"start": 0, "duration": 2}"#),
            "operation",
            "unsupported_operation",
        ),
        (
            media("resize_image", "{}"),
            "params.width or params.height",
            "missing_field",
        ),
        (
            media("resize_image", r#"{"width": -4}"#),
            "params.width",
            "invalid_body",
        ),
        (
            media("crop_image", r#"{"x": 1}"#),
            "params.y",
            "missing_field",
        ),
        (
            pb::EnqueueMediaRequest {
                input_url: "http://169.254.169.254/latest/meta-data".into(),
                ..media("strip_metadata", "")
            },
            "input_url",
            "invalid_body",
        ),
        (
            pb::EnqueueMediaRequest {
                input_url: String::new(),
                ..media("strip_metadata", "")
            },
            "input_file_id or input_url",
            "missing_field",
        ),
        (
            from_file("photo.png", "strip_metadata", ""),
            "input_file_id",
            "invalid_body",
        ),
        (
            pb::EnqueueMediaRequest {
                creator_profile_id: "me".into(),
                ..media("strip_metadata", "")
            },
            "creator_profile_id",
            "invalid_body",
        ),
        (
            pb::EnqueueMediaRequest {
                priority: 99,
                ..media("strip_metadata", "")
            },
            "priority",
            "invalid_body",
        ),
        (
            pb::EnqueueMediaRequest {
                idempotency_key: "k".repeat(300),
                ..media("strip_metadata", "")
            },
            "idempotency_key",
            "invalid_body",
        ),
    ];
    for (media, expected_field, expected_reason) in cases {
        let err = queue.enqueue(me, media).await.unwrap_err();
        assert_eq!(
            err.code(),
            Code::InvalidArgument,
            "{expected_field}: {err:?}"
        );
        assert_eq!(
            (field(&err), reason(&err)),
            (expected_field, expected_reason)
        );
    }
    assert_eq!(queue.used_media_ops(me).await, 0);
    assert_eq!(queue.sql("SELECT count(*) FROM queue.media_jobs").await, 0);
}

#[tokio::test]
async fn owners_see_only_their_own_jobs() {
    let queue = spawn_queue().await;
    let (me, other) = (Uuid::new_v4(), Uuid::new_v4());
    let mut mine = Vec::new();
    for _ in 0..3 {
        mine.push(queue.enqueue(me, resize("")).await.unwrap().job.unwrap().id);
    }
    let theirs = queue.enqueue(other, resize("")).await.unwrap().job.unwrap();
    let mut client = queue.client.clone();

    for id in [
        theirs.id.clone(),
        Uuid::new_v4().to_string(),
        "not-a-uuid".into(),
    ] {
        let err = client
            .get_job(request(pb::GetJobRequest { job_id: id }, &creator(me)))
            .await
            .unwrap_err();
        assert_eq!((err.code(), reason(&err)), (Code::NotFound, "not_found"));
    }

    let page = |status: &str, limit: i64, offset: i64| pb::ListJobsRequest {
        status: status.into(),
        limit,
        offset,
    };
    let all = client
        .list_jobs(request(page("", 0, 0), &creator(me)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.total, 3);
    let listed: Vec<String> = all.jobs.into_iter().map(|job| job.id).collect();
    mine.reverse();
    assert_eq!(listed, mine, "newest first");
    let second = client
        .list_jobs(request(page("queued", 2, 2), &creator(me)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((second.total, second.jobs.len()), (3, 1));
    let past = client
        .list_jobs(request(page("", 2, 10), &creator(me)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((past.total, past.jobs.len()), (3, 0));
    let none = client
        .list_jobs(request(page("failed", 0, 0), &creator(me)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(none.total, 0);
    for (bad, expected) in [
        (page("done", 0, 0), "status"),
        (page("", 501, 0), "limit"),
        (page("", 0, -1), "offset"),
    ] {
        let err = client
            .list_jobs(request(bad, &creator(me)))
            .await
            .unwrap_err();
        assert_eq!((err.code(), field(&err)), (Code::InvalidArgument, expected));
    }
    let anonymous = client
        .list_jobs(request(page("", 0, 0), &testing::anonymous()))
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn jobs_enqueued_while_the_broker_is_unreachable_are_published_once_it_returns() {
    let proxy = TcpProxy::start(std::net::SocketAddr::from(([127, 0, 0, 1], 5672))).await;
    let amqp_url = format!("amqp://guest:guest@{}/%2f", proxy.addr());
    let queue = spawn_queue_with(|config| {
        config.amqp_url = common::secret::Secret::new(amqp_url);
        // No worker takes them: every message waits in the broker.
        config.broker_backlog = 1_000;
    })
    .await;
    let me = Uuid::new_v4();
    let studio = user(me, "creator", "studio");
    queue.enqueue(me, resize("")).await.unwrap();
    queue.wait_sent(1, Duration::from_secs(10)).await;

    proxy.cut();
    let mut client = queue.client.clone();
    let burst: Vec<_> = (0..200)
        .map(|index| {
            let mut client = client.clone();
            let studio = studio.clone();
            async move {
                client
                    .enqueue_media(request(resize(&format!("burst-{index}")), &studio))
                    .await
                    .map(|answer| answer.into_inner().job.unwrap().id)
            }
        })
        .collect();
    let stored: Vec<String> = futures_util::future::join_all(burst)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(stored.len(), 200, "the broker's absence refuses no job");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        queue
            .sql("SELECT count(*) FROM queue.outbox WHERE sent_at IS NULL")
            .await,
        200
    );

    proxy.restore();
    queue.wait_sent(201, Duration::from_secs(30)).await;
    let messages = queue.take_messages("media-jobs").await;
    let ids: HashSet<String> = messages
        .iter()
        .map(|message| message.job_id.clone())
        .collect();
    assert_eq!(messages.len(), 201, "every job once");
    assert_eq!(ids.len(), 201);
    assert!(stored.iter().all(|id| ids.contains(id)));
    let _ = client
        .get_job(request(
            pb::GetJobRequest {
                job_id: stored[0].clone(),
            },
            &studio,
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_uploaded_image_is_resized_by_a_worker_into_a_file_of_the_owners() {
    let queue = spawn_queue().await;
    let _worker = spawn_worker(&queue.config);
    let (me, stranger) = (Uuid::new_v4(), Uuid::new_v4());
    let png = picture(120, 80, image::ImageFormat::Png);
    let uploaded = queue.upload(me, png.clone()).await.unwrap();
    assert_eq!(
        (
            uploaded.content_type.as_str(),
            uploaded.width,
            uploaded.height
        ),
        ("image/png", 120, 80)
    );
    assert_eq!(uploaded.bytes, png.len() as i64);
    assert_eq!(uploaded.filename, "photo.png");
    assert_eq!(uploaded.job_id, "");

    // Another user can neither read the file nor make a job of it.
    assert_eq!(
        queue.file(stranger, &uploaded.id).await.unwrap_err().code(),
        Code::NotFound
    );
    let refused = queue
        .enqueue(
            stranger,
            from_file(&uploaded.id, "resize_image", r#"{"width": 60}"#),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (refused.code(), field(&refused)),
        (Code::NotFound, "input_file_id")
    );
    assert_eq!(queue.used_media_ops(stranger).await, 0);

    let job = queue
        .enqueue(
            me,
            from_file(&uploaded.id, "resize_image", r#"{"width": 60}"#),
        )
        .await
        .unwrap()
        .job
        .unwrap();
    let done = queue.wait_status(me, &job.id, "completed").await;
    assert_eq!((done.attempts, done.progress), (1, 100));
    assert!(!done.started_at.is_empty() && !done.completed_at.is_empty());
    let result: serde_json::Value = serde_json::from_str(&done.result_json).unwrap();
    assert_eq!(result["content_type"], "image/png");
    assert_eq!(
        (result["width"].as_u64(), result["height"].as_u64()),
        (Some(60), Some(40))
    );
    let output_id = result["output_file_id"].as_str().unwrap();
    assert_eq!(result["output_url"], format!("/api/files/{output_id}"));

    let (output, bytes) = queue.file(me, output_id).await.unwrap();
    assert_eq!(output.job_id, job.id);
    assert_eq!(result["bytes"].as_i64(), Some(bytes.len() as i64));
    assert_eq!(
        output.sha256,
        hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes))
    );
    let decoded = image::load_from_memory(&bytes).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (60, 40));
    assert_eq!(
        image::guess_format(&bytes).unwrap(),
        image::ImageFormat::Png
    );
    assert_eq!(
        queue.file(stranger, output_id).await.unwrap_err().code(),
        Code::NotFound
    );
}

#[tokio::test]
async fn uploads_are_typed_by_their_bytes_and_bounded() {
    let queue = spawn_queue_with(|config| config.max_file_bytes = 10_000).await;
    let me = Uuid::new_v4();
    let html = queue
        .upload(me, b"<html><script>alert(1)</script>".to_vec())
        .await
        .unwrap_err();
    assert_eq!(
        (html.code(), reason(&html), field(&html)),
        (Code::InvalidArgument, "unsupported_media_type", "file")
    );
    let empty = queue.upload(me, Vec::new()).await.unwrap_err();
    assert_eq!(
        (empty.code(), field(&empty)),
        (Code::InvalidArgument, "file")
    );
    let big = queue.upload(me, vec![0xff; 10_001]).await.unwrap_err();
    assert_eq!(big.code(), Code::OutOfRange);
    let jpeg = queue
        .upload(me, picture(30, 20, image::ImageFormat::Jpeg))
        .await
        .unwrap();
    assert_eq!(jpeg.content_type, "image/jpeg");
    assert_eq!(
        queue.file(me, "not-a-uuid").await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        queue.sql("SELECT count(*) FROM queue.files").await,
        1,
        "nothing refused was recorded"
    );
}

#[tokio::test]
async fn a_failing_input_is_retried_with_backoff_then_failed_dead_lettered_and_retryable() {
    let cdn = Cdn::start((503, "text/plain", b"busy".to_vec())).await;
    let queue = spawn_local_queue(|config| config.max_attempts = 3).await;
    let worker = spawn_worker(&queue.config);
    let me = Uuid::new_v4();
    let job = queue
        .enqueue(me, from_url(&cdn.url, "create_teaser", r#"{"width": 32}"#))
        .await
        .unwrap()
        .job
        .unwrap();
    let failed = queue.wait_status(me, &job.id, "failed").await;
    assert_eq!(failed.attempts, 3);
    assert!(failed.error.contains("503"), "{}", failed.error);
    assert_eq!(cdn.requests(), 3, "one fetch per attempt, no more");
    assert_eq!(
        queue.sql("SELECT count(*) FROM queue.outbox").await,
        3,
        "the first message and one per retry"
    );
    // The last attempt's message went to the dead-letter queue. (The worker is stopped first,
    // so that nothing else holds the queues.)
    drop(worker);
    let deadline = Instant::now() + Duration::from_secs(10);
    let dead = loop {
        let dead = queue.take_messages("media-jobs.dead").await;
        if !dead.is_empty() || Instant::now() > deadline {
            break dead;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].job_id, job.id);

    // Retried, the same job goes again from its first attempt, and nothing more is consumed.
    cdn.answer((200, "image/jpeg", picture(64, 36, image::ImageFormat::Jpeg)));
    let _worker = spawn_worker(&queue.config);
    let mut client = queue.client.clone();
    let retried = client
        .retry_job(request(
            pb::RetryJobRequest {
                job_id: job.id.clone(),
            },
            &creator(me),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((retried.status.as_str(), retried.attempts), ("queued", 0));
    let done = queue.wait_status(me, &job.id, "completed").await;
    assert_eq!(done.attempts, 1);
    assert_eq!(queue.used_media_ops(me).await, 1);
    let result: serde_json::Value = serde_json::from_str(&done.result_json).unwrap();
    assert_eq!(result["content_type"], "image/jpeg");
    assert_eq!(
        (result["width"].as_u64(), result["height"].as_u64()),
        (Some(32), Some(18))
    );

    let again = client
        .retry_job(request(
            pb::RetryJobRequest {
                job_id: job.id.clone(),
            },
            &creator(me),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (again.code(), reason(&again)),
        (Code::AlreadyExists, "job_not_failed")
    );
    let stranger = client
        .retry_job(request(
            pb::RetryJobRequest {
                job_id: job.id.clone(),
            },
            &creator(Uuid::new_v4()),
        ))
        .await
        .unwrap_err();
    assert_eq!(stranger.code(), Code::NotFound);
}

#[tokio::test]
async fn input_that_can_never_work_fails_at_its_first_attempt() {
    let cdn = Cdn::start((200, "text/html", b"<html>".to_vec())).await;
    let queue = spawn_local_queue(|_| {}).await;
    let _worker = spawn_worker(&queue.config);
    let me = Uuid::new_v4();
    let html = queue
        .enqueue(me, from_url(&cdn.url, "strip_metadata", ""))
        .await
        .unwrap()
        .job
        .unwrap();
    let failed = queue.wait_status(me, &html.id, "failed").await;
    assert_eq!(failed.attempts, 1);
    assert!(failed.error.contains("text/html"), "{}", failed.error);

    cdn.answer((
        200,
        "image/png",
        b"\x89PNG\r\n\x1a\n but nothing after".to_vec(),
    ));
    let corrupt = queue
        .enqueue(me, from_url(&cdn.url, "strip_metadata", ""))
        .await
        .unwrap()
        .job
        .unwrap();
    let failed = queue.wait_status(me, &corrupt.id, "failed").await;
    assert_eq!(failed.attempts, 1);
    assert_eq!(queue.sql("SELECT count(*) FROM queue.files").await, 0);
}

#[tokio::test]
async fn a_second_delivery_of_a_finished_job_is_acked_without_redoing_it() {
    let cdn = Cdn::start((200, "image/png", picture(40, 40, image::ImageFormat::Png))).await;
    let queue = spawn_local_queue(|_| {}).await;
    let worker = spawn_worker(&queue.config);
    let me = Uuid::new_v4();
    let job = queue
        .enqueue(
            me,
            from_url(
                &cdn.url,
                "crop_image",
                r#"{"x": 5, "y": 5, "width": 10, "height": 20}"#,
            ),
        )
        .await
        .unwrap()
        .job
        .unwrap();
    let done = queue.wait_status(me, &job.id, "completed").await;

    // The relay publishing the row again (it crashed between the confirm and its commit).
    let connection = svc_queue::broker::connect(AMQP_URL, "svc-queue test")
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await
        .unwrap();
    let message = serde_json::json!({"job_id": job.id, "job_type": "crop_image"}).to_string();
    channel
        .basic_publish(
            queue.topology.exchange().as_str().into(),
            queue.topology.queue("media-jobs").as_str().into(),
            lapin::options::BasicPublishOptions::default(),
            message.as_bytes(),
            lapin::BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(worker);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        queue.take_messages("media-jobs").await.is_empty(),
        "the duplicate was acked"
    );
    assert_eq!(queue.job(me, &job.id).await, done, "and changed nothing");
    assert_eq!(cdn.requests(), 1);
    assert_eq!(queue.sql("SELECT count(*) FROM queue.files").await, 1);
}

#[tokio::test]
async fn a_job_whose_worker_dies_mid_attempt_is_finished_once_by_another() {
    let cdn = Cdn::start((200, "image/png", picture(50, 50, image::ImageFormat::Png))).await;
    let queue = spawn_local_queue(|_| {}).await;
    cdn.stall.store(true, std::sync::atomic::Ordering::SeqCst);
    let first = spawn_worker(&queue.config);
    let me = Uuid::new_v4();
    let job = queue
        .enqueue(
            me,
            from_url(&cdn.url, "convert_image", r#"{"format": "webp"}"#),
        )
        .await
        .unwrap()
        .job
        .unwrap();
    let active = queue.wait_status(me, &job.id, "active").await;
    assert_eq!(active.attempts, 1);
    eventually(Duration::from_secs(10), "the worker never fetched", || {
        cdn.requests() > 0
    })
    .await;
    drop(first);
    cdn.stall.store(false, std::sync::atomic::Ordering::SeqCst);
    let _second = spawn_worker(&queue.config);
    let done = queue.wait_status(me, &job.id, "completed").await;
    assert_eq!(done.attempts, 2, "the broker delivered it again");
    let result: serde_json::Value = serde_json::from_str(&done.result_json).unwrap();
    assert_eq!(result["content_type"], "image/webp");
    assert_eq!(queue.sql("SELECT count(*) FROM queue.files").await, 1);
}

#[tokio::test]
async fn a_queued_job_cancelled_never_starts_and_its_quota_comes_back() {
    let queue = spawn_queue().await;
    let me = Uuid::new_v4();
    let job = queue
        .enqueue(me, resize("cancel-me"))
        .await
        .unwrap()
        .job
        .unwrap();
    assert_eq!(queue.used_media_ops(me).await, 1);
    let cancelled = queue.cancel(me, &job.id).await.unwrap();
    assert_eq!(cancelled.status, "cancelled");
    assert_eq!(queue.used_media_ops(me).await, 0);
    // Again: the same answer, and nothing given back twice.
    assert_eq!(queue.cancel(me, &job.id).await.unwrap().status, "cancelled");
    assert_eq!(queue.used_media_ops(me).await, 0);
    assert_eq!(
        queue
            .cancel(Uuid::new_v4(), &job.id)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    // Its message, if the relay had sent it, is acked by a worker without running it.
    let _worker = spawn_worker(&queue.config);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = queue.job(me, &job.id).await;
    assert_eq!((after.status.as_str(), after.attempts), ("cancelled", 0));
}

#[tokio::test]
async fn a_running_job_cancelled_elsewhere_is_stopped_on_its_worker_and_refunded() {
    let cdn = Cdn::start((200, "image/png", picture(40, 40, image::ImageFormat::Png))).await;
    cdn.stall.store(true, std::sync::atomic::Ordering::SeqCst);
    let queue = spawn_local_queue(|config| config.cancel_poll = Duration::from_millis(50)).await;
    let worker = spawn_worker(&queue.config);
    let me = Uuid::new_v4();
    let job = queue
        .enqueue(me, from_url(&cdn.url, "resize_image", r#"{"width": 20}"#))
        .await
        .unwrap()
        .job
        .unwrap();
    queue.wait_status(me, &job.id, "active").await;
    eventually(Duration::from_secs(10), "the worker never fetched", || {
        cdn.requests() > 0
    })
    .await;
    let cancelled = queue.cancel(me, &job.id).await.unwrap();
    assert_eq!(cancelled.status, "cancelled");
    assert_eq!(queue.used_media_ops(me).await, 0, "its quota came back");
    // The worker stops the attempt: the fetch it was waiting on is closed.
    eventually(
        Duration::from_secs(5),
        "the worker kept the cancelled attempt running",
        || cdn.abandoned() > 0,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(worker);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = queue.job(me, &job.id).await;
    assert_eq!(
        (after.status.as_str(), after.result_json.as_str()),
        ("cancelled", "")
    );
    assert_eq!(queue.sql("SELECT count(*) FROM queue.files").await, 0);
    assert!(
        queue.take_messages("media-jobs").await.is_empty(),
        "its message was acked, not left to run again"
    );
    let finished = queue
        .enqueue(me, resize("done-already"))
        .await
        .unwrap()
        .job
        .unwrap();
    testing::connect(&queue.database_url)
        .await
        .execute(
            "UPDATE queue.media_jobs SET status = 'completed' WHERE id = $1",
            &[&Uuid::parse_str(&finished.id).unwrap()],
        )
        .await
        .unwrap();
    let refused = queue.cancel(me, &finished.id).await.unwrap_err();
    assert_eq!(
        (refused.code(), reason(&refused)),
        (Code::AlreadyExists, "job_finished")
    );
}

fn rfc3339(at: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(at).unwrap().to_utc()
}

#[tokio::test]
async fn one_creators_burst_does_not_hold_back_another_creators_job() {
    const BURST: usize = 200;
    let cdn = Cdn::start((200, "image/png", picture(16, 16, image::ImageFormat::Png))).await;
    // Each job waits this long for its input: one job's time, far above the queue's own costs.
    cdn.delay_ms.store(150, std::sync::atomic::Ordering::SeqCst);
    let queue = spawn_local_queue(|config| {
        config.broker_backlog = 1;
        config.worker_concurrency = 2;
    })
    .await;
    let _worker = spawn_worker(&queue.config);
    let (busy, other) = (Uuid::new_v4(), Uuid::new_v4());
    let studio = user(busy, "creator", "studio");
    let burst: Vec<_> = (0..BURST)
        .map(|_| {
            let mut client = queue.client.clone();
            let studio = studio.clone();
            let job = from_url(&cdn.url, "resize_image", r#"{"width": 8}"#);
            async move { client.enqueue_media(request(job, &studio)).await.unwrap() }
        })
        .collect();
    futures_util::future::join_all(burst).await;
    let completed = |owner: Uuid| {
        let query = format!(
            "SELECT count(*) FROM queue.media_jobs WHERE owner_id = '{owner}' AND status = 'completed'"
        );
        let queue = &queue;
        async move { queue.sql(&query).await }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while completed(busy).await < 4 {
        assert!(Instant::now() < deadline, "the burst does not move");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let job = queue
        .enqueue(other, from_url(&cdn.url, "resize_image", r#"{"width": 8}"#))
        .await
        .unwrap()
        .job
        .unwrap();
    let done = queue.wait_status(other, &job.id, "completed").await;
    let waited = rfc3339(&done.started_at) - rfc3339(&done.created_at);
    let busy_done = completed(busy).await;
    let job_time: f64 = testing::connect(&queue.database_url)
        .await
        .query_one(
            "SELECT avg(extract(epoch FROM completed_at - started_at))::float8 \
             FROM queue.media_jobs WHERE status = 'completed' AND owner_id = $1",
            &[&busy],
        )
        .await
        .unwrap()
        .get(0);
    let waited = waited.as_seconds_f64();
    println!(
        "fairness: the second creator's job waited {:.0} ms; one job takes {:.0} ms; \
         {busy_done} of the first creator's {BURST} were done",
        waited * 1000.0,
        job_time * 1000.0
    );
    // Two worker slots: the one message ahead of it in the broker, then its own turn.
    assert!(
        waited <= 2.0 * job_time + 0.1,
        "waited {waited:.3} s for jobs of {job_time:.3} s"
    );
    assert!(
        busy_done < BURST as i64 / 2,
        "the job went ahead of most of the burst ({busy_done} done)"
    );
}

/// A clip made by ffmpeg: `seconds` of a test pattern at `size` (`160x120`), H.264 in MP4.
fn clip(size: &str, seconds: u32) -> Vec<u8> {
    let path = std::env::temp_dir().join(format!("genie-clip-{}.mp4", Uuid::new_v4()));
    let made = std::process::Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg(format!("testsrc=size={size}:rate=10"))
        .args([
            "-t",
            &seconds.to_string(),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
        ])
        .args(["-pix_fmt", "yuv420p"])
        .arg(&path)
        .status()
        .expect("ffmpeg runs (deploy/services.sh installs it)");
    assert!(made.success());
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    bytes
}

/// ffmpeg processes working in a directory under `scratch`, from /proc.
fn ffmpeg_children(scratch: &std::path::Path) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| {
            let process = entry.ok()?.path();
            let cmdline = std::fs::read(process.join("cmdline")).ok()?;
            let cwd = std::fs::read_link(process.join("cwd")).ok()?;
            (cmdline.starts_with(b"ffmpeg") && cwd.starts_with(scratch)).then_some(())
        })
        .count()
}

#[tokio::test]
async fn videos_are_trimmed_and_joined_by_ffmpeg_into_files_of_the_owners() {
    let queue = spawn_queue_with(|config| config.capabilities = Capabilities::detect()).await;
    assert!(
        queue.config.capabilities.video,
        "ffmpeg is on PATH (deploy/services.sh installs it)"
    );
    let _worker = spawn_worker(&queue.config);
    let me = Uuid::new_v4();
    let first = queue.upload(me, clip("160x120", 2)).await.unwrap();
    assert_eq!(first.content_type, "video/mp4");
    let second = queue.upload(me, clip("320x240", 1)).await.unwrap();
    let picture_file = queue
        .upload(me, picture(10, 10, image::ImageFormat::Png))
        .await
        .unwrap();

    let trim = queue
        .enqueue(
            me,
            from_file(&first.id, "trim_video", r#"{"start": 0.5, "duration": 1}"#),
        )
        .await
        .unwrap()
        .job
        .unwrap();
    let join = queue
        .enqueue(
            me,
            from_file(
                &first.id,
                "join_videos",
                &format!(r#"{{"files": ["{}"]}}"#, second.id),
            ),
        )
        .await
        .unwrap()
        .job
        .unwrap();
    for (job, duration) in [(&trim, 1.0), (&join, 3.0)] {
        let done = queue.wait_status(me, &job.id, "completed").await;
        let result: serde_json::Value = serde_json::from_str(&done.result_json).unwrap();
        assert_eq!(result["content_type"], "video/mp4");
        assert_eq!(
            (result["width"].as_u64(), result["height"].as_u64()),
            (Some(160), Some(120)),
            "{}",
            job.operation
        );
        let seconds = result["duration"].as_f64().unwrap();
        assert!(
            (seconds - duration).abs() < 0.25,
            "{}: {seconds} s",
            job.operation
        );
        let (file, bytes) = queue
            .file(me, result["output_file_id"].as_str().unwrap())
            .await
            .unwrap();
        assert_eq!(
            (file.content_type.as_str(), file.bytes),
            ("video/mp4", bytes.len() as i64)
        );
        assert_eq!(&bytes[4..8], b"ftyp");
    }

    // What a job joins must be the owner's videos.
    for (files, expected) in [
        (Uuid::new_v4().to_string(), Code::NotFound),
        (picture_file.id.clone(), Code::InvalidArgument),
    ] {
        let refused = queue
            .enqueue(
                me,
                from_file(
                    &first.id,
                    "join_videos",
                    &format!(r#"{{"files": ["{files}"]}}"#),
                ),
            )
            .await
            .unwrap_err();
        assert_eq!(
            (refused.code(), field(&refused)),
            (expected, "params.files")
        );
    }
    let stranger = queue
        .enqueue(Uuid::new_v4(), from_file(&first.id, "compress_video", ""))
        .await
        .unwrap_err();
    assert_eq!(stranger.code(), Code::NotFound);
}

#[tokio::test]
async fn an_attempt_over_its_time_limit_is_killed_with_its_ffmpeg_and_counts_as_failed() {
    let queue = spawn_queue_with(|config| {
        config.capabilities = Capabilities::detect();
        config.operation_timeout = Duration::from_millis(400);
        config.max_attempts = 2;
        config.scratch_dir = std::env::temp_dir().join(format!("genie-scratch-{}", Uuid::new_v4()));
    })
    .await;
    let _worker = spawn_worker(&queue.config);
    let me = Uuid::new_v4();
    let long = queue.upload(me, clip("640x480", 20)).await.unwrap();
    let job = queue
        .enqueue(me, from_file(&long.id, "compress_video", r#"{"crf": 40}"#))
        .await
        .unwrap()
        .job
        .unwrap();
    eventually(Duration::from_secs(10), "ffmpeg never started", || {
        ffmpeg_children(&queue.config.scratch_dir) > 0
    })
    .await;
    let failed = queue.wait_status(me, &job.id, "failed").await;
    assert_eq!(
        failed.attempts, 2,
        "each attempt killed at the limit, then retried once"
    );
    assert!(failed.error.contains("time limit"), "{}", failed.error);
    eventually(
        Duration::from_secs(5),
        "an ffmpeg outlived its attempt",
        || ffmpeg_children(&queue.config.scratch_dir) == 0,
    )
    .await;
    assert_eq!(
        queue
            .sql("SELECT count(*) FROM queue.files WHERE job_id IS NOT NULL")
            .await,
        0
    );
}

#[tokio::test]
async fn a_worker_asked_to_stop_finishes_the_attempt_under_way_then_takes_nothing_more() {
    let cdn = Cdn::start((200, "image/png", picture(20, 20, image::ImageFormat::Png))).await;
    cdn.delay_ms.store(600, std::sync::atomic::Ordering::SeqCst);
    let queue = spawn_local_queue(|config| config.worker_concurrency = 1).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (health, health_addr) = testing::random_listener().await;
    let worker = tokio::spawn(svc_queue::run_worker(queue.config.clone(), health, async {
        let _ = stopped.await;
    }));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{health_addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut probe = tonic_health::pb::health_client::HealthClient::new(channel);
    let me = Uuid::new_v4();
    let studio = user(me, "creator", "studio");
    let mut jobs = Vec::new();
    for _ in 0..2 {
        let mut client = queue.client.clone();
        let job = from_url(&cdn.url, "resize_image", r#"{"width": 10}"#);
        let enqueued = client.enqueue_media(request(job, &studio)).await.unwrap();
        jobs.push(enqueued.into_inner().job.unwrap().id);
    }
    let consuming = |service: &str| tonic_health::pb::HealthCheckRequest {
        service: service.into(),
    };
    queue.wait_status(me, &jobs[0], "active").await;
    let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
    assert_eq!(
        probe
            .check(consuming("genie.queue.v1.Worker"))
            .await
            .unwrap()
            .into_inner()
            .status,
        serving
    );
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), worker)
        .await
        .expect("the worker stops once its attempt is done")
        .unwrap()
        .unwrap();
    let first = queue.job(me, &jobs[0]).await;
    assert_eq!((first.status.as_str(), first.attempts), ("completed", 1));
    let second = queue.job(me, &jobs[1]).await;
    assert_eq!(
        (second.status.as_str(), second.attempts),
        ("queued", 0),
        "the stopping worker took nothing more"
    );
    // The next worker does it.
    let _next = spawn_worker(&queue.config);
    queue.wait_status(me, &jobs[1], "completed").await;
}

#[tokio::test]
async fn a_burst_enqueued_while_the_broker_is_away_is_done_once_each_when_it_returns() {
    const BURST: usize = 1_000;
    let proxy = TcpProxy::start(std::net::SocketAddr::from(([127, 0, 0, 1], 5672))).await;
    let amqp_url = format!("amqp://guest:guest@{}/%2f", proxy.addr());
    let queue = spawn_queue_with(|config| {
        config.amqp_url = common::secret::Secret::new(amqp_url);
        config.worker_concurrency = 4;
        config.broker_backlog = 8;
    })
    .await;
    let _worker = spawn_worker(&queue.config);
    let me = Uuid::new_v4();
    let studio = user(me, "creator", "studio");
    let input = queue
        .upload(me, picture(24, 16, image::ImageFormat::Png))
        .await
        .unwrap();
    proxy.cut();
    let burst: Vec<_> = (0..BURST)
        .map(|_| {
            let mut client = queue.client.clone();
            let studio = studio.clone();
            let job = from_file(&input.id, "resize_image", r#"{"width": 12}"#);
            async move { client.enqueue_media(request(job, &studio)).await }
        })
        .collect();
    let stored = futures_util::future::join_all(burst).await;
    assert!(
        stored.iter().all(Result::is_ok),
        "the broker's absence refuses no job"
    );
    assert_eq!(
        queue
            .sql("SELECT count(*) FROM queue.media_jobs WHERE status = 'queued'")
            .await,
        BURST as i64
    );
    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let done = queue
            .sql("SELECT count(*) FROM queue.media_jobs WHERE status = 'completed'")
            .await;
        if done == BURST as i64 {
            break;
        }
        assert!(Instant::now() < deadline, "{done} of {BURST} completed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        queue
            .sql("SELECT count(*) FROM queue.media_jobs WHERE attempts <> 1")
            .await,
        0,
        "none ran twice"
    );
    assert_eq!(
        queue
            .sql("SELECT count(*) FROM queue.files WHERE job_id IS NOT NULL")
            .await,
        BURST as i64,
        "one output each"
    );
}

/// What the stand-in publishing webhook received of one delivery.
struct Delivery {
    headers: std::collections::HashMap<String, String>,
    body: Vec<u8>,
}

/// A small HTTP/1.1 server on a random loopback port standing in for the receiver of the
/// publishing webhook (a platform connector): it keeps every request's headers and body and
/// answers each with the current status and `{"platform_post_id": "p-<delivery>"}`.
struct Receiver {
    url: url::Url,
    status: std::sync::Arc<std::sync::atomic::AtomicU16>,
    /// Bytes of padding in each answer, to make it as long as a test needs.
    padding: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    deliveries: std::sync::Arc<std::sync::Mutex<Vec<Delivery>>>,
    _server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(status: u16) -> Self {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/publish", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        let status = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(status));
        let padding = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let deliveries = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let server = tokio::spawn({
            let (status, padding, deliveries) =
                (status.clone(), padding.clone(), deliveries.clone());
            async move {
                loop {
                    let (mut socket, _) = listener.accept().await.unwrap();
                    let (status, padding, deliveries) =
                        (status.clone(), padding.clone(), deliveries.clone());
                    tokio::spawn(async move {
                        let mut received = Vec::new();
                        let mut buffer = [0u8; 16 * 1024];
                        let head_end = loop {
                            if let Some(at) =
                                received.windows(4).position(|window| window == b"\r\n\r\n")
                            {
                                break at + 4;
                            }
                            match socket.read(&mut buffer).await {
                                Ok(0) | Err(_) => return,
                                Ok(read) => received.extend_from_slice(&buffer[..read]),
                            }
                        };
                        let head = String::from_utf8_lossy(&received[..head_end]).into_owned();
                        let headers: std::collections::HashMap<String, String> = head
                            .lines()
                            .skip(1)
                            .filter_map(|line| line.split_once(':'))
                            .map(|(name, value)| {
                                (name.trim().to_lowercase(), value.trim().to_owned())
                            })
                            .collect();
                        let length: usize = headers["content-length"].parse().unwrap();
                        while received.len() < head_end + length {
                            match socket.read(&mut buffer).await {
                                Ok(0) | Err(_) => return,
                                Ok(read) => received.extend_from_slice(&buffer[..read]),
                            }
                        }
                        let body = received[head_end..head_end + length].to_vec();
                        let padding = padding.load(std::sync::atomic::Ordering::SeqCst);
                        let answer = serde_json::json!({
                            "platform_post_id": format!("p-{}", headers["x-genie-delivery"]),
                            "padding": "x".repeat(padding),
                        })
                        .to_string();
                        deliveries.lock().unwrap().push(Delivery { headers, body });
                        let status = status.load(std::sync::atomic::Ordering::SeqCst);
                        let head = format!(
                            "HTTP/1.1 {status} Answer\r\nContent-Type: application/json\r\n\
                             Content-Length: {}\r\nConnection: close\r\n\r\n",
                            answer.len()
                        );
                        let _ = socket.write_all(head.as_bytes()).await;
                        let _ = socket.write_all(answer.as_bytes()).await;
                    });
                }
            }
        });
        Self {
            url,
            status,
            padding,
            deliveries,
            _server: server,
        }
    }

    fn answer(&self, status: u16) {
        self.status
            .store(status, std::sync::atomic::Ordering::SeqCst);
    }

    fn delivered(&self) -> usize {
        self.deliveries.lock().unwrap().len()
    }
}

const WEBHOOK_SECRET: &str = "the-publishing-webhook-secret-of-this-test";
const PROFILE: &str = "6d3f1c2e-8a4b-4c5d-9e6f-7a8b9c0d1e2f";

/// A deployment that publishes through `receiver`, its scheduler looking every 100 ms.
async fn spawn_publishing_queue(
    receiver: &Receiver,
    configure: impl FnOnce(&mut Config),
) -> TestQueue {
    let url = receiver.url.clone();
    spawn_queue_with(|config| {
        config.publish_webhook = Some((url, common::secret::Secret::new(WEBHOOK_SECRET)));
        config.scheduler_interval = Duration::from_millis(100);
        configure(config);
    })
    .await
}

/// A post due now, under `key`.
fn due_post(key: &str) -> pb::SchedulePostRequest {
    pb::SchedulePostRequest {
        creator_profile_id: PROFILE.into(),
        caption: format!("New set tonight ({key})"),
        scheduled_for: chrono::Utc::now().to_rfc3339(),
        idempotency_key: key.into(),
        ..Default::default()
    }
}

/// A post due tomorrow, under `key`.
fn later_post(key: &str) -> pb::SchedulePostRequest {
    pb::SchedulePostRequest {
        scheduled_for: (chrono::Utc::now() + chrono::TimeDelta::days(1)).to_rfc3339(),
        ..due_post(key)
    }
}

/// A creator on the creator tier (30 scheduled and 60 published posts a cycle).
fn paying_creator(id: Uuid) -> common::Identity {
    user(id, "creator", "creator")
}

impl TestQueue {
    /// Another replica of the deployment: the same database and broker names.
    async fn replica(&self) -> (TestService, QueueClient<Channel>) {
        let config = self.config.clone();
        let service = start_service(|listener, stop| svc_queue::run(config, listener, stop)).await;
        let client = QueueClient::new(service.channel.clone());
        (service, client)
    }

    async fn schedule(
        &self,
        caller: &common::Identity,
        post: pb::SchedulePostRequest,
    ) -> Result<pb::Scheduled, tonic::Status> {
        let mut client = self.client.clone();
        client
            .schedule_post(request(post, caller))
            .await
            .map(tonic::Response::into_inner)
    }

    async fn posts(
        &self,
        caller: &common::Identity,
        status: &str,
    ) -> Result<pb::PostPage, tonic::Status> {
        let mut client = self.client.clone();
        client
            .list_posts(request(
                pb::ListPostsRequest {
                    status: status.into(),
                    limit: 100,
                    offset: 0,
                },
                caller,
            ))
            .await
            .map(tonic::Response::into_inner)
    }

    async fn cancel_post(
        &self,
        caller: &common::Identity,
        post_id: &str,
    ) -> Result<pb::Post, tonic::Status> {
        let mut client = self.client.clone();
        client
            .cancel_post(request(
                pb::CancelPostRequest {
                    post_id: post_id.into(),
                },
                caller,
            ))
            .await
            .map(tonic::Response::into_inner)
    }

    /// Waits until the post is `status`; the post then.
    async fn wait_post(&self, caller: &common::Identity, post_id: &str, status: &str) -> pb::Post {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let posts = self.posts(caller, "").await.unwrap().posts;
            let post = posts.into_iter().find(|post| post.id == post_id).unwrap();
            if post.status == status {
                return post;
            }
            assert!(
                Instant::now() < deadline,
                "post still {} ({:?}), not {status}",
                post.status,
                post.error_message
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the caller used `expected` of `operation` (a failed publication gives its
    /// quota back just after the post shows `failed`).
    async fn wait_used(&self, caller: &common::Identity, operation: &str, expected: i64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let used = self.used(caller, operation).await;
            if used == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{operation}: {used} used, not {expected}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stats(&self) -> pb::QueueStats {
        stats_of(&self.client).await
    }
}

async fn stats_of(client: &QueueClient<Channel>) -> pb::QueueStats {
    client
        .clone()
        .stats(request(pb::StatsRequest {}, &creator(Uuid::new_v4())))
        .await
        .unwrap()
        .into_inner()
}

async fn classify(
    client: &QueueClient<Channel>,
    tags: &[&str],
) -> Result<pb::Classification, tonic::Status> {
    client
        .clone()
        .classify_tags(request(
            pb::ClassifyTagsRequest {
                tags: tags.iter().map(|tag| (*tag).to_owned()).collect(),
            },
            &creator(Uuid::new_v4()),
        ))
        .await
        .map(tonic::Response::into_inner)
}

fn score_of(classification: &pb::Classification, concept: &str) -> f64 {
    classification
        .concepts
        .iter()
        .find(|score| score.concept == concept)
        .map_or(0.0, |score| score.score)
}

#[tokio::test]
async fn stats_count_every_queues_jobs_by_state_next_to_the_brokers_depth() {
    let queue = spawn_queue().await;
    let empty = queue.stats().await;
    let names: Vec<&str> = empty.queues.iter().map(|q| q.queue.as_str()).collect();
    assert_eq!(names, ["media-jobs", "scrape-jobs", "onboarding-jobs"]);
    assert!(
        empty
            .queues
            .iter()
            .all(|q| q.waiting + q.active + q.completed + q.failed == 0)
    );

    let me = Uuid::new_v4();
    let kept = queue
        .enqueue(me, resize("kept"))
        .await
        .unwrap()
        .job
        .unwrap();
    let dropped = queue
        .enqueue(me, resize("dropped"))
        .await
        .unwrap()
        .job
        .unwrap();
    queue.wait_sent(2, Duration::from_secs(10)).await;
    queue.cancel(me, &dropped.id).await.unwrap();
    // The counts are kept a second; the broker's depth is what the relay saw on its last pass.
    let deadline = Instant::now() + Duration::from_secs(10);
    let media = loop {
        let stats = queue.stats().await;
        let media = stats.queues[0].clone();
        if media.cancelled == 1 && media.broker_seen && media.broker_ready == 2 {
            break media;
        }
        assert!(
            Instant::now() < deadline,
            "stats never caught up: {media:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        (media.waiting, media.active, media.completed, media.failed),
        (1, 0, 0, 0)
    );
    assert_eq!(media.broker_consumers, 0);
    assert_eq!(queue.job(me, &kept.id).await.status, "queued");

    let unauthenticated = queue
        .client
        .clone()
        .stats(request(pb::StatsRequest {}, &testing::anonymous()))
        .await
        .unwrap_err();
    assert_eq!(unauthenticated.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn tags_are_classified_through_a_cache_that_one_bust_clears_on_every_replica() {
    let queue = spawn_queue_with(share_the_broker).await;
    let (_replica, other) = queue.replica().await;

    let classified = classify(
        &queue.client,
        &[
            "Lingerie",
            "#Behind_The-Scenes",
            "bikini",
            "no-such-tag",
            "LINGERIE",
        ],
    )
    .await
    .unwrap();
    // Lingerie (0.85) and bikini, an alias of swimwear (0.7): 1 − 0.15 × 0.3.
    assert!((score_of(&classified, "Intimacy Level") - 0.955).abs() < 1e-6);
    assert!((score_of(&classified, "Content Type") - 0.85).abs() < 1e-6);
    assert_eq!(classified.unmatched, ["no such tag"]);
    let intimacy = classified
        .concepts
        .iter()
        .find(|score| score.concept == "Intimacy Level")
        .unwrap();
    assert_eq!(intimacy.tags, ["lingerie", "bikini"]);
    assert_eq!(
        classified.concepts[0].concept, "Intimacy Level",
        "best first"
    );

    let cache = queue.stats().await.taxonomy_cache.unwrap();
    assert_eq!((cache.hits, cache.misses, cache.size), (0, 4, 4));
    classify(&queue.client, &["lingerie", "no such tag"])
        .await
        .unwrap();
    let cache = queue.stats().await.taxonomy_cache.unwrap();
    assert_eq!((cache.hits, cache.misses, cache.size), (2, 4, 4));

    // The other replica caches on its own, and keeps what it read after the mapping changes…
    let before = classify(&other, &["lingerie"]).await.unwrap();
    assert!((score_of(&before, "Intimacy Level") - 0.85).abs() < 1e-6);
    testing::connect(&queue.database_url)
        .await
        .execute(
            "UPDATE queue.taxonomy_mapping SET weight = 0.25 WHERE tag = 'lingerie'",
            &[],
        )
        .await
        .unwrap();
    let stale = classify(&other, &["lingerie"]).await.unwrap();
    assert!((score_of(&stale, "Intimacy Level") - 0.85).abs() < 1e-6);

    // …until an administrator busts the cache: a creator may not.
    let invalidate = |identity: common::Identity| {
        let mut client = queue.client.clone();
        async move {
            client
                .invalidate_taxonomy(request(pb::InvalidateTaxonomyRequest {}, &identity))
                .await
                .map(tonic::Response::into_inner)
        }
    };
    let refused = invalidate(creator(Uuid::new_v4())).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let busted = invalidate(testing::administrator(Uuid::new_v4()))
        .await
        .unwrap();
    assert_eq!(busted.size, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while stats_of(&other).await.taxonomy_cache.unwrap().size != 0 {
        assert!(
            Instant::now() < deadline,
            "the other replica kept its cache"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let fresh = classify(&other, &["lingerie"]).await.unwrap();
    assert!((score_of(&fresh, "Intimacy Level") - 0.25).abs() < 1e-6);

    let long = "x".repeat(101);
    let many: Vec<String> = (0..101).map(|n| format!("tag{n}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    for tags in [
        vec![],
        vec!["  "],
        vec!["a\u{0}b"],
        vec![long.as_str()],
        many,
    ] {
        let err = classify(&queue.client, &tags).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{tags:?}");
        assert_eq!(field(&err), "tags", "{tags:?}");
    }
}

#[tokio::test]
async fn fans_are_listed_most_engaged_first_and_only_to_their_owner() {
    let queue = spawn_queue_with(share_the_broker).await;
    let (me, stranger) = (Uuid::new_v4(), Uuid::new_v4());
    let (first_profile, second_profile) = (Uuid::new_v4(), Uuid::new_v4());
    let db = testing::connect(&queue.database_url).await;
    for (owner, profile, fan, score, spent) in [
        (me, first_profile, "fan-1", 90, "12.50"),
        (me, first_profile, "fan-2", 40, "0"),
        (me, second_profile, "fan-3", 70, "1999.99"),
        (stranger, Uuid::new_v4(), "fan-4", 99, "5"),
    ] {
        db.execute(
            "INSERT INTO queue.fan_profiles \
             (owner_id, creator_profile_id, platform_fan_id, username, engagement_score, total_spent) \
             VALUES ($1, $2, $3, $3, $4, $5::text::numeric)",
            &[&owner, &profile, &fan, &score, &spent],
        )
        .await
        .unwrap();
    }
    let fans = |caller: Uuid, profile: &str, limit: i64, offset: i64| {
        let mut client = queue.client.clone();
        let request = request(
            pb::ListFansRequest {
                creator_profile_id: profile.into(),
                limit,
                offset,
            },
            &creator(caller),
        );
        async move {
            client
                .list_fans(request)
                .await
                .map(tonic::Response::into_inner)
        }
    };
    let names = |page: &pb::FanPage| {
        page.fans
            .iter()
            .map(|fan| fan.username.clone())
            .collect::<Vec<_>>()
    };
    let mine = fans(me, "", 0, 0).await.unwrap();
    assert_eq!(
        (names(&mine), mine.total),
        (vec!["fan-1".to_owned(), "fan-3".into(), "fan-2".into()], 3)
    );
    assert_eq!(mine.fans[0].total_spent, "12.50");
    assert_eq!(mine.fans[1].total_spent, "1999.99");
    assert_eq!(mine.fans[0].creator_profile_id, first_profile.to_string());
    let second = fans(me, &second_profile.to_string(), 0, 0).await.unwrap();
    assert_eq!(
        (names(&second), second.total),
        (vec!["fan-3".to_owned()], 1)
    );
    let paged = fans(me, "", 1, 1).await.unwrap();
    assert_eq!((names(&paged), paged.total), (vec!["fan-3".to_owned()], 3));
    let theirs = fans(stranger, "", 0, 0).await.unwrap();
    assert_eq!(names(&theirs), ["fan-4"]);
    let none = fans(stranger, &first_profile.to_string(), 0, 0)
        .await
        .unwrap();
    assert_eq!(none.total, 0);

    for (profile, limit, offset, named) in [
        ("not-a-uuid", 0, 0, "creator_profile_id"),
        ("", -1, 0, "limit"),
        ("", 100_000, 0, "limit"),
        ("", 10, -1, "offset"),
    ] {
        let err = fans(me, profile, limit, offset).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(field(&err), named);
    }
}

#[tokio::test]
async fn a_post_is_scheduled_once_per_key_within_the_plan_and_checked_before_the_quota() {
    let receiver = Receiver::start(200).await;
    // Nothing falls due in this test: every post is for tomorrow.
    let queue = spawn_publishing_queue(&receiver, share_the_broker).await;
    let me = creator(Uuid::new_v4());

    let tomorrow = later_post("a");
    let first = queue.schedule(&me, tomorrow.clone()).await.unwrap();
    assert!(!first.replayed);
    let post = first.post.unwrap();
    assert_eq!(
        (
            post.status.as_str(),
            post.platform.as_str(),
            post.job_id.as_str()
        ),
        ("pending", "onlyfans", "")
    );
    assert_eq!(post.creator_profile_id, PROFILE);
    assert_eq!(post.platform_specific_config_json, "{}");
    let again = queue.schedule(&me, tomorrow.clone()).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.post.unwrap().id, post.id);
    let reused = queue
        .schedule(
            &me,
            pb::SchedulePostRequest {
                caption: "something else".into(),
                ..tomorrow
            },
        )
        .await
        .unwrap_err();
    assert_eq!(reason(&reused), "idempotency_key_reused");
    assert_eq!(queue.used(&me, "scheduled_posts").await, 1);

    for (change, named, code) in [
        (
            pb::SchedulePostRequest {
                scheduled_for: "tomorrow".into(),
                ..later_post("b")
            },
            "scheduled_for",
            Code::InvalidArgument,
        ),
        (
            pb::SchedulePostRequest {
                platform_specific_config_json: "[1]".into(),
                ..later_post("b")
            },
            "platform_specific_config",
            Code::InvalidArgument,
        ),
        (
            pb::SchedulePostRequest {
                file_id: Uuid::new_v4().to_string(),
                ..later_post("b")
            },
            "file_id",
            Code::NotFound,
        ),
        (
            pb::SchedulePostRequest {
                media_id: Uuid::new_v4().to_string(),
                ..later_post("b")
            },
            "media_id",
            Code::NotFound,
        ),
        (
            pb::SchedulePostRequest {
                caption: "a\u{0}b".into(),
                ..later_post("b")
            },
            "caption",
            Code::InvalidArgument,
        ),
        (
            // The scheduler's own keys for the posts' jobs.
            later_post("publish-b"),
            "idempotency_key",
            Code::InvalidArgument,
        ),
    ] {
        let err = queue.schedule(&me, change).await.unwrap_err();
        assert_eq!((err.code(), field(&err)), (code, named), "{err:?}");
    }
    assert_eq!(queue.used(&me, "scheduled_posts").await, 1);

    queue.schedule(&me, later_post("b")).await.unwrap();
    queue.schedule(&me, later_post("c")).await.unwrap();
    let over = queue.schedule(&me, later_post("d")).await.unwrap_err();
    assert_eq!(
        (over.code(), reason(&over)),
        (Code::ResourceExhausted, "limit_reached")
    );
    assert_eq!(queue.posts(&me, "").await.unwrap().total, 3);
    assert_eq!(queue.posts(&me, "pending").await.unwrap().total, 3);

    // Cancelling a pending post gives its slot back, once, and only its owner may.
    let stranger = creator(Uuid::new_v4());
    let missing = queue.cancel_post(&stranger, &post.id).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let cancelled = queue.cancel_post(&me, &post.id).await.unwrap();
    assert_eq!(cancelled.status, "cancelled");
    assert_eq!(
        queue.cancel_post(&me, &post.id).await.unwrap().status,
        "cancelled"
    );
    assert_eq!(queue.used(&me, "scheduled_posts").await, 2);
    // (Under a new key: the key refused before is refused again.)
    queue.schedule(&me, later_post("d2")).await.unwrap();
    assert_eq!(queue.used(&me, "scheduled_posts").await, 3);
    assert_eq!(queue.posts(&me, "cancelled").await.unwrap().total, 1);
    assert_eq!(queue.posts(&me, "pending").await.unwrap().total, 3);
    let not_an_id = queue.cancel_post(&me, "nope").await.unwrap_err();
    assert_eq!(not_an_id.code(), Code::NotFound);
    assert_eq!(queue.posts(&me, "published").await.unwrap().total, 0);
    assert_eq!(queue.posts(&me, "").await.unwrap().total, 4);
    let bogus = queue.posts(&me, "sent").await.unwrap_err();
    assert_eq!(field(&bogus), "status");
    assert_eq!(
        queue
            .posts(&creator(Uuid::new_v4()), "")
            .await
            .unwrap()
            .total,
        0
    );

    // No connector set up: refused before any quota is taken.
    let unpublished = spawn_queue_with(share_the_broker).await;
    let err = unpublished
        .schedule(&me, later_post("e"))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err)),
        (Code::Unavailable, "publishing_unavailable")
    );
    // svc-usage unreachable: denied, nothing stored.
    let unreachable = spawn_publishing_queue(&receiver, |config| {
        share_the_broker(config);
        config.usage_grpc_url = "http://127.0.0.1:9".into();
        config.quota_timeout = Duration::from_millis(500);
    })
    .await;
    let denied = unreachable
        .schedule(&me, later_post("f"))
        .await
        .unwrap_err();
    assert_eq!(
        (denied.code(), reason(&denied)),
        (Code::PermissionDenied, "quota_check_failed")
    );
    assert_eq!(
        unreachable
            .sql("SELECT count(*) FROM queue.scheduled_posts")
            .await,
        0
    );
    assert_eq!(receiver.delivered(), 0);
}

#[tokio::test]
async fn due_posts_are_published_once_each_by_two_schedulers_and_two_workers_through_the_signed_webhook()
 {
    let receiver = Receiver::start(200).await;
    let queue = spawn_publishing_queue(&receiver, |_| {}).await;
    let (_replica, _) = queue.replica().await;
    let owner = Uuid::new_v4();
    let me = paying_creator(owner);
    let photo = picture(32, 24, image::ImageFormat::Png);
    let file = queue.upload(owner, photo.clone()).await.unwrap();

    let mut scheduled = Vec::new();
    for n in 0..6 {
        let post = pb::SchedulePostRequest {
            file_id: if n == 0 {
                file.id.clone()
            } else {
                String::new()
            },
            platform_specific_config_json: r#"{"price": 5}"#.into(),
            ..due_post(&format!("due-{n}"))
        };
        scheduled.push(queue.schedule(&me, post).await.unwrap().post.unwrap().id);
    }
    let _workers = (spawn_worker(&queue.config), spawn_worker(&queue.config));
    for id in &scheduled {
        let post = queue.wait_post(&me, id, "published").await;
        assert!(!post.published_at.is_empty());
        assert!(!post.job_id.is_empty());
    }
    // Time for a second delivery, were one to happen.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, WEBHOOK_SECRET.as_bytes());
    let deliveries = std::mem::take(&mut *receiver.deliveries.lock().unwrap());
    assert_eq!(deliveries.len(), 6, "one delivery per post");
    let delivered: HashSet<&str> = deliveries
        .iter()
        .map(|delivery| delivery.headers["x-genie-delivery"].as_str())
        .collect();
    assert_eq!(delivered, scheduled.iter().map(String::as_str).collect());
    for delivery in &deliveries {
        let signed = [
            delivery.headers["x-genie-timestamp"].as_bytes(),
            b".",
            &delivery.body,
        ]
        .concat();
        let tag = hex::decode(
            delivery.headers["x-genie-signature"]
                .strip_prefix("v1=")
                .unwrap(),
        )
        .unwrap();
        ring::hmac::verify(&key, &signed, &tag).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&delivery.body).unwrap();
        assert_eq!(
            body["post_id"],
            delivery.headers["x-genie-delivery"].as_str()
        );
        assert_eq!(body["creator_profile_id"], PROFILE);
        assert_eq!(body["platform_specific_config"]["price"], 5);
        if body["post_id"] == scheduled[0].as_str() {
            use base64::Engine as _;
            let data = base64::engine::general_purpose::STANDARD
                .decode(body["media"]["data_base64"].as_str().unwrap())
                .unwrap();
            assert_eq!(data, photo);
            assert_eq!(body["media"]["sha256"], file.sha256);
            assert_eq!(body["media"]["content_type"], "image/png");
        } else {
            assert!(body["media"].is_null());
        }
    }

    assert_eq!(
        queue
            .sql("SELECT count(*) FROM queue.media_jobs WHERE job_type = 'publish_post' AND status = 'completed'")
            .await,
        6
    );
    let post = queue.wait_post(&me, &scheduled[1], "published").await;
    let job = queue.job(owner, &post.job_id).await;
    let result: serde_json::Value = serde_json::from_str(&job.result_json).unwrap();
    assert_eq!(
        result["published"]["platform_post_id"],
        format!("p-{}", scheduled[1])
    );
    assert_eq!(queue.used(&me, "scheduled_posts").await, 6);
    assert_eq!(queue.used(&me, "published_posts").await, 6);
    let finished = queue.cancel_post(&me, &scheduled[1]).await.unwrap_err();
    assert_eq!(reason(&finished), "post_finished");
    assert_eq!(queue.used(&me, "scheduled_posts").await, 6);
}

#[tokio::test]
async fn a_refused_post_fails_at_once_a_flaky_receiver_is_retried_and_a_cancelled_job_cancels_its_post()
 {
    let receiver = Receiver::start(422).await;
    let queue = spawn_publishing_queue(&receiver, |config| config.max_attempts = 3).await;
    let owner = Uuid::new_v4();
    let me = paying_creator(owner);

    // Due before any worker runs: its job waits, and cancelling the job cancels the post.
    let waiting = queue
        .schedule(&me, due_post("cancelled"))
        .await
        .unwrap()
        .post
        .unwrap();
    let waiting = queue.wait_post(&me, &waiting.id, "publishing").await;
    assert_eq!(
        queue.cancel(owner, &waiting.job_id).await.unwrap().status,
        "cancelled"
    );
    queue.wait_post(&me, &waiting.id, "cancelled").await;
    // The same through the post: its job is cancelled with it.
    let taken = queue
        .schedule(&me, due_post("taken"))
        .await
        .unwrap()
        .post
        .unwrap();
    let taken = queue.wait_post(&me, &taken.id, "publishing").await;
    assert_eq!(
        queue.cancel_post(&me, &taken.id).await.unwrap().status,
        "cancelled"
    );
    assert_eq!(queue.job(owner, &taken.job_id).await.status, "cancelled");
    assert_eq!(queue.used(&me, "scheduled_posts").await, 0);

    let _worker = spawn_worker(&queue.config);
    let refused = queue
        .schedule(&me, due_post("refused"))
        .await
        .unwrap()
        .post
        .unwrap();
    let refused = queue.wait_post(&me, &refused.id, "failed").await;
    assert!(
        refused.error_message.contains("422"),
        "{}",
        refused.error_message
    );
    assert_eq!(receiver.delivered(), 1, "a refusal is not sent again");
    queue.wait_used(&me, "published_posts", 0).await;

    receiver.answer(503);
    let flaky = queue
        .schedule(&me, due_post("flaky"))
        .await
        .unwrap()
        .post
        .unwrap();
    let flaky = queue.wait_post(&me, &flaky.id, "failed").await;
    assert_eq!(receiver.delivered(), 1 + 3, "every attempt delivers once");
    assert_eq!(queue.job(owner, &flaky.job_id).await.attempts, 3);
    queue.wait_used(&me, "published_posts", 0).await;

    // Retried once the receiver is back: the same job, the post published.
    receiver.answer(200);
    let mut client = queue.client.clone();
    client
        .retry_job(request(
            pb::RetryJobRequest {
                job_id: flaky.job_id.clone(),
            },
            &me,
        ))
        .await
        .unwrap();
    queue.wait_post(&me, &flaky.id, "published").await;
    assert_eq!(receiver.delivered(), 1 + 3 + 1);
    assert_eq!(queue.used(&me, "published_posts").await, 1);
    assert_eq!(queue.used(&me, "scheduled_posts").await, 2);

    // An answer of any length is not held: past 16 KiB it is not read, the post still published.
    receiver
        .padding
        .store(8 << 20, std::sync::atomic::Ordering::SeqCst);
    let long = queue
        .schedule(&me, due_post("long"))
        .await
        .unwrap()
        .post
        .unwrap();
    let long = queue.wait_post(&me, &long.id, "published").await;
    let result: serde_json::Value =
        serde_json::from_str(&queue.job(owner, &long.job_id).await.result_json).unwrap();
    assert!(result["published"].is_null(), "{result}");
    assert_eq!(
        queue.wait_post(&me, &waiting.id, "cancelled").await.job_id,
        waiting.job_id
    );
}
