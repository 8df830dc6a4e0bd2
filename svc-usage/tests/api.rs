//! svc-usage over real gRPC on a random port, against a fresh PostgreSQL database per test, with
//! a clock the tests move.
// Test code: a helper of these tests that cannot do its job fails the test, as an assertion
// would. (clippy.toml allows this inside test functions only, not in the helpers beside them.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use common::secret::Secret;
use common::testing::{
    self, ManualClock, TestService, administrator, creator, fresh_database, random_listener,
    request, start_service, status_field as field,
};
use proto::usage::v1 as pb;
use proto::usage::v1::usage_client::UsageClient;
use svc_usage::{Clock, Config};
use tonic::Code;
use tonic::transport::Channel;
use uuid::Uuid;

struct TestUsage {
    service: TestService,
    client: UsageClient<Channel>,
    clock: Arc<ManualClock>,
    database_url: String,
}

async fn spawn_usage() -> TestUsage {
    spawn_usage_with(|_| {}).await
}

/// svc-usage with its configuration adjusted by `configure`.
async fn spawn_usage_with(configure: impl FnOnce(&mut Config)) -> TestUsage {
    let database = fresh_database().await;
    let mut config = Config::local(database.url.clone(), testing::internal_token());
    configure(&mut config);
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap(),
    ));
    let serving_clock: Arc<dyn Clock> = clock.clone();
    let service = start_service(|listener, stop| {
        svc_usage::run_with_clock(config, listener, stop, serving_clock)
    })
    .await;
    TestUsage {
        client: UsageClient::new(service.channel.clone()),
        service,
        clock,
        database_url: database.url,
    }
}

fn consume(
    user_id: Uuid,
    tier: &str,
    operation: &str,
    amount: i64,
    key: &str,
) -> pb::ConsumeRequest {
    pb::ConsumeRequest {
        user_id: user_id.to_string(),
        tier: tier.into(),
        operation: operation.into(),
        amount,
        idempotency_key: key.into(),
    }
}

impl TestUsage {
    async fn consume(
        &self,
        id: Uuid,
        tier: &str,
        operation: &str,
        amount: i64,
        key: &str,
    ) -> Result<pb::QuotaAnswer, tonic::Status> {
        let mut client = self.client.clone();
        client
            .consume(request(
                consume(id, tier, operation, amount, key),
                &creator(id),
            ))
            .await
            .map(tonic::Response::into_inner)
    }

    async fn refund(&self, id: Uuid, key: &str) -> Result<pb::RefundAnswer, tonic::Status> {
        let mut client = self.client.clone();
        let refund = pb::RefundRequest {
            user_id: id.to_string(),
            idempotency_key: key.into(),
        };
        client
            .refund(request(refund, &creator(id)))
            .await
            .map(tonic::Response::into_inner)
    }

    async fn sql(&self, query: &str, id: Uuid) -> i64 {
        let client = common::testing::connect(&self.database_url).await;
        client.query_one(query, &[&id]).await.unwrap().get(0)
    }
}

#[tokio::test]
async fn two_hundred_concurrent_consumes_of_a_limit_of_fifty_grant_exactly_fifty() {
    // 200 calls queue for 16 connections and one counter row: on a busy machine the last ones
    // wait longer than the pool's default, and this test is about the count, not load shedding.
    let usage = Arc::new(
        spawn_usage_with(|config| {
            config.database.pool_wait_timeout = Duration::from_secs(60);
        })
        .await,
    );
    let id = Uuid::new_v4();
    let racers: Vec<_> = (0..200)
        .map(|_| {
            let usage = Arc::clone(&usage);
            tokio::spawn(async move {
                usage
                    .consume(id, "creator", "captions", 1, "")
                    .await
                    .unwrap()
                    .granted
            })
        })
        .collect();
    let mut granted = 0;
    for racer in racers {
        granted += usize::from(racer.await.unwrap());
    }
    assert_eq!(granted, 50);
    let counted = usage
        .sql(
            "SELECT used FROM usage.counters WHERE user_id = $1 AND operation = 'captions'",
            id,
        )
        .await;
    assert_eq!(counted, 50);
    let ledger = usage
        .sql(
            "SELECT count(*) FROM usage.ledger WHERE user_id = $1 AND kind = 'consume'",
            id,
        )
        .await;
    assert_eq!(ledger, 50);
}

