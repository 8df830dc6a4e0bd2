//! What svc-queue's guarantees cost, each against a baseline measured in the same run:
//!
//! - enqueue end to end (`POST /api/queue/media` through the gateway → the job and its outbox row
//!   committed → published by the relay and confirmed by RabbitMQ) against raw lapin
//!   publish-with-confirm of the same messages to the same kind of queue (a quorum queue of the
//!   same topology), by as many concurrent callers;
//! - jobs/s through a worker whose job is next to nothing (`strip_metadata` of a 1×1 PNG)
//!   against a raw lapin consumer acking as many messages with the same prefetch;
//! - `resize_image` jobs/s through a worker against the same resize called in process on as many
//!   threads as the worker runs jobs.
//!
//! `cargo bench -p tests --bench queue` (release build). Client, gateway, services, worker,
//! PostgreSQL and RabbitMQ share the machine's cores, so the figures are for comparison, not
//! capacity planning (svc-queue/README.md, "Benchmark").

// Benchmark and test support: a failed setup step should stop the run with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(dead_code)] // the e2e helpers and `measure` carry more than the benchmark uses

#[path = "../tests/e2e/helpers.rs"]
mod helpers;
mod measure;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use helpers::*;
use lapin::BasicProperties;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use measure::Sample;
use serde_json::{Value, json};
use svc_queue::broker::{self, Topology};
use uuid::Uuid;

/// Concurrent callers of the enqueue phase and of its baseline.
const CALLERS: usize = 16;
/// Jobs enqueued, then run by the worker with next to no work.
const ENQUEUES: usize = 2_000;
/// Resize jobs, of a 1600×1200 JPEG to 640 wide.
const RESIZES: usize = 120;
/// Jobs the worker runs at once (its prefetch), and threads of the in-process resize.
const CONCURRENCY: u16 = 2;
const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The gateway caches resolved users for 30 s, as in production.
    let app = spawn_app_with_queue(Duration::from_secs(30), |config| {
        // Every message goes to the broker at once: measured here is publishing, not the
        // fairness backlog that holds the rest in the outbox (QUEUE_BROKER_BACKLOG).
        config.broker_backlog = u32::MAX;
        config.worker_concurrency = CONCURRENCY;
    })
    .await;
    // The administrator's tier (studio) has no `ai_media_ops` limit.
    let admin = app.admin_token().await;
    let db = common::testing::connect(&app.database_url).await;
    let tiny = upload(&app, &admin, "dot.png", png(1, 1)).await;
    let photo_bytes = photo(1600, 1200);
    let photo = upload(&app, &admin, "photo.jpg", photo_bytes.clone()).await;
    println!(
        "queue benchmark: {ENQUEUES} enqueues by {CALLERS} callers, a worker running \
         {CONCURRENCY} jobs at once, {RESIZES} resizes of a 1600×1200 JPEG ({} KB) to 640 wide",
        photo_bytes.len() / 1024
    );

    // 1. Enqueue, end to end, against raw publish-with-confirm.
    let noop = job("strip_metadata", &tiny, json!({}));
    let busy = cpu_busy();
    let (enqueue_rate, mut enqueue_latency) =
        enqueue_all(&app, &admin, &db, ENQUEUES, &noop, "noop").await;
    let enqueue = Measured {
        per_second: enqueue_rate,
        cpu_per_op: (cpu_busy() - busy) / u32::try_from(ENQUEUES).unwrap(),
    };
    let raw = Topology::new(
        &format!("{}raw.", app.queue_config.name_prefix),
        app.queue_config.delivery_limit,
    );
    let raw_publish = Measured::of(ENQUEUES, raw_publish(&raw, ENQUEUES)).await;

    // 2. A worker doing next to nothing, against a raw consumer.
    let worker = Worker::start(&app.queue_config);
    let noop_jobs = Measured::of(ENQUEUES, wait_completed(&db, ENQUEUES, Instant::now())).await;
    drop(worker);
    let raw_consume = Measured::of(ENQUEUES, raw_consume(&raw, ENQUEUES)).await;

    // 3. Resize through the worker, against the same resize in process (half before, half
    // after, so that drift on a shared machine hits both sides).
    let half = RESIZES / 2;
    let before = Measured::of(half, resize_in_process(&photo_bytes, half)).await;
    let resize = job("resize_image", &photo, json!({"width": 640}));
    enqueue_all(&app, &admin, &db, RESIZES, &resize, "resize").await;
    let worker = Worker::start(&app.queue_config);
    let worker_resize = Measured::of(
        RESIZES,
        wait_completed(&db, ENQUEUES + RESIZES, Instant::now()),
    )
    .await;
    drop(worker);
    let after = Measured::of(half, resize_in_process(&photo_bytes, half)).await;
    let in_process = Measured {
        per_second: (before.per_second + after.per_second) / 2.0,
        cpu_per_op: (before.cpu_per_op + after.cpu_per_op) / 2,
    };
    check_outputs(&db, RESIZES).await;

    println!();
    println!("| measure | svc-queue | baseline | ratio |\n|---|---|---|---|");
    println!(
        "| enqueue → committed → confirmed, {CALLERS} callers, against raw publish-confirm | \
         {} (HTTP p50 {:.1} ms, p99 {:.1} ms) | {} | {:.2} |",
        enqueue.cell("jobs"),
        enqueue_latency.percentile_ms(0.50),
        enqueue_latency.percentile_ms(0.99),
        raw_publish.cell("msg"),
        enqueue.per_second / raw_publish.per_second
    );
    println!(
        "| next-to-nothing jobs through a worker, prefetch {CONCURRENCY}, against raw \
         consume-ack | {} | {} | {:.2} |",
        noop_jobs.cell("jobs"),
        raw_consume.cell("msg"),
        noop_jobs.per_second / raw_consume.per_second
    );
    println!(
        "| resize_image jobs through a worker, {CONCURRENCY} at once, against in process on \
         {CONCURRENCY} threads | {} | {} | {:.2} (overhead {:.0} %) |",
        worker_resize.cell("jobs"),
        in_process.cell("resizes"),
        worker_resize.per_second / in_process.per_second,
        (1.0 - worker_resize.per_second / in_process.per_second) * 100.0
    );
    Ok(())
}

