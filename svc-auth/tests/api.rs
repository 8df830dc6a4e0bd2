//! svc-auth over real gRPC on a random port, against a fresh PostgreSQL database per test.
// Test code: a helper of these tests that cannot do its job fails the test, as an assertion
// would. (clippy.toml allows this inside test functions only, not in the helpers beside them.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use common::clock::Clock;

use common::identity::Identity;
use common::secret::Secret;
use common::testing::{
    self, ManualClock, TestService, anonymous, fresh_database, start_service,
    status_reason as reason,
};
use proto::auth::v1 as pb;
use proto::auth::v1::auth_client::AuthClient;
use svc_auth::Config;
use tonic::Code;
use tonic::transport::Channel;
use uuid::Uuid;

const ADMIN_EMAIL: &str = "admin@genie.test";
const ADMIN_PASSWORD: &str = "admin password 1";

struct TestAuth {
    client: AuthClient<Channel>,
    /// The service's clock: it stands still at the start of the test until the test moves it.
    clock: Arc<ManualClock>,
    database_url: String,
    _service: TestService,
}

async fn spawn_auth_with(login_floor: Duration) -> TestAuth {
    let database = fresh_database().await;
    let mut config = Config::local(
        database.url.clone(),
        testing::internal_token(),
        Secret::new("directus secret for the svc-auth tests 0123456789"),
    );
    config.login_floor = login_floor;
    config.admin = Some((ADMIN_EMAIL.into(), Secret::new(ADMIN_PASSWORD)));
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let serving_clock: Arc<dyn Clock> = clock.clone();
    let service = start_service(|listener, stop| {
        svc_auth::run_with_clock(config, listener, stop, serving_clock)
    })
    .await;
    TestAuth {
        client: AuthClient::new(service.channel.clone()),
        clock,
        database_url: database.url,
        _service: service,
    }
}

async fn spawn_auth() -> TestAuth {
    spawn_auth_with(Duration::from_millis(10)).await
}

fn as_user(user: &pb::User) -> Identity {
    testing::user(user.id.parse().unwrap(), &user.role, &user.pricing_tier)
}

impl TestAuth {
    async fn sql(&self) -> tokio_postgres::Client {
        common::testing::connect(&self.database_url).await
    }

    async fn login(&mut self, email: &str, password: &str) -> Result<pb::TokenPair, tonic::Status> {
        let request = testing::request(
            pb::LoginRequest {
                email: email.into(),
                password: password.into(),
            },
            &anonymous(),
        );
        self.client
            .login(request)
            .await
            .map(tonic::Response::into_inner)
    }

    async fn me(&mut self, identity: &Identity) -> pb::User {
        let request = testing::request(pb::MeRequest {}, identity);
        self.client.me(request).await.unwrap().into_inner()
    }

    async fn admin(&mut self) -> pb::User {
        let tokens = self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.unwrap();
        let claims = unverified_claims(&tokens.access_token);
        let id: Uuid = claims["id"].as_str().unwrap().parse().unwrap();
        self.me(&testing::administrator(id)).await
    }

    async fn invite(&mut self, admin: &pb::User, email: Option<&str>) -> String {
        let request = testing::request(
            pb::CreateInviteRequest {
                email: email.map(Into::into),
                expires_in_hours: None,
            },
            &as_user(admin),
        );
        self.client
            .create_invite(request)
            .await
            .unwrap()
            .into_inner()
            .code
    }

    async fn register(&mut self, email: &str, code: &str) -> Result<pb::User, tonic::Status> {
        let request = testing::request(
            pb::RegisterRequest {
                email: email.into(),
                password: "creator password".into(),
                invite_code: code.into(),
                first_name: Some("Ada".into()),
                last_name: None,
            },
            &anonymous(),
        );
        self.client
            .register(request)
            .await
            .map(tonic::Response::into_inner)
    }

    async fn new_creator(&mut self, email: &str) -> pb::User {
        let admin = self.admin().await;
        let code = self.invite(&admin, None).await;
        self.register(email, &code).await.unwrap()
    }
}