#[tokio::test]
async fn a_replayed_key_gets_the_first_answer_and_counts_nothing() {
    let usage = spawn_usage().await;
    let id = Uuid::new_v4();
    let first = usage
        .consume(id, "starter", "captions", 2, "req-1")
        .await
        .unwrap();
    assert!(first.granted);
    assert!(!first.replayed);
    assert_eq!((first.used, first.limit, first.remaining), (2, 3, 1));
    let again = usage
        .consume(id, "starter", "captions", 2, "req-1")
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!((again.granted, again.used, again.remaining), (true, 2, 1));

    let denied = usage
        .consume(id, "starter", "captions", 2, "req-2")
        .await
        .unwrap();
    assert!(!denied.granted, "2 + 2 exceeds 3");
    assert_eq!(denied.used, 2);
    let fits = usage
        .consume(id, "starter", "captions", 1, "req-3")
        .await
        .unwrap();
    assert!(fits.granted);
    let denied_again = usage
        .consume(id, "starter", "captions", 2, "req-2")
        .await
        .unwrap();
    assert!(
        !denied_again.granted && denied_again.replayed,
        "the first answer, even a denial"
    );

    let reused = usage
        .consume(id, "starter", "captions", 1, "req-1")
        .await
        .unwrap_err();
    assert_eq!(reused.code(), Code::AlreadyExists);
    assert_eq!(field(&reused), "idempotency_key");
    let other_operation = usage
        .consume(id, "starter", "taxonomy_ai", 2, "req-1")
        .await
        .unwrap_err();
    assert_eq!(other_operation.code(), Code::AlreadyExists);
    assert_eq!(
        usage
            .sql(
                "SELECT used FROM usage.counters WHERE user_id = $1 AND operation = 'captions'",
                id
            )
            .await,
        3
    );
}

#[tokio::test]
async fn a_key_is_bound_to_the_digest_of_its_request() {
    let usage = spawn_usage().await;
    let id = Uuid::new_v4();
    usage
        .consume(id, "starter", "captions", 2, "bound")
        .await
        .unwrap();
    // The digest svc-usage stored is the one its SQL fallback and migration V2 compute.
    assert_eq!(
        usage
            .sql(
                "SELECT count(*) FROM usage.idempotency_keys WHERE user_id = $1 AND key = 'bound' \
                 AND request_hash = sha256(convert_to('captions' || E'\\n' || '2', 'UTF8'))",
                id
            )
            .await,
        1
    );
    assert_eq!(
        svc_usage::service::request_hash("captions", 2).len(),
        32,
        "SHA-256"
    );
    let reused = usage
        .consume(id, "starter", "captions", 1, "bound")
        .await
        .unwrap_err();
    assert_eq!(reused.code(), Code::AlreadyExists);
    assert_eq!(testing::status_reason(&reused), "idempotency_key_reused");
    let as_http = common::ApiError::from(reused);
    assert_eq!(as_http.http_status_code(), 409);
    assert_eq!(as_http.reason, "idempotency_key_reused");

    // A key written by a replica of the previous version (no digest) is compared by the digest
    // of its own operation and amount.
    let client = common::testing::connect(&usage.database_url).await;
    client
        .execute(
            "INSERT INTO usage.idempotency_keys (user_id, key, operation, amount, granted, used, \
             limit_value, cycle_start, cycle_end) \
             VALUES ($1, 'old', 'taxonomy_ai', 3, true, 3, 10, now(), now() + interval '1 month')",
            &[&id],
        )
        .await
        .unwrap();
    let replayed = usage
        .consume(id, "starter", "taxonomy_ai", 3, "old")
        .await
        .unwrap();
    assert!(replayed.replayed && replayed.granted);
    let reused = usage
        .consume(id, "starter", "taxonomy_ai", 4, "old")
        .await
        .unwrap_err();
    assert_eq!(testing::status_reason(&reused), "idempotency_key_reused");
}

