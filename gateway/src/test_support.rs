//! What the gateway's unit tests share: a gateway whose upstreams are all down, and a user.

use common::identity::{Identity, UserIdentity};
use common::secret::Secret;

use crate::config::Config;
use crate::state::AppState;

/// The HS256 key of the unit tests' tokens.
pub const DIRECTUS_SECRET: &str = "a directus secret of at least thirty-two bytes";
pub const RBAC_SECRET: &str = "the rbac sync secret";

/// A port nothing listens on: bound, then released.
pub fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// The state of a gateway whose upstreams are all down.
pub fn state_without_upstreams() -> AppState {
    let mut config = Config::local(
        closed_port_url(),
        Secret::new(DIRECTUS_SECRET),
        Secret::new("i".repeat(32)),
        Secret::new(RBAC_SECRET),
    );
    config.usage_grpc_url = closed_port_url();
    config.credentials_grpc_url = closed_port_url();
    config.skills_grpc_url = closed_port_url();
    config.queue_grpc_url = closed_port_url();
    AppState::new(config).unwrap()
}

/// A starter creator.
pub fn creator() -> Identity {
    Identity::user(
        UserIdentity {
            id: uuid::Uuid::new_v4(),
            role: "creator".into(),
            tier: "starter".into(),
            impersonated_by: None,
        },
        "request-1",
    )
}

/// The gateway's routes and fallback on a state without upstreams, for `init_service`.
macro_rules! gateway_app {
    () => {{
        let state = $crate::test_support::state_without_upstreams();
        let document = $crate::openapi::Document::new(&$crate::document()).unwrap();
        $crate::mounted(
            actix_web::App::new()
                .app_data(actix_web::web::Data::new(state))
                .app_data(actix_web::web::Data::new(document)),
        )
        .0
        .default_service(actix_web::web::to($crate::errors::no_route))
    }};
}
pub(crate) use gateway_app;