/// The machine's busy CPU time so far, all cores and processes (`/proc/stat`: user, nice,
/// system, irq, softirq, steal), at the kernel's 100 ticks a second.
fn cpu_busy() -> Duration {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let ticks: u64 = stat
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .enumerate()
        .filter(|(field, _)| [0, 1, 2, 5, 6, 7].contains(field))
        .map(|(_, ticks)| ticks.parse::<u64>().unwrap())
        .sum();
    Duration::from_millis(ticks * 10)
}

/// A rate, and the machine's CPU time per operation while it was measured.
struct Measured {
    per_second: f64,
    cpu_per_op: Duration,
}

impl Measured {
    /// Runs `phase`, which does `count` operations and answers their rate.
    async fn of(count: usize, phase: impl std::future::Future<Output = f64>) -> Self {
        let busy = cpu_busy();
        let per_second = phase.await;
        Self {
            per_second,
            cpu_per_op: (cpu_busy() - busy) / u32::try_from(count).unwrap(),
        }
    }

    fn cell(&self, unit: &str) -> String {
        format!(
            "{:.1} {unit}/s, {:.2} ms CPU each",
            self.per_second,
            self.cpu_per_op.as_secs_f64() * 1000.0
        )
    }
}

/// A worker of the app's deployment, stopped (its connection dropped) when dropped.
struct Worker(tokio::task::JoinHandle<()>);