#[tokio::test]
async fn a_replay_after_a_refund_is_not_granted() {
    let usage = spawn_usage().await;
    let id = Uuid::new_v4();
    let first = usage
        .consume(id, "starter", "ai_media_ops", 2, "failed-job")
        .await
        .unwrap();
    assert!(first.granted);
    assert!(usage.refund(id, "failed-job").await.unwrap().refunded);
    let again = usage
        .consume(id, "starter", "ai_media_ops", 2, "failed-job")
        .await
        .unwrap();
    assert!(again.replayed);
    assert!(again.refunded);
    assert!(!again.granted, "what it granted was given back");
    assert_eq!(
        usage
            .sql(
                "SELECT used FROM usage.counters WHERE user_id = $1 AND operation = 'ai_media_ops'",
                id
            )
            .await,
        0,
        "nothing counted again"
    );
}

#[tokio::test]
async fn concurrent_retries_with_one_key_count_once() {
    let usage = Arc::new(spawn_usage().await);
    let id = Uuid::new_v4();
    let racers: Vec<_> = (0..20)
        .map(|_| {
            let usage = Arc::clone(&usage);
            tokio::spawn(async move {
                usage
                    .consume(id, "pro", "captions", 5, "same-key")
                    .await
                    .unwrap()
            })
        })
        .collect();
    for racer in racers {
        let answer = racer.await.unwrap();
        assert!(answer.granted);
        assert_eq!(answer.used, 5);
    }
    assert_eq!(
        usage
            .sql("SELECT count(*) FROM usage.ledger WHERE user_id = $1", id)
            .await,
        1
    );
}