fn unverified_claims(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn calls_without_the_internal_token_are_unauthenticated() {
    let mut auth = spawn_auth().await;
    let bare = tonic::Request::new(pb::ResolveRequest {
        user_id: Uuid::new_v4().to_string(),
    });
    let status = auth.client.resolve(bare).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    let forged = common::grpc::outgoing(
        pb::ResolveRequest {
            user_id: Uuid::new_v4().to_string(),
        },
        &anonymous(),
        &Secret::new("not the internal token at all, but long enough"),
        Duration::from_secs(5),
    );
    assert_eq!(
        auth.client.resolve(forged).await.unwrap_err().code(),
        Code::Unauthenticated
    );
}

#[tokio::test]
async fn login_waits_out_the_floor_and_never_tells_which_part_was_wrong() {
    let mut auth = spawn_auth_with(Duration::from_millis(500)).await;
    let started = Instant::now();
    let tokens = auth.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert_eq!(tokens.expires_ms, 900_000);
    assert_eq!(tokens.refresh_token.len(), 64);

    let started = Instant::now();
    let wrong_password = auth.login(ADMIN_EMAIL, "wrong password").await.unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(500));
    let started = Instant::now();
    let unknown_email = auth
        .login("nobody@genie.test", "wrong password")
        .await
        .unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(500));
    for status in [&wrong_password, &unknown_email] {
        assert_eq!(status.code(), Code::Unauthenticated);
        assert_eq!(reason(status), "invalid_credentials");
    }
    assert_eq!(wrong_password.message(), unknown_email.message());

    let missing = auth.login("", "x").await.unwrap_err();
    assert_eq!(missing.code(), Code::InvalidArgument);
    assert_eq!(reason(&missing), "missing_field");
}

#[tokio::test]
async fn access_tokens_carry_the_users_role_uuid() {
    let mut auth = spawn_auth().await;
    let tokens = auth.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.unwrap();
    let claims = unverified_claims(&tokens.access_token);
    let admin = auth.admin().await;
    assert_eq!(claims["role"].as_str().unwrap(), admin.role_id);
    assert_eq!(claims["iss"], "directus");
    assert_eq!(claims["admin_access"], true);
    assert_eq!(claims["app_access"], true);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
}