impl Worker {
    fn start(config: &svc_queue::Config) -> Self {
        let config = config.clone();
        Self(tokio::spawn(async move {
            let (health, _) = common::testing::random_listener().await;
            svc_queue::run_worker(config, health, std::future::pending())
                .await
                .unwrap();
        }))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn upload(app: &TestApp, token: &str, name: &str, bytes: Vec<u8>) -> String {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes)
            .file_name(name.to_owned())
            .mime_str("application/octet-stream")
            .unwrap(),
    );
    let stored = app
        .send(
            app.client
                .post(app.url("/api/files"))
                .bearer_auth(token)
                .multipart(form),
        )
        .await;
    assert!(stored.status.is_success(), "{:?}", stored.body);
    stored.body["file"]["id"].as_str().unwrap().to_owned()
}

fn png(width: u32, height: u32) -> Vec<u8> {
    encode(image::RgbImage::new(width, height), image::ImageFormat::Png)
}

/// A photo-like picture: gradients with fine detail, so that the JPEG is of a realistic size.
fn photo(width: u32, height: u32) -> Vec<u8> {
    let picture = image::RgbImage::from_fn(width, height, |x, y| {
        let detail = ((x * 7 + y * 13) % 31) as u8;
        image::Rgb([
            (x * 200 / width) as u8 + detail,
            (y * 200 / height) as u8 + detail,
            ((x + y) % 256) as u8,
        ])
    });
    encode(picture, image::ImageFormat::Jpeg)
}

fn encode(picture: image::RgbImage, format: image::ImageFormat) -> Vec<u8> {
    let mut bytes = Vec::new();
    picture
        .write_to(&mut std::io::Cursor::new(&mut bytes), format)
        .unwrap();
    bytes
}

fn job(operation: &str, file_id: &str, params: Value) -> Value {
    json!({
        "operation": operation,
        "input_file_id": file_id,
        "params": params,
        "creator_profile_id": "0b7c6f5e-3f1a-4f7e-9a55-2d3c4b5a6e7f",
    })
}

/// Enqueues `count` jobs of `body` through the gateway from [`CALLERS`] callers, each under a
/// key of its own, then waits until the relay has every one confirmed by the broker. The rate
/// from the first request to the last confirm, and the requests' latencies.
async fn enqueue_all(
    app: &TestApp,
    token: &str,
    db: &tokio_postgres::Client,
    count: usize,
    body: &Value,
    keys: &str,
) -> (f64, Sample) {
    let sent_before = sent(db).await;
    let next = Arc::new(AtomicUsize::new(0));
    let body = Arc::new(body.to_string());
    let started = Instant::now();
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (client, url, token) = (
                app.client.clone(),
                app.url("/api/queue/media"),
                token.to_owned(),
            );
            let (next, body) = (next.clone(), body.clone());
            let keys = keys.to_owned();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= count {
                        return latencies;
                    }
                    let asked = Instant::now();
                    let answer = client
                        .post(&url)
                        .bearer_auth(&token)
                        .header("Idempotency-Key", format!("{keys}-{index}"))
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(body.to_string())
                        .send()
                        .await
                        .unwrap();
                    let status = answer.status();
                    assert!(
                        status.is_success(),
                        "{status}: {}",
                        answer.text().await.unwrap()
                    );
                    latencies.push(asked.elapsed());
                }
            })
        })
        .collect();
    let mut sample = Sample::default();
    for caller in callers {
        sample.latencies.extend(caller.await.unwrap());
    }
    let target = sent_before + count as i64;
    while sent(db).await < target {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    sample.elapsed = started.elapsed();
    (count as f64 / sample.elapsed.as_secs_f64(), sample)
}