#[tokio::test]
async fn concurrent_retries_of_a_denial_with_one_key_store_one_answer() {
    let usage = Arc::new(spawn_usage().await);
    let id = Uuid::new_v4();
    let racers: Vec<_> = (0..20)
        .map(|_| {
            let usage = Arc::clone(&usage);
            tokio::spawn(async move {
                usage
                    .consume(id, "starter", "captions", 5, "too-much")
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut replayed = 0;
    for racer in racers {
        let answer = racer.await.unwrap();
        assert!(!answer.granted, "5 exceeds the starter's 3");
        assert_eq!(answer.used, 0);
        replayed += usize::from(answer.replayed);
    }
    assert_eq!(replayed, 19, "one decided, the others got its answer");
    assert_eq!(
        usage
            .sql(
                "SELECT count(*) FROM usage.idempotency_keys WHERE user_id = $1 AND NOT granted",
                id
            )
            .await,
        1
    );
    assert_eq!(
        usage
            .sql("SELECT count(*) FROM usage.ledger WHERE user_id = $1", id)
            .await,
        0
    );
}

#[tokio::test]
async fn refunds_restore_exactly_once() {
    let usage = Arc::new(spawn_usage().await);
    let id = Uuid::new_v4();
    usage
        .consume(id, "starter", "ai_media_ops", 4, "job-1")
        .await
        .unwrap();
    let racers: Vec<_> = (0..10)
        .map(|_| {
            let usage = Arc::clone(&usage);
            tokio::spawn(async move { usage.refund(id, "job-1").await.unwrap().refunded })
        })
        .collect();
    let mut refunded = 0;
    for racer in racers {
        refunded += usize::from(racer.await.unwrap());
    }
    assert_eq!(refunded, 1);
    let after = usage
        .consume(id, "starter", "ai_media_ops", 5, "job-2")
        .await
        .unwrap();
    assert!(after.granted, "the refunded 4 are available again");
    assert_eq!(after.used, 5);
    let ledger = usage
        .sql(
            "SELECT count(*) FROM usage.ledger WHERE user_id = $1 AND kind = 'refund'",
            id,
        )
        .await;
    assert_eq!(ledger, 1);

    let denied = usage
        .consume(id, "starter", "ai_media_ops", 1, "job-3")
        .await
        .unwrap();
    assert!(!denied.granted);
    assert!(
        !usage.refund(id, "job-3").await.unwrap().refunded,
        "a denial took nothing to give back"
    );
    let unknown = usage.refund(id, "never-used").await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn unlimited_tiers_never_deny() {
    let usage = spawn_usage().await;
    let id = Uuid::new_v4();
    for _ in 0..20 {
        let answer = usage
            .consume(id, "studio", "captions", 1000, "")
            .await
            .unwrap();
        assert!(answer.granted);
        assert_eq!((answer.limit, answer.remaining), (-1, -1));
    }
    let platforms = usage
        .consume(id, "studio", "platforms", 10, "")
        .await
        .unwrap();
    assert!(!platforms.granted, "studio has 9 platforms, not unlimited");
}

#[tokio::test]
async fn crossing_the_month_boundary_resets_and_anchors_move_the_cycle() {
    let usage = spawn_usage().await;
    let id = Uuid::new_v4();
    usage
        .clock
        .set(Utc.with_ymd_and_hms(2027, 1, 31, 23, 59, 59).unwrap());
    let full = usage
        .consume(id, "starter", "captions", 3, "")
        .await
        .unwrap();
    assert!(full.granted);
    assert_eq!(full.cycle_start, "2027-01-01T00:00:00Z");
    assert_eq!(full.cycle_end, "2027-02-01T00:00:00Z");
    assert!(
        !usage
            .consume(id, "starter", "captions", 1, "")
            .await
            .unwrap()
            .granted
    );

    usage
        .clock
        .set(Utc.with_ymd_and_hms(2027, 2, 1, 0, 0, 0).unwrap());
    let fresh = usage
        .consume(id, "starter", "captions", 1, "")
        .await
        .unwrap();
    assert!(fresh.granted);
    assert_eq!(fresh.used, 1);
    assert_eq!(fresh.cycle_start, "2027-02-01T00:00:00Z");
    let mut client = usage.client.clone();
    let check = client
        .check(request(
            pb::CheckRequest {
                user_id: id.to_string(),
                tier: "starter".into(),
                operation: "captions".into(),
                amount: 2,
            },
            &creator(id),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (check.granted, check.used),
        (true, 1),
        "January's counter is not February's"
    );
    let report = client
        .report(request(
            pb::ReportRequest {
                user_id: id.to_string(),
                tier: "starter".into(),
            },
            &creator(id),
        ))
        .await
        .unwrap()
        .into_inner();
    let captions = report
        .operations
        .iter()
        .find(|op| op.operation == "captions")
        .unwrap();
    assert_eq!((captions.used, captions.remaining), (1, 2));

    let admin = administrator(Uuid::new_v4());
    let anchor = pb::SetCycleAnchorRequest {
        user_id: id.to_string(),
        anchor: "2026-12-15T09:30:00Z".into(),
    };
    let denied = client
        .set_cycle_anchor(request(anchor.clone(), &creator(id)))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let set = client
        .set_cycle_anchor(request(anchor, &admin))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (set.cycle_start.as_str(), set.cycle_end.as_str()),
        ("2027-01-15T09:30:00Z", "2027-02-15T09:30:00Z")
    );
    let report = client
        .report(request(
            pb::ReportRequest {
                user_id: id.to_string(),
                tier: "starter".into(),
            },
            &creator(id),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(report.cycle_start, "2027-01-15T09:30:00Z");
    let captions = report
        .operations
        .iter()
        .find(|op| op.operation == "captions")
        .unwrap();
    assert_eq!(
        captions.used, 0,
        "the anchored cycle started on the 15th; what was counted belongs to the calendar months"
    );
    assert_eq!(report.operations.len(), 6);
}

#[tokio::test]
async fn bad_requests_name_their_field_and_users_cannot_touch_each_other() {
    let usage = spawn_usage().await;
    let id = Uuid::new_v4();
    for (message, expected) in [
        (consume(id, "starter", "dancing", 1, ""), "operation"),
        (consume(id, "starter", "captions", 0, ""), "amount"),
        (consume(id, "starter", "captions", 1001, ""), "amount"),
        (consume(id, "gold", "captions", 1, ""), "tier"),
        (
            consume(id, "starter", "captions", 1, &"k".repeat(300)),
            "idempotency_key",
        ),
    ] {
        let mut client = usage.client.clone();
        let status = client
            .consume(request(message, &creator(id)))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(field(&status), expected);
    }
    let mut client = usage.client.clone();
    let mut missing = consume(id, "starter", "captions", 1, "");
    missing.user_id = String::new();
    let status = client
        .consume(request(missing, &creator(id)))
        .await
        .unwrap_err();
    assert_eq!(field(&status), "user_id");

    let someone_else = client
        .consume(request(
            consume(Uuid::new_v4(), "starter", "captions", 1, ""),
            &creator(id),
        ))
        .await
        .unwrap_err();
    assert_eq!(someone_else.code(), Code::NotFound);
    let anonymous = client
        .consume(request(
            consume(id, "starter", "captions", 1, ""),
            &testing::anonymous(),
        ))
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::PermissionDenied);
    let no_token = client
        .consume(tonic::Request::new(consume(
            id, "starter", "captions", 1, "",
        )))
        .await
        .unwrap_err();
    assert_eq!(no_token.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn the_ledger_is_append_only() {
    let usage = spawn_usage().await;
    let id = Uuid::new_v4();
    usage
        .consume(id, "starter", "captions", 1, "")
        .await
        .unwrap();
    let client = common::testing::connect(&usage.database_url).await;
    let rewrite = client
        .execute(
            "UPDATE usage.ledger SET amount = 0 WHERE user_id = $1",
            &[&id],
        )
        .await;
    assert!(rewrite.is_err());
    let erase = client
        .execute("DELETE FROM usage.ledger WHERE user_id = $1", &[&id])
        .await;
    assert!(erase.is_err());
}

mod quota_client {
    use super::*;
    use common::quota::{Guarded, QuotaClient};
    use common::{ApiError, Kind};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;

    fn quota(usage: &TestUsage) -> QuotaClient {
        QuotaClient::new(
            usage.service.channel.clone(),
            testing::internal_token(),
            Duration::from_secs(2),
        )
    }

    #[tokio::test]
    async fn grants_then_refuses_with_the_upgrade_message() {
        let usage = spawn_usage().await;
        let client = quota(&usage);
        let me = creator(Uuid::new_v4());
        for used in 1..=3 {
            let answer = client.consume(&me, "captions", 1, None).await.unwrap();
            assert_eq!(answer.used, used);
        }
        let refused = client.consume(&me, "captions", 1, None).await.unwrap_err();
        assert_eq!(refused.kind, Kind::QuotaExhausted);
        assert_eq!(refused.reason, "limit_reached");
        assert_eq!(refused.http_status_code(), 403);
        let bad = client.consume(&me, "dancing", 1, None).await.unwrap_err();
        assert_eq!(
            bad.kind,
            Kind::InvalidArgument,
            "the caller's mistake is not a quota failure"
        );
    }

    #[tokio::test]
    async fn work_that_fails_after_the_quota_was_taken_is_refunded() {
        let usage = spawn_usage().await;
        let client = quota(&usage);
        let id = Uuid::new_v4();
        let me = creator(id);
        let failed: Result<Guarded<()>, ApiError> = client
            .guarded(&me, "ai_media_ops", 5, None, || async {
                Err(ApiError::internal())
            })
            .await;
        assert!(failed.is_err());
        let done = client
            .guarded(&me, "ai_media_ops", 5, Some("job-7"), || async {
                Ok("converted")
            })
            .await
            .unwrap();
        assert_eq!(done, Guarded::Done("converted"));
        assert_eq!(
            usage.sql("SELECT used FROM usage.counters WHERE user_id = $1 AND operation = 'ai_media_ops'", id).await,
            5,
            "the failed job's 5 were given back, so the second job's 5 fit"
        );
    }

    #[tokio::test]
    async fn a_replayed_key_neither_runs_the_work_nor_refunds() {
        let usage = spawn_usage().await;
        let client = quota(&usage);
        let id = Uuid::new_v4();
        let me = creator(id);
        let first = client
            .guarded(&me, "ai_media_ops", 5, Some("job-1"), || async {
                Ok("converted")
            })
            .await
            .unwrap();
        assert_eq!(first, Guarded::Done("converted"));

        let work_ran = AtomicBool::new(false);
        let again: Result<Guarded<&str>, ApiError> = client
            .guarded(&me, "ai_media_ops", 5, Some("job-1"), || async {
                work_ran.store(true, Ordering::SeqCst);
                Err(ApiError::internal())
            })
            .await;
        let Ok(Guarded::Replayed(answer)) = again else {
            panic!("a replay returns the stored answer: {again:?}");
        };
        assert!(answer.granted && answer.replayed && !answer.refunded);
        assert_eq!(answer.used, 5);
        assert!(!work_ran.load(Ordering::SeqCst), "the work ran once only");
        assert_eq!(
            usage.sql("SELECT used FROM usage.counters WHERE user_id = $1 AND operation = 'ai_media_ops'", id).await,
            5,
            "the first job's consumption stands"
        );
        assert_eq!(
            usage
                .sql(
                    "SELECT count(*) FROM usage.ledger WHERE user_id = $1 AND kind = 'refund'",
                    id
                )
                .await,
            0
        );
    }

    #[tokio::test]
    async fn a_replay_after_a_refund_runs_nothing_and_is_not_granted() {
        let usage = spawn_usage().await;
        let client = quota(&usage);
        let id = Uuid::new_v4();
        let me = creator(id);
        let failed: Result<Guarded<()>, ApiError> = client
            .guarded(&me, "ai_media_ops", 2, Some("job-2"), || async {
                Err(ApiError::internal())
            })
            .await;
        assert_eq!(failed.unwrap_err().reason, "internal");

        let work_ran = AtomicBool::new(false);
        let retried: Result<Guarded<()>, ApiError> = client
            .guarded(&me, "ai_media_ops", 2, Some("job-2"), || async {
                work_ran.store(true, Ordering::SeqCst);
                Ok(())
            })
            .await;
        let err = retried.unwrap_err();
        assert_eq!(err.reason, "idempotency_key_refunded");
        assert_eq!(err.http_status_code(), 409);
        assert!(!work_ran.load(Ordering::SeqCst));
        let plain = client
            .consume(&me, "ai_media_ops", 2, Some("job-2"))
            .await
            .unwrap_err();
        assert_eq!(
            plain.reason, "idempotency_key_refunded",
            "never reported granted"
        );
        assert_eq!(
            usage.sql("SELECT used FROM usage.counters WHERE user_id = $1 AND operation = 'ai_media_ops'", id).await,
            0
        );
        assert_eq!(
            usage
                .sql(
                    "SELECT count(*) FROM usage.ledger WHERE user_id = $1 AND kind = 'refund'",
                    id
                )
                .await,
            1,
            "refunded once"
        );
    }

    #[tokio::test]
    async fn a_key_reused_with_another_request_is_a_conflict() {
        let usage = spawn_usage().await;
        let client = quota(&usage);
        let me = creator(Uuid::new_v4());
        client
            .consume(&me, "captions", 1, Some("caption-1"))
            .await
            .unwrap();
        let work_ran = AtomicBool::new(false);
        let reused: Result<Guarded<()>, ApiError> = client
            .guarded(&me, "captions", 2, Some("caption-1"), || async {
                work_ran.store(true, Ordering::SeqCst);
                Ok(())
            })
            .await;
        let err = reused.unwrap_err();
        assert_eq!(err.kind, Kind::Conflict);
        assert_eq!(err.reason, "idempotency_key_reused");
        assert_eq!(err.http_status_code(), 409);
        assert!(!work_ran.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn an_unreachable_service_denies_quickly() {
        let (listener, addr) = random_listener().await;
        drop(listener);
        let channel = common::grpc::lazy_channel(
            "USAGE_GRPC_URL",
            &format!("http://{addr}"),
            Duration::from_millis(500),
        )
        .unwrap();
        let client = QuotaClient::new(
            channel,
            Secret::new("whatever token, long enough to pass"),
            Duration::from_secs(2),
        );
        let started = Instant::now();
        let denied = client
            .consume(&creator(Uuid::new_v4()), "captions", 1, None)
            .await
            .unwrap_err();
        assert_eq!(denied.reason, "quota_check_failed");
        assert_eq!(denied.http_status_code(), 403);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "took {:?}",
            started.elapsed()
        );
        let work_ran = std::sync::atomic::AtomicBool::new(false);
        let guarded: Result<Guarded<()>, ApiError> = client
            .guarded(&creator(Uuid::new_v4()), "captions", 1, None, || async {
                work_ran.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            })
            .await;
        assert_eq!(guarded.unwrap_err().reason, "quota_check_failed");
        assert!(
            !work_ran.load(std::sync::atomic::Ordering::SeqCst),
            "fail-closed: the work never ran"
        );
    }

    #[tokio::test]
    async fn a_wrong_internal_token_denies_too() {
        let usage = spawn_usage().await;
        let client = QuotaClient::new(
            usage.service.channel.clone(),
            Secret::new("not the internal token of this service at all"),
            Duration::from_secs(2),
        );
        let denied = client
            .consume(&creator(Uuid::new_v4()), "captions", 1, None)
            .await
            .unwrap_err();
        assert_eq!(denied.reason, "quota_check_failed");
    }
}
