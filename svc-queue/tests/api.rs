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
}

/// Names of the test's own on the shared broker: `genie_test_<unix seconds>_<uuid>.`.
///
/// A test never deletes its queues: RabbitMQ 3.10 can lose its at-least-once dead-lettering for
/// the whole node when such a queue is deleted while its dead-letter worker is still starting
/// (svc-queue/README.md). Queues of runs older than an hour, long settled, are deleted in the
/// background, where `rabbitmqctl` may be run.
fn test_prefix() -> String {
    static CLEAN_UP: std::sync::Once = std::sync::Once::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    CLEAN_UP.call_once(|| {
        std::thread::spawn(move || delete_stale_queues(now));
    });
    format!("genie_test_{now}_{}.", Uuid::new_v4().simple())
}

fn delete_stale_queues(now: u64) {
    let rabbitmqctl = |args: &[&str]| {
        std::process::Command::new("rabbitmqctl")
            .args(args)
            .output()
    };
    let Ok(listed) = rabbitmqctl(&["-q", "list_queues", "name"]) else {
        return;
    };
    for queue in String::from_utf8_lossy(&listed.stdout).lines() {
        let started = queue
            .strip_prefix("genie_test_")
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        if started.is_some_and(|started| started + 3600 < now) {
            let _ = rabbitmqctl(&["-q", "delete_queue", queue]);
        }
    }
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
    config.name_prefix = test_prefix();
    config.relay_interval = Duration::from_millis(100);
    config.capabilities = Capabilities { video: false };
    configure(&mut config);
    let topology = Topology::new(&config.name_prefix, config.delivery_limit);
    let service = start_service(|listener, stop| svc_queue::run(config, listener, stop)).await;
    TestQueue {
        usage: UsageClient::new(usage.channel.clone()),
        _usage: usage,
        client: QueueClient::new(service.channel.clone()),
        _service: service,
        database_url: database.url,
        topology,
    }
}

async fn spawn_queue() -> TestQueue {
    spawn_queue_with(|_| {}).await
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
        let mut usage = self.usage.clone();
        let report = usage
            .report(request(
                usage_pb::ReportRequest {
                    user_id: caller.to_string(),
                    tier: "starter".into(),
                },
                &creator(caller),
            ))
            .await
            .unwrap()
            .into_inner();
        report
            .operations
            .iter()
            .find(|operation| operation.operation == "ai_media_ops")
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
            "input_url",
            "missing_field",
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
    let queue =
        spawn_queue_with(|config| config.amqp_url = common::secret::Secret::new(amqp_url)).await;
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