async fn sent(db: &tokio_postgres::Client) -> i64 {
    db.query_one(
        "SELECT count(*) FROM queue.outbox WHERE sent_at IS NOT NULL",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

/// Waits until `count` jobs in all are completed; the jobs/s since `since` of those completed
/// meanwhile.
async fn wait_completed(db: &tokio_postgres::Client, count: usize, since: Instant) -> f64 {
    let completed = || async {
        let count: i64 = db
            .query_one(
                "SELECT count(*) FROM queue.media_jobs WHERE status = 'completed'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        count as usize
    };
    let before = completed().await;
    let deadline = since + Duration::from_secs(600);
    loop {
        let done = completed().await;
        if done >= count {
            return (done - before) as f64 / since.elapsed().as_secs_f64();
        }
        let failed: i64 = db
            .query_one(
                "SELECT count(*) FROM queue.media_jobs WHERE status = 'failed'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(failed, 0, "no job of the benchmark fails");
        assert!(
            Instant::now() < deadline,
            "{done} of {count} jobs completed"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Publishes `count` job messages to `topology`'s media queue with confirms from [`CALLERS`]
/// callers on one channel, each waiting for its confirm before its next (as a request waits for
/// its job); messages per second.
async fn raw_publish(topology: &Topology, count: usize) -> f64 {
    let (_connection, channel) = broker::open(AMQP_URL, "queue bench raw publisher", topology)
        .await
        .unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let exchange = topology.exchange();
    let routing_key = topology.queue(svc_queue::operations::MEDIA_QUEUE);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (channel, next) = (channel.clone(), next.clone());
            let (exchange, routing_key) = (exchange.clone(), routing_key.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < count {
                    let id = Uuid::new_v4();
                    let payload = svc_queue::service::job_message(id, "strip_metadata").to_string();
                    let properties = BasicProperties::default()
                        .with_delivery_mode(2)
                        .with_content_type("application/json".into())
                        .with_message_id(id.to_string().as_str().into());
                    let confirm = channel
                        .basic_publish(
                            exchange.as_str().into(),
                            routing_key.as_str().into(),
                            BasicPublishOptions {
                                mandatory: true,
                                ..BasicPublishOptions::default()
                            },
                            payload.as_bytes(),
                            properties,
                        )
                        .await
                        .unwrap();
                    assert!(confirm.await.unwrap().is_ack());
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await.unwrap();
    }
    count as f64 / started.elapsed().as_secs_f64()
}

/// Consumes and acks `count` messages of `topology`'s media queue with the worker's prefetch;
/// messages per second.
async fn raw_consume(topology: &Topology, count: usize) -> f64 {
    let (_connection, channel) = broker::open(AMQP_URL, "queue bench raw consumer", topology)
        .await
        .unwrap();
    channel
        .basic_qos(CONCURRENCY, BasicQosOptions::default())
        .await
        .unwrap();
    let started = Instant::now();
    let mut consumer = channel
        .basic_consume(
            topology
                .queue(svc_queue::operations::MEDIA_QUEUE)
                .as_str()
                .into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    for _ in 0..count {
        let delivery = consumer.next().await.unwrap().unwrap();
        delivery.ack(BasicAckOptions::default()).await.unwrap();
    }
    count as f64 / started.elapsed().as_secs_f64()
}

/// `count` resizes of `photo` to 640 wide by `svc_queue::media::process`, the worker's own
/// code, on [`CONCURRENCY`] threads; resizes per second.
async fn resize_in_process(photo: &[u8], count: usize) -> f64 {
    let photo: Arc<[u8]> = photo.into();
    let params = json!({"width": 640}).as_object().unwrap().clone();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (photo, params, next) = (photo.clone(), params.clone(), next.clone());
            tokio::task::spawn_blocking(move || {
                while next.fetch_add(1, Ordering::Relaxed) < count {
                    let output = svc_queue::media::process(
                        "resize_image",
                        &params,
                        &photo,
                        &svc_queue::media::Limits::default(),
                    )
                    .unwrap();
                    assert_eq!(output.width, 640);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.await.unwrap();
    }
    count as f64 / started.elapsed().as_secs_f64()
}

/// Every resize job produced a 640×480 file.
async fn check_outputs(db: &tokio_postgres::Client, count: usize) {
    let outputs: i64 = db
        .query_one(
            "SELECT count(*) FROM queue.media_jobs WHERE job_type = 'resize_image' \
             AND status = 'completed' AND (result->>'width')::int = 640 \
             AND (result->>'height')::int = 480",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(outputs as usize, count, "every resize job made its output");
}
