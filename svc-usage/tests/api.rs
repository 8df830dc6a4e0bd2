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

    async fn acquire(
        &self,
        id: Uuid,
        tier: &str,
        operation: &str,
        key: &str,
    ) -> Result<pb::GaugeAnswer, tonic::Status> {
        let mut client = self.client.clone();
        let acquire = pb::AcquireGaugeRequest {
            user_id: id.to_string(),
            tier: tier.into(),
            operation: operation.into(),
            idempotency_key: key.into(),
        };
        client
            .acquire_gauge(request(acquire, &creator(id)))
            .await
            .map(tonic::Response::into_inner)
    }

    async fn release(
        &self,
        id: Uuid,
        operation: &str,
        key: &str,
    ) -> Result<pb::ReleaseGaugeAnswer, tonic::Status> {
        let mut client = self.client.clone();
        let release = pb::ReleaseGaugeRequest {
            user_id: id.to_string(),
            operation: operation.into(),
            idempotency_key: key.into(),
        };
        client
            .release_gauge(request(release, &creator(id)))
            .await
            .map(tonic::Response::into_inner)
    }

    /// `operation`'s entry in the user's report for `tier`: (used, limit, remaining).
    async fn reported(&self, id: Uuid, tier: &str, operation: &str) -> (i64, i64, i64) {
        let mut client = self.client.clone();
        let report = client
            .report(request(
                pb::ReportRequest {
                    user_id: id.to_string(),
                    tier: tier.into(),
                },
                &creator(id),
            ))
            .await
            .unwrap()
            .into_inner();
        let entry = report
            .operations
            .iter()
            .find(|op| op.operation == operation)
            .unwrap();
        (entry.used, entry.limit, entry.remaining)
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
    for profile in 0..9 {
        let platform = usage
            .acquire(id, "studio", "platforms", &format!("profile-{profile}"))
            .await
            .unwrap();
        assert!(platform.granted);
    }
    let tenth = usage
        .acquire(id, "studio", "platforms", "profile-9")
        .await
        .unwrap();
    assert!(!tenth.granted, "studio has 9 platforms, not unlimited");
    assert_eq!((tenth.used, tenth.limit, tenth.remaining), (9, 9, 0));
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

const PLATFORMS_USED: &str = "SELECT coalesce(sum(used), 0)::bigint FROM usage.gauges WHERE user_id = $1 AND operation = 'platforms'";

#[tokio::test]
async fn ten_concurrent_acquires_of_a_limit_of_one_grant_exactly_one() {
    let usage = Arc::new(spawn_usage().await);
    let id = Uuid::new_v4();
    let racers: Vec<_> = (0..10)
        .map(|racer| {
            let usage = Arc::clone(&usage);
            tokio::spawn(async move {
                usage
                    .acquire(id, "starter", "platforms", &format!("profile-{racer}"))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut granted = 0;
    for racer in racers {
        let answer = racer.await.unwrap();
        assert_eq!(answer.limit, 1);
        granted += usize::from(answer.granted);
        if !answer.granted {
            assert_eq!((answer.used, answer.remaining), (1, 0));
        }
    }
    assert_eq!(granted, 1);
    assert_eq!(usage.sql(PLATFORMS_USED, id).await, 1);
    assert_eq!(
        usage
            .sql(
                "SELECT count(*) FROM usage.gauge_holds WHERE user_id = $1 AND released_at IS NULL",
                id
            )
            .await,
        1,
        "the denials bound no key"
    );
    assert_eq!(
        usage
            .sql(
                "SELECT count(*) FROM usage.ledger WHERE user_id = $1 AND kind = 'acquire'",
                id
            )
            .await,
        1
    );
}

#[tokio::test]
async fn a_replayed_acquire_gets_the_first_answer_and_takes_nothing_more() {
    let usage = Arc::new(spawn_usage().await);
    let id = Uuid::new_v4();
    let first = usage
        .acquire(id, "creator", "platforms", "creator_profile:a")
        .await
        .unwrap();
    assert!(first.granted && !first.replayed);
    assert_eq!((first.used, first.limit, first.remaining), (1, 3, 2));
    let racers: Vec<_> = (0..10)
        .map(|_| {
            let usage = Arc::clone(&usage);
            tokio::spawn(async move {
                usage
                    .acquire(id, "creator", "platforms", "creator_profile:a")
                    .await
                    .unwrap()
            })
        })
        .collect();
    for racer in racers {
        let again = racer.await.unwrap();
        assert!(again.granted && again.replayed && !again.released);
        assert_eq!((again.used, again.remaining), (1, 2), "the first answer");
    }
    // Ten new keys at once, each retried at once too: each key takes one unit at most.
    let racers: Vec<_> = (0..20)
        .map(|racer| {
            let usage = Arc::clone(&usage);
            tokio::spawn(async move {
                let key = format!("creator_profile:{}", racer % 10);
                usage
                    .acquire(id, "creator", "platforms", &key)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut granted_keys = std::collections::BTreeSet::new();
    for (racer, handle) in racers.into_iter().enumerate() {
        if handle.await.unwrap().granted {
            granted_keys.insert(racer % 10);
        }
    }
    assert_eq!(granted_keys.len(), 2, "3 in all, one held before");
    assert_eq!(usage.sql(PLATFORMS_USED, id).await, 3);

    let missing = usage
        .acquire(id, "creator", "platforms", "  ")
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::InvalidArgument);
    assert_eq!(field(&missing), "idempotency_key");
}

#[tokio::test]
async fn a_key_of_one_gauge_is_not_taken_for_another() {
    let tiers = svc_usage::tiers::Tiers::parse(
        r#"{"operations": ["platforms", "seats"], "gauges": ["platforms", "seats"],
            "tiers": {"starter": {"price_usd": 0, "seats": 1, "limits": {"platforms": 1, "seats": 2}}}}"#,
    )
    .unwrap();
    let usage = spawn_usage_with(|config| config.tiers = Some(tiers)).await;
    let id = Uuid::new_v4();
    assert!(
        usage
            .acquire(id, "starter", "platforms", "k")
            .await
            .unwrap()
            .granted
    );
    let reused = usage
        .acquire(id, "starter", "seats", "k")
        .await
        .unwrap_err();
    assert_eq!(reused.code(), Code::AlreadyExists);
    assert_eq!(testing::status_reason(&reused), "idempotency_key_reused");
    let released_elsewhere = usage.release(id, "seats", "k").await.unwrap_err();
    assert_eq!(
        testing::status_reason(&released_elsewhere),
        "idempotency_key_reused"
    );
    assert_eq!(usage.sql(PLATFORMS_USED, id).await, 1, "still held");
}

#[tokio::test]
async fn a_release_gives_the_unit_back_once_and_never_below_zero() {
    let usage = Arc::new(spawn_usage().await);
    let id = Uuid::new_v4();
    assert!(
        usage
            .acquire(id, "starter", "platforms", "profile-a")
            .await
            .unwrap()
            .granted
    );
    assert!(
        !usage
            .acquire(id, "starter", "platforms", "profile-b")
            .await
            .unwrap()
            .granted,
        "the starter's one platform is held"
    );
    let racers: Vec<_> = (0..10)
        .map(|_| {
            let usage = Arc::clone(&usage);
            tokio::spawn(async move { usage.release(id, "platforms", "profile-a").await.unwrap() })
        })
        .collect();
    let mut released = 0;
    for racer in racers {
        let answer = racer.await.unwrap();
        assert_eq!((answer.operation.as_str(), answer.used), ("platforms", 0));
        released += usize::from(answer.released);
    }
    assert_eq!(released, 1);
    assert_eq!(usage.reported(id, "starter", "platforms").await, (0, 1, 1));

    // The freed unit can be taken again, under another key (a denied key was bound to nothing).
    let b = usage
        .acquire(id, "starter", "platforms", "profile-b")
        .await
        .unwrap();
    assert!(b.granted && !b.replayed);
    assert_eq!(b.used, 1);
    // The released key itself takes nothing again.
    let a_again = usage
        .acquire(id, "starter", "platforms", "profile-a")
        .await
        .unwrap();
    assert!(!a_again.granted && a_again.replayed && a_again.released);
    assert_eq!(a_again.used, 1);

    // A key released before it was acquired (an acquire whose answer was lost, released to be
    // safe, arriving late): nothing is given back, and the late acquire takes nothing.
    let unknown = usage.release(id, "platforms", "profile-c").await.unwrap();
    assert!(!unknown.released);
    assert_eq!(unknown.used, 1);
    usage.release(id, "platforms", "profile-b").await.unwrap();
    let late = usage
        .acquire(id, "starter", "platforms", "profile-c")
        .await
        .unwrap();
    assert!(!late.granted && late.released);
    assert_eq!(late.used, 0);

    // Never below 0, even with the count lowered behind svc-usage's back.
    assert!(
        usage
            .acquire(id, "starter", "platforms", "profile-d")
            .await
            .unwrap()
            .granted
    );
    let client = common::testing::connect(&usage.database_url).await;
    client
        .execute(
            "UPDATE usage.gauges SET used = 0 WHERE user_id = $1",
            &[&id],
        )
        .await
        .unwrap();
    let floor = usage.release(id, "platforms", "profile-d").await.unwrap();
    assert!(floor.released);
    assert_eq!(floor.used, 0);
    assert_eq!(
        usage
            .sql(
                "SELECT count(*) FROM usage.ledger WHERE user_id = $1 AND kind = 'release'",
                id
            )
            .await,
        3,
        "a, b and d; not c, which held nothing"
    );
    let counter = usage
        .release(id, "captions", "profile-d")
        .await
        .unwrap_err();
    assert_eq!(counter.code(), Code::InvalidArgument);
    assert_eq!(field(&counter), "operation");
}

#[tokio::test]
async fn a_gauge_is_a_standing_count_that_no_cycle_resets() {
    let usage = spawn_usage().await;
    let id = Uuid::new_v4();
    usage
        .clock
        .set(Utc.with_ymd_and_hms(2027, 1, 31, 23, 59, 59).unwrap());
    assert!(
        usage
            .acquire(id, "creator", "platforms", "profile-1")
            .await
            .unwrap()
            .granted
    );
    assert!(
        usage
            .acquire(id, "creator", "platforms", "profile-2")
            .await
            .unwrap()
            .granted
    );
    usage
        .consume(id, "creator", "captions", 50, "")
        .await
        .unwrap();
    assert_eq!(usage.reported(id, "creator", "platforms").await, (2, 3, 1));

    usage
        .clock
        .set(Utc.with_ymd_and_hms(2027, 2, 1, 0, 0, 0).unwrap());
    assert_eq!(
        usage.reported(id, "creator", "captions").await,
        (0, 50, 50),
        "the counter starts afresh"
    );
    assert_eq!(
        usage.reported(id, "creator", "platforms").await,
        (2, 3, 1),
        "the gauge stands"
    );
    let third = usage
        .acquire(id, "creator", "platforms", "profile-3")
        .await
        .unwrap();
    assert!(third.granted);
    assert_eq!((third.used, third.remaining), (3, 0));
    assert!(
        !usage
            .acquire(id, "creator", "platforms", "profile-4")
            .await
            .unwrap()
            .granted,
        "a new month frees no platform"
    );
    let mut client = usage.client.clone();
    let check = client
        .check(request(
            pb::CheckRequest {
                user_id: id.to_string(),
                tier: "creator".into(),
                operation: "platforms".into(),
                amount: 1,
            },
            &creator(id),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((check.granted, check.used, check.remaining), (false, 3, 0));

    // An anchored cycle does not move it either; a downgrade leaves what is held, and nothing
    // more fits.
    client
        .set_cycle_anchor(request(
            pb::SetCycleAnchorRequest {
                user_id: id.to_string(),
                anchor: "2026-12-15T09:30:00Z".into(),
            },
            &administrator(Uuid::new_v4()),
        ))
        .await
        .unwrap();
    assert_eq!(usage.reported(id, "creator", "platforms").await, (3, 3, 0));
    assert_eq!(usage.reported(id, "starter", "platforms").await, (3, 1, 0));
    assert!(
        usage
            .release(id, "platforms", "profile-1")
            .await
            .unwrap()
            .released
    );
    assert_eq!(usage.reported(id, "creator", "platforms").await, (2, 3, 1));
}

#[tokio::test]
async fn consume_refuses_a_gauge_naming_the_operation_and_acquire_a_counter() {
    let usage = spawn_usage().await;
    let id = Uuid::new_v4();
    // Counted monthly before gauges existed: such a row is not the standing count.
    let client = common::testing::connect(&usage.database_url).await;
    client
        .execute(
            "INSERT INTO usage.counters (user_id, operation, cycle_start, used) \
             VALUES ($1, 'platforms', '2026-11-01T00:00:00Z', 1)",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(usage.reported(id, "starter", "platforms").await, (0, 1, 1));

    for key in ["", "k-1"] {
        let refused = usage
            .consume(id, "starter", "platforms", 1, key)
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert_eq!(field(&refused), "operation");
        assert_eq!(testing::status_reason(&refused), "operation_is_a_gauge");
        assert!(
            refused.message().contains("platforms"),
            "{}",
            refused.message()
        );
    }
    let counter = usage
        .acquire(id, "starter", "captions", "k-2")
        .await
        .unwrap_err();
    assert_eq!(counter.code(), Code::InvalidArgument);
    assert_eq!(field(&counter), "operation");
    let unknown = usage
        .acquire(id, "starter", "dancing", "k-2")
        .await
        .unwrap_err();
    assert_eq!(field(&unknown), "operation");
    let tier = usage
        .acquire(id, "gold", "platforms", "k-2")
        .await
        .unwrap_err();
    assert_eq!(field(&tier), "tier");

    let mut client = usage.client.clone();
    let someone_else = client
        .acquire_gauge(request(
            pb::AcquireGaugeRequest {
                user_id: Uuid::new_v4().to_string(),
                tier: "starter".into(),
                operation: "platforms".into(),
                idempotency_key: "k-3".into(),
            },
            &creator(id),
        ))
        .await
        .unwrap_err();
    assert_eq!(someone_else.code(), Code::NotFound);
    let no_token = client
        .release_gauge(tonic::Request::new(pb::ReleaseGaugeRequest {
            user_id: id.to_string(),
            operation: "platforms".into(),
            idempotency_key: "k-3".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(no_token.code(), Code::Unauthenticated);
    assert_eq!(usage.sql(PLATFORMS_USED, id).await, 0);
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
    async fn consuming_a_gauge_is_the_caller_s_mistake_named_by_its_field() {
        let usage = spawn_usage().await;
        let client = quota(&usage);
        // What POST /api/usage/increment answers with `platforms`.
        let refused = client
            .consume(&creator(Uuid::new_v4()), "platforms", 1, None)
            .await
            .unwrap_err();
        assert_eq!(refused.kind, Kind::InvalidArgument);
        assert_eq!(refused.http_status_code(), 400);
        assert_eq!(refused.reason, "operation_is_a_gauge");
        assert_eq!(refused.field.as_deref(), Some("operation"));
    }

    #[tokio::test]
    async fn held_takes_a_unit_for_what_the_work_makes_and_gives_it_back_when_it_fails() {
        let usage = spawn_usage().await;
        let client = quota(&usage);
        let id = Uuid::new_v4();
        let me = creator(id);
        let failed: Result<(), ApiError> = client
            .held(&me, "platforms", "creator_profile:1", || async {
                Err(ApiError::internal())
            })
            .await;
        assert_eq!(failed.unwrap_err().reason, "internal");
        assert_eq!(usage.sql(PLATFORMS_USED, id).await, 0, "given back");

        let made = client
            .held(&me, "platforms", "creator_profile:2", || async {
                Ok("profile 2")
            })
            .await
            .unwrap();
        assert_eq!(made, "profile 2");
        assert_eq!(usage.sql(PLATFORMS_USED, id).await, 1);

        let work_ran = AtomicBool::new(false);
        let over: Result<(), ApiError> = client
            .held(&me, "platforms", "creator_profile:3", || async {
                work_ran.store(true, Ordering::SeqCst);
                Ok(())
            })
            .await;
        let over = over.unwrap_err();
        assert_eq!(
            (over.reason.as_ref(), over.http_status_code()),
            ("limit_reached", 403)
        );
        assert_eq!(over.kind, Kind::QuotaExhausted);
        assert!(!work_ran.load(Ordering::SeqCst));

        let released_key: Result<(), ApiError> = client
            .held(&me, "platforms", "creator_profile:1", || async {
                work_ran.store(true, Ordering::SeqCst);
                Ok(())
            })
            .await;
        assert_eq!(
            released_key.unwrap_err().reason,
            "idempotency_key_released",
            "the failed work's key takes nothing again"
        );
        assert!(!work_ran.load(Ordering::SeqCst));

        assert!(
            client
                .release(&me, "platforms", "creator_profile:2")
                .await
                .unwrap()
        );
        assert!(
            !client
                .release(&me, "platforms", "creator_profile:2")
                .await
                .unwrap()
        );
        assert_eq!(usage.sql(PLATFORMS_USED, id).await, 0);
    }

    #[tokio::test]
    async fn held_with_svc_usage_unreachable_denies_and_never_runs_the_work() {
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
        let work_ran = AtomicBool::new(false);
        let started = Instant::now();
        let denied: Result<(), ApiError> = client
            .held(
                &creator(Uuid::new_v4()),
                "platforms",
                "creator_profile:x",
                || async {
                    work_ran.store(true, Ordering::SeqCst);
                    Ok(())
                },
            )
            .await;
        let denied = denied.unwrap_err();
        assert_eq!(denied.reason, "quota_check_failed");
        assert_eq!(denied.http_status_code(), 403);
        assert!(!work_ran.load(Ordering::SeqCst), "fail-closed");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn an_acquire_whose_answer_is_lost_is_given_back() {
        // svc-usage answers, but later than the client waits: the unit is taken there and the
        // client denies; its release (the same call `held` makes) gives the unit back.
        let usage = spawn_usage().await;
        let id = Uuid::new_v4();
        let me = creator(id);
        let impatient = QuotaClient::new(
            usage.service.channel.clone(),
            testing::internal_token(),
            Duration::from_millis(1),
        );
        let work_ran = AtomicBool::new(false);
        let denied: Result<(), ApiError> = impatient
            .held(&me, "platforms", "creator_profile:late", || async {
                work_ran.store(true, Ordering::SeqCst);
                Ok(())
            })
            .await;
        assert_eq!(denied.unwrap_err().reason, "quota_check_failed");
        assert!(!work_ran.load(Ordering::SeqCst));
        // Whichever reached svc-usage, the acquire or the release, the key holds nothing now
        // (or, if neither did, takes nothing once released).
        let client = quota(&usage);
        client
            .release(&me, "platforms", "creator_profile:late")
            .await
            .unwrap();
        assert_eq!(usage.sql(PLATFORMS_USED, id).await, 0);
        let late = client
            .acquire(&me, "platforms", "creator_profile:late")
            .await;
        assert_eq!(late.unwrap_err().reason, "idempotency_key_released");
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