#[tokio::test]
async fn lifetimes_and_expiries_are_measured_on_the_service_clock() {
    let mut auth = spawn_auth().await;
    let started = auth.clock.now();
    let tokens = auth.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.unwrap();
    let claims = unverified_claims(&tokens.access_token);
    assert_eq!(claims["iat"].as_i64().unwrap(), started.timestamp());
    assert_eq!(claims["exp"].as_i64().unwrap(), started.timestamp() + 900);

    // A refresh token lives 7 days from its issue: one minute short of that it still works,
    // and the pair it gives is issued at the clock's new time.
    let refresh = |token: &str| pb::RefreshRequest {
        refresh_token: token.into(),
    };
    auth.clock
        .advance(TimeDelta::days(7) - TimeDelta::minutes(1));
    let renewed = auth
        .client
        .refresh(testing::request(
            refresh(&tokens.refresh_token),
            &anonymous(),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        unverified_claims(&renewed.access_token)["iat"]
            .as_i64()
            .unwrap(),
        auth.clock.now().timestamp()
    );
    auth.clock
        .advance(TimeDelta::days(7) + TimeDelta::seconds(1));
    let expired = auth
        .client
        .refresh(testing::request(
            refresh(&renewed.refresh_token),
            &anonymous(),
        ))
        .await
        .unwrap_err();
    assert_eq!(expired.code(), Code::Unauthenticated);

    // An invite of 72 hours opens until its last second.
    let admin = auth.admin().await;
    let code = auth.invite(&admin, None).await;
    auth.clock
        .advance(TimeDelta::hours(72) - TimeDelta::seconds(1));
    auth.register("in-time@genie.test", &code).await.unwrap();
}

#[tokio::test]
async fn refresh_rotates_and_a_spent_token_is_rejected_even_under_a_race() {
    let mut auth = spawn_auth().await;
    let first = auth.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.unwrap();
    let refresh = |token: &str| pb::RefreshRequest {
        refresh_token: token.into(),
    };

    let second = auth
        .client
        .refresh(testing::request(
            refresh(&first.refresh_token),
            &anonymous(),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(second.refresh_token, first.refresh_token);
    let reused = auth
        .client
        .refresh(testing::request(
            refresh(&first.refresh_token),
            &anonymous(),
        ))
        .await
        .unwrap_err();
    assert_eq!(reused.code(), Code::Unauthenticated);

    let racers: Vec<_> = (0..8)
        .map(|_| {
            let mut client = auth.client.clone();
            let request = testing::request(refresh(&second.refresh_token), &anonymous());
            tokio::spawn(async move { client.refresh(request).await.is_ok() })
        })
        .collect();
    let mut winners = 0;
    for racer in racers {
        winners += usize::from(racer.await.unwrap());
    }
    assert_eq!(winners, 1, "a refresh token is spent exactly once");
}

#[tokio::test]
async fn logout_ends_the_session() {
    let mut auth = spawn_auth().await;
    let tokens = auth.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.unwrap();
    let logout = testing::request(
        pb::LogoutRequest {
            refresh_token: tokens.refresh_token.clone(),
        },
        &anonymous(),
    );
    auth.client.logout(logout).await.unwrap();
    let refresh = testing::request(
        pb::RefreshRequest {
            refresh_token: tokens.refresh_token,
        },
        &anonymous(),
    );
    assert_eq!(
        auth.client.refresh(refresh).await.unwrap_err().code(),
        Code::Unauthenticated
    );
}

impl TestAuth {
    async fn refresh(&mut self, token: &str) -> Result<pb::TokenPair, tonic::Status> {
        let request = testing::request(
            pb::RefreshRequest {
                refresh_token: token.into(),
            },
            &anonymous(),
        );
        self.client
            .refresh(request)
            .await
            .map(tonic::Response::into_inner)
    }

    async fn sessions_of(&self, user_id: &str) -> i64 {
        let id: Uuid = user_id.parse().unwrap();
        self.sql()
            .await
            .query_one(
                "SELECT count(*) FROM auth.refresh_sessions WHERE user_id = $1",
                &[&id],
            )
            .await
            .unwrap()
            .get(0)
    }

    async fn set_status_in_sql(&self, user_id: &str, status: &str) {
        let id: Uuid = user_id.parse().unwrap();
        self.sql()
            .await
            .execute(
                "UPDATE auth.users SET status = $2 WHERE id = $1",
                &[&id, &status],
            )
            .await
            .unwrap();
    }

    async fn sync(
        &mut self,
        user_id: &str,
        role: Option<&str>,
        status: Option<&str>,
        tier: Option<&str>,
    ) -> pb::User {
        let request = testing::request(
            pb::RbacSyncRequest {
                user_id: user_id.into(),
                role: role.map(Into::into),
                status: status.map(Into::into),
                pricing_tier: tier.map(Into::into),
            },
            &testing::system(),
        );
        self.client.rbac_sync(request).await.unwrap().into_inner()
    }
}

#[tokio::test]
async fn a_refresh_refused_for_a_suspended_user_still_spends_the_token() {
    let mut auth = spawn_auth().await;
    let creator = auth.new_creator("suspended@genie.test").await;
    let tokens = auth
        .login("suspended@genie.test", "creator password")
        .await
        .unwrap();
    // Suspended behind svc-auth's back (a manual fix, a restore), so that only the refresh
    // itself decides what happens to the session.
    auth.set_status_in_sql(&creator.id, "suspended").await;
    let refused = auth.refresh(&tokens.refresh_token).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert_eq!(
        auth.sessions_of(&creator.id).await,
        0,
        "the token was spent"
    );

    auth.set_status_in_sql(&creator.id, "active").await;
    let again = auth.refresh(&tokens.refresh_token).await.unwrap_err();
    assert_eq!(
        again.code(),
        Code::Unauthenticated,
        "reactivation does not bring a refused token back"
    );
}

#[tokio::test]
async fn a_refresh_refused_because_the_session_expired_still_spends_the_token() {
    let mut auth = spawn_auth().await;
    let creator = auth.new_creator("expired@genie.test").await;
    let tokens = auth
        .login("expired@genie.test", "creator password")
        .await
        .unwrap();
    auth.clock
        .advance(TimeDelta::days(7) + TimeDelta::seconds(1));
    let refused = auth.refresh(&tokens.refresh_token).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert_eq!(
        auth.sessions_of(&creator.id).await,
        0,
        "the expired session's row is gone at once, not at the next sweep"
    );
}

#[tokio::test]
async fn suspension_through_rbac_sync_revokes_every_refresh_session() {
    let mut auth = spawn_auth().await;
    let creator = auth.new_creator("revoked@genie.test").await;
    let phone = auth
        .login("revoked@genie.test", "creator password")
        .await
        .unwrap();
    let laptop = auth
        .login("revoked@genie.test", "creator password")
        .await
        .unwrap();
    assert_eq!(auth.sessions_of(&creator.id).await, 2);

    auth.sync(&creator.id, None, Some("suspended"), None).await;
    assert_eq!(auth.sessions_of(&creator.id).await, 0);
    auth.sync(&creator.id, None, Some("active"), None).await;
    for old in [&phone, &laptop] {
        let refused = auth.refresh(&old.refresh_token).await.unwrap_err();
        assert_eq!(
            refused.code(),
            Code::Unauthenticated,
            "reactivation does not bring the old sessions back"
        );
    }
    let fresh = auth
        .login("revoked@genie.test", "creator password")
        .await
        .unwrap();
    auth.refresh(&fresh.refresh_token).await.unwrap();
}

#[tokio::test]
async fn a_role_change_through_rbac_sync_revokes_refresh_sessions_and_a_tier_change_does_not() {
    let mut auth = spawn_auth().await;
    let creator = auth.new_creator("promoted@genie.test").await;
    let tokens = auth
        .login("promoted@genie.test", "creator password")
        .await
        .unwrap();

    // Neither a tier change nor the role the user already has ends the session.
    auth.sync(&creator.id, Some("creator"), None, Some("pro"))
        .await;
    let kept = auth.refresh(&tokens.refresh_token).await.unwrap();

    let user = auth.sync(&creator.id, Some("viewer"), None, None).await;
    assert_eq!(user.role, "viewer");
    assert_eq!(auth.sessions_of(&creator.id).await, 0);
    let refused = auth.refresh(&kept.refresh_token).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn register_redeems_an_invite_once_and_makes_a_starter_creator() {
    let mut auth = spawn_auth().await;
    let admin = auth.admin().await;
    let code = auth.invite(&admin, None).await;
    let user = auth.register("Creator@Genie.test", &code).await.unwrap();
    assert_eq!(user.role, "creator");
    assert_eq!(user.status, "active");
    assert_eq!(user.onboarding_state, "EXTENSION_INSTALL");
    assert_eq!(user.pricing_tier, "starter");
    assert_eq!(user.first_name, "Ada");

    let again = auth.register("other@genie.test", &code).await.unwrap_err();
    assert_eq!(again.code(), Code::PermissionDenied);
    assert_eq!(reason(&again), "invalid_invite");

    let code = auth.invite(&admin, None).await;
    let taken = auth
        .register("creator@genie.test", &code)
        .await
        .unwrap_err();
    assert_eq!(taken.code(), Code::AlreadyExists);
    assert_eq!(reason(&taken), "email_taken");
    assert!(
        auth.register("fresh@genie.test", &code).await.is_ok(),
        "a failed registration leaves the invite unused"
    );

    let tokens = auth
        .login("creator@genie.test", "creator password")
        .await
        .unwrap();
    assert_eq!(tokens.refresh_token.len(), 64);
}

#[tokio::test]
async fn invites_bound_to_an_email_expire_and_need_an_administrator() {
    let mut auth = spawn_auth().await;
    let admin = auth.admin().await;
    let code = auth.invite(&admin, Some("only@genie.test")).await;
    assert_eq!(
        reason(&auth.register("else@genie.test", &code).await.unwrap_err()),
        "invalid_invite"
    );
    auth.register("only@genie.test", &code).await.unwrap();

    let code = auth.invite(&admin, None).await;
    auth.clock
        .advance(TimeDelta::hours(72) + TimeDelta::seconds(1));
    assert_eq!(
        reason(&auth.register("late@genie.test", &code).await.unwrap_err()),
        "invalid_invite"
    );
    assert_eq!(
        reason(
            &auth
                .register("late@genie.test", "made-up")
                .await
                .unwrap_err()
        ),
        "invalid_invite"
    );

    let creator = auth.new_creator("creator@genie.test").await;
    let request = testing::request(pb::CreateInviteRequest::default(), &as_user(&creator));
    assert_eq!(
        auth.client.create_invite(request).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let request = testing::request(
        pb::CreateInviteRequest {
            email: None,
            expires_in_hours: Some(0),
        },
        &as_user(&admin),
    );
    let status = auth.client.create_invite(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        status
            .metadata()
            .get(common::error::FIELD_METADATA)
            .unwrap(),
        "expires_in_hours"
    );
}

#[tokio::test]
async fn register_rejects_bad_fields_naming_them() {
    let mut auth = spawn_auth().await;
    let admin = auth.admin().await;
    let code = auth.invite(&admin, None).await;
    let cases = [
        ("not-an-email", "long enough pw", "email"),
        ("a@genie.test", "short", "password"),
        ("a@genie.test", "", "password"),
        ("", "long enough pw", "email"),
    ];
    for (email, password, field) in cases {
        let request = testing::request(
            pb::RegisterRequest {
                email: email.into(),
                password: password.into(),
                invite_code: code.clone(),
                ..Default::default()
            },
            &anonymous(),
        );
        let status = auth.client.register(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{email} {password}");
        assert_eq!(
            status
                .metadata()
                .get(common::error::FIELD_METADATA)
                .unwrap(),
            field
        );
    }
}

#[tokio::test]
async fn onboarding_moves_forward_for_creators_and_anywhere_for_administrators() {
    let mut auth = spawn_auth().await;
    let creator = auth.new_creator("creator@genie.test").await;
    let admin = auth.admin().await;
    let set = |state: &str, user_id: Option<&str>| pb::SetOnboardingRequest {
        state: state.into(),
        user_id: user_id.map(Into::into),
    };

    let moved = auth
        .client
        .set_onboarding(testing::request(
            set("PROCESSING", None),
            &as_user(&creator),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(moved.state, "PROCESSING");
    let back = auth
        .client
        .set_onboarding(testing::request(
            set("DATA_COLLECTION", None),
            &as_user(&creator),
        ))
        .await
        .unwrap_err();
    assert_eq!(back.code(), Code::PermissionDenied);
    assert_eq!(reason(&back), "onboarding_backward");
    let bad = auth
        .client
        .set_onboarding(testing::request(set("DONE", None), &as_user(&creator)))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);

    let reset = auth
        .client
        .set_onboarding(testing::request(
            set("EXTENSION_INSTALL", Some(&creator.id)),
            &as_user(&admin),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reset.state, "EXTENSION_INSTALL");
    assert_eq!(reset.user_id, creator.id);

    let other = auth
        .client
        .set_onboarding(testing::request(
            set("COMPLETE", Some(&admin.id)),
            &as_user(&creator),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        other.code(),
        Code::NotFound,
        "another user's onboarding is not even visible"
    );
    let state = auth
        .client
        .get_onboarding(testing::request(
            pb::GetOnboardingRequest {},
            &as_user(&creator),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state.state, "EXTENSION_INSTALL");
}

#[tokio::test]
async fn rbac_sync_is_for_the_system_principal_only() {
    let mut auth = spawn_auth().await;
    let creator = auth.new_creator("creator@genie.test").await;
    let sync = |role: Option<&str>, status: Option<&str>| pb::RbacSyncRequest {
        user_id: creator.id.clone(),
        role: role.map(Into::into),
        status: status.map(Into::into),
        pricing_tier: Some("pro".into()),
    };
    let denied = auth
        .client
        .rbac_sync(testing::request(
            sync(Some("administrator"), None),
            &as_user(&creator),
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    let system = testing::system();
    let user = auth
        .client
        .rbac_sync(testing::request(
            sync(Some("viewer"), Some("suspended")),
            &system,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            user.role.as_str(),
            user.status.as_str(),
            user.pricing_tier.as_str()
        ),
        ("viewer", "suspended", "pro")
    );
    let resolved = auth
        .client
        .resolve(testing::request(
            pb::ResolveRequest {
                user_id: creator.id.clone(),
            },
            &anonymous(),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.status, "suspended");
    assert!(
        auth.login("creator@genie.test", "creator password")
            .await
            .is_err(),
        "suspended users cannot log in"
    );

    let bad_role = auth
        .client
        .rbac_sync(testing::request(sync(Some("emperor"), None), &system))
        .await
        .unwrap_err();
    assert_eq!(bad_role.code(), Code::InvalidArgument);
    let mut unknown = sync(Some("viewer"), None);
    unknown.user_id = Uuid::new_v4().to_string();
    assert_eq!(
        auth.client
            .rbac_sync(testing::request(unknown, &system))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
}

#[tokio::test]
async fn impersonation_is_audited_and_for_administrators_only() {
    let mut auth = spawn_auth().await;
    let creator = auth.new_creator("creator@genie.test").await;
    let admin = auth.admin().await;
    let target = |id: &str| pb::ImpersonateRequest { user_id: id.into() };

    let denied = auth
        .client
        .impersonate(testing::request(target(&admin.id), &as_user(&creator)))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    let granted = auth
        .client
        .impersonate(testing::request(target(&creator.id), &as_user(&admin)))
        .await
        .unwrap()
        .into_inner();
    let claims = unverified_claims(&granted.access_token);
    assert_eq!(claims["id"], creator.id.as_str());
    assert_eq!(claims["impersonated_by"], admin.id.as_str());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        600
    );
    let audited: i64 = auth
        .sql()
        .await
        .query_one(
            "SELECT count(*) FROM auth.impersonation_audit WHERE admin_id = $1 AND target_id = $2",
            &[
                &admin.id.parse::<Uuid>().unwrap(),
                &creator.id.parse::<Uuid>().unwrap(),
            ],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(audited, 1);

    let missing = auth
        .client
        .impersonate(testing::request(
            target(&Uuid::new_v4().to_string()),
            &as_user(&admin),
        ))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}

#[tokio::test]
async fn administrators_cannot_be_impersonated_and_impersonators_hold_no_admin_power() {
    let mut auth = spawn_auth().await;
    let admin = auth.admin().await;
    let other_admin = auth.new_creator("second-admin@genie.test").await;
    auth.client
        .rbac_sync(testing::request(
            pb::RbacSyncRequest {
                user_id: other_admin.id.clone(),
                role: Some("administrator".into()),
                status: None,
                pricing_tier: None,
            },
            &testing::system(),
        ))
        .await
        .unwrap();
    let refused = auth
        .client
        .impersonate(testing::request(
            pb::ImpersonateRequest {
                user_id: other_admin.id.clone(),
            },
            &as_user(&admin),
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(
        refused.message().contains("administrators cannot"),
        "{refused:?}"
    );

    // Even a session that claims an administrator's role, when it is an impersonation, can
    // neither impersonate again nor create invites.
    let third = auth.new_creator("third@genie.test").await;
    let mut impersonating = as_user(&admin);
    if let common::identity::Principal::User(user) = &mut impersonating.principal {
        user.impersonated_by = Some(admin.id.parse().unwrap());
    }
    let again = auth
        .client
        .impersonate(testing::request(
            pb::ImpersonateRequest {
                user_id: third.id.clone(),
            },
            &impersonating,
        ))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::PermissionDenied);
    let invite = auth
        .client
        .create_invite(testing::request(
            pb::CreateInviteRequest::default(),
            &impersonating,
        ))
        .await
        .unwrap_err();
    assert_eq!(invite.code(), Code::PermissionDenied);
    let audited: i64 = auth
        .sql()
        .await
        .query_one("SELECT count(*) FROM auth.impersonation_audit", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(audited, 0, "nothing was issued, so nothing is audited");
}

#[tokio::test]
async fn text_the_database_refuses_is_an_invalid_argument_not_an_internal_error() {
    let mut auth = spawn_auth().await;
    let creator = auth.new_creator("creator@genie.test").await;
    let refused = auth
        .client
        .update_profile(testing::request(
            pb::UpdateProfileRequest {
                first_name: Some("Gr\0ce".into()),
                last_name: None,
            },
            &as_user(&creator),
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert_eq!(testing::status_reason(&refused), "invalid_body");
}

#[tokio::test]
async fn profiles_and_avatars() {
    let mut auth = spawn_auth().await;
    let creator = auth.new_creator("creator@genie.test").await;
    let me = as_user(&creator);
    let updated = auth
        .client
        .update_profile(testing::request(
            pb::UpdateProfileRequest {
                first_name: Some("Grace".into()),
                last_name: Some("Hopper".into()),
            },
            &me,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (updated.first_name.as_str(), updated.last_name.as_str()),
        ("Grace", "Hopper")
    );

    let missing = auth
        .client
        .get_avatar(testing::request(pb::GetAvatarRequest {}, &me))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let png = b"\x89PNG\r\n\x1a\nnot really drawn but a PNG by its header".to_vec();
    let with_avatar = auth
        .client
        .set_avatar(testing::request(
            pb::SetAvatarRequest {
                content_type: "image/png".into(),
                image: png.clone(),
            },
            &me,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(with_avatar.avatar_content_type, "image/png");
    let avatar = auth
        .client
        .get_avatar(testing::request(pb::GetAvatarRequest {}, &me))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(avatar.image, png);

    let html = auth
        .client
        .set_avatar(testing::request(
            pb::SetAvatarRequest {
                content_type: "image/png".into(),
                image: b"<html>".to_vec(),
            },
            &me,
        ))
        .await
        .unwrap_err();
    assert_eq!(html.code(), Code::InvalidArgument);
    let mut huge = png.clone();
    huge.resize(2 * 1024 * 1024 + 1, 0);
    let too_large = auth
        .client
        .set_avatar(testing::request(
            pb::SetAvatarRequest {
                content_type: "image/png".into(),
                image: huge,
            },
            &me,
        ))
        .await
        .unwrap_err();
    assert_eq!(reason(&too_large), "payload_too_large");
}

#[tokio::test]
async fn migrations_survive_replicas_starting_together() {
    let database = fresh_database().await;
    let url = database.url.as_str();
    let outcomes = tokio::join!(
        svc_auth::migrate(url),
        svc_auth::migrate(url),
        svc_auth::migrate(url),
        svc_auth::migrate(url),
    );
    for outcome in [outcomes.0, outcomes.1, outcomes.2, outcomes.3] {
        outcome.unwrap();
    }
}

#[tokio::test]
async fn update_me_sets_clears_and_checks_names_and_email() {
    let mut auth = spawn_auth().await;
    let creator = auth.new_creator("me@genie.test").await;
    let other = auth.new_creator("taken@genie.test").await;
    let me = as_user(&creator);
    let update = |first_name: Option<&str>, last_name: Option<&str>, email: Option<&str>| {
        testing::request(
            pb::UpdateMeRequest {
                first_name: first_name.map(Into::into),
                last_name: last_name.map(Into::into),
                email: email.map(Into::into),
            },
            &me,
        )
    };

    let updated = auth
        .client
        .update_me(update(
            Some(" Grace "),
            Some("Hopper"),
            Some(" Grace@Genie.test "),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            updated.first_name.as_str(),
            updated.last_name.as_str(),
            updated.email.as_str()
        ),
        ("Grace", "Hopper", "Grace@Genie.test")
    );
    assert!(
        auth.login("grace@genie.test", "creator password")
            .await
            .is_ok(),
        "the new email logs in"
    );
    assert!(
        auth.login("me@genie.test", "creator password")
            .await
            .is_err(),
        "the old one no longer does"
    );

    // Unset fields stay as they are; an empty name is cleared.
    let cleared = auth
        .client
        .update_me(update(None, Some(""), None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cleared.first_name, "Grace");
    assert_eq!(cleared.last_name, "");
    assert_eq!(cleared.email, "Grace@Genie.test");
    let unchanged = auth
        .client
        .update_me(update(None, None, None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unchanged.first_name, "Grace");

    let taken = auth
        .client
        .update_me(update(Some("Not"), None, Some("TAKEN@genie.test")))
        .await
        .unwrap_err();
    assert_eq!(taken.code(), Code::AlreadyExists);
    assert_eq!(reason(&taken), "email_taken");
    assert_eq!(
        auth.me(&me).await.first_name,
        "Grace",
        "a refused change changes nothing"
    );
    assert_eq!(auth.me(&as_user(&other)).await.email, "taken@genie.test");

    for (request, field) in [
        (update(None, None, Some("not an email")), "email"),
        (update(None, None, Some("  ")), "email"),
        (update(Some(&"x".repeat(101)), None, None), "first_name"),
        (update(None, Some("a\u{7}b"), None), "last_name"),
    ] {
        let err = auth.client.update_me(request).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}");
        assert_eq!(testing::status_field(&err), field);
    }

    let anonymous = auth
        .client
        .update_me(testing::request(
            pb::UpdateMeRequest::default(),
            &anonymous(),
        ))
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
}
