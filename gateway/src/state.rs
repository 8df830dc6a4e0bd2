//! What handlers reach through `web::Data<AppState>`. The settings, the user cache and the rate
//! limiter are shared by every worker; each worker has gRPC channels of its own (see
//! [`AppState::for_worker`]).

use std::sync::Arc;

use common::config::ConfigError;
use tonic::transport::Channel;

use crate::auth::TokenVerifier;
use crate::config::Config;
use crate::health::Upstream;
use crate::rate_limit::RegisterLimiter;
use crate::session::UserResolver;
use crate::upstream::AuthService;

pub struct AppState {
    pub config: Arc<Config>,
    pub verifier: Arc<TokenVerifier>,
    pub resolver: Arc<UserResolver>,
    pub register_limiter: Arc<RegisterLimiter>,
    pub auth: AuthService,
    pub upstreams: Vec<Upstream>,
    auth_channel: Channel,
}

fn auth_channel(config: &Config) -> Result<Channel, ConfigError> {
    common::grpc::lazy_channel(
        "AUTH_GRPC_URL",
        &config.auth_grpc_url,
        config.connect_timeout,
    )
}

impl AppState {
    /// Checks the upstream URLs by making their channels. Needs a tokio runtime: a channel starts
    /// its background task where it is made.
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        let auth_channel = auth_channel(&config)?;
        Ok(Self::assemble(
            Arc::new(TokenVerifier::new(
                &config.directus_secret,
                config.jwt_leeway,
            )),
            Arc::new(UserResolver::new(config.resolve_cache_ttl)),
            Arc::new(RegisterLimiter::new(
                config.register_limit,
                config.register_window,
            )),
            Arc::new(config),
            auth_channel,
        ))
    }

    /// The shared parts with channels made on the calling worker's runtime. A channel's tasks and
    /// connection then live on the thread that uses them: no hop to another thread per call,
    /// and one HTTP/2 connection per worker instead of one for all.
    pub fn for_worker(&self) -> Self {
        // The URL was checked in `new`, so this fails only if it cannot fail; the shared channel
        // still works then, with the extra hop.
        let auth_channel = auth_channel(&self.config).unwrap_or_else(|_| self.auth_channel.clone());
        Self::assemble(
            self.verifier.clone(),
            self.resolver.clone(),
            self.register_limiter.clone(),
            self.config.clone(),
            auth_channel,
        )
    }

    fn assemble(
        verifier: Arc<TokenVerifier>,
        resolver: Arc<UserResolver>,
        register_limiter: Arc<RegisterLimiter>,
        config: Arc<Config>,
        auth_channel: Channel,
    ) -> Self {
        Self {
            auth: AuthService::new(
                auth_channel.clone(),
                config.internal_token.clone(),
                config.upstream_timeout,
            ),
            upstreams: vec![Upstream::new(
                "svc-auth",
                proto::auth::v1::auth_server::SERVICE_NAME,
                auth_channel.clone(),
            )],
            verifier,
            resolver,
            register_limiter,
            config,
            auth_channel,
        }
    }
}

/// The state an extractor needs; its absence is a wiring bug of `build`, answered as a 500.
pub fn of_request(
    req: &actix_web::HttpRequest,
) -> Result<&actix_web::web::Data<AppState>, common::ApiError> {
    req.app_data::<actix_web::web::Data<AppState>>()
        .ok_or_else(|| {
            tracing::error!("the application state is not registered");
            common::ApiError::internal()
        })
}
