//! What handlers reach through `web::Data<AppState>`. The settings, the user cache and the rate
//! limiter are shared by every worker; each worker has gRPC channels of its own (see
//! [`AppState::for_worker`]).

use std::sync::Arc;

use common::config::ConfigError;
use common::quota::QuotaClient;
use tonic::transport::Channel;

use crate::auth::TokenVerifier;
use crate::config::Config;
use crate::health::Upstream;
use crate::rate_limit::Limits;
use crate::session::UserResolver;
use crate::upstream::{
    AuthClient, AuthService, CredentialsClient, CredentialsService, QueueClient, QueueService,
    SkillsClient, SkillsService, UsageClient, UsageService,
};

pub struct AppState {
    pub config: Arc<Config>,
    pub verifier: Arc<TokenVerifier>,
    pub resolver: Arc<UserResolver>,
    /// The rate limits of registrations and logins.
    pub limits: Arc<Limits>,
    pub auth: AuthService,
    /// svc-usage for reads (the usage report), with the ordinary upstream deadline.
    pub usage: UsageService,
    /// svc-usage for quota consumption: short deadline, fail-closed.
    pub quota: QuotaClient,
    /// svc-credentials: the vault of platform logins, sessions and secrets.
    pub credentials: CredentialsService,
    /// svc-skills: the agent skills catalogue.
    pub skills: SkillsService,
    /// svc-queue: media jobs.
    pub queue: QueueService,
    pub upstreams: Vec<Upstream>,
    channels: Channels,
}

/// One lazy channel per upstream service.
#[derive(Clone)]
struct Channels {
    auth: Channel,
    usage: Channel,
    credentials: Channel,
    skills: Channel,
    queue: Channel,
}

impl Channels {
    fn new(config: &Config) -> Result<Self, ConfigError> {
        let lazy =
            |variable, url: &str| common::grpc::lazy_channel(variable, url, config.connect_timeout);
        Ok(Self {
            auth: lazy("AUTH_GRPC_URL", &config.auth_grpc_url)?,
            usage: lazy("USAGE_GRPC_URL", &config.usage_grpc_url)?,
            credentials: lazy("CREDENTIALS_GRPC_URL", &config.credentials_grpc_url)?,
            skills: lazy("SKILLS_GRPC_URL", &config.skills_grpc_url)?,
            queue: lazy("QUEUE_GRPC_URL", &config.queue_grpc_url)?,
        })
    }
}

impl AppState {
    /// Checks the upstream URLs by making their channels. Needs a tokio runtime: a channel starts
    /// its background task where it is made.
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        let channels = Channels::new(&config)?;
        Ok(Self::assemble(
            Arc::new(TokenVerifier::new(
                &config.directus_secret,
                config.jwt_leeway,
            )),
            Arc::new(UserResolver::new(config.resolve_cache_ttl)),
            Arc::new(Limits::new(&config)?),
            Arc::new(config),
            channels,
        ))
    }

    /// The shared parts with channels made on the calling worker's runtime. A channel's tasks and
    /// connection then live on the thread that uses them: no hop to another thread per call,
    /// and one HTTP/2 connection per worker instead of one for all.
    pub fn for_worker(&self) -> Self {
        // The URLs were checked in `new`, so this fails only if it cannot fail; the shared
        // channels still work then, with the extra hop.
        let channels = Channels::new(&self.config).unwrap_or_else(|_| self.channels.clone());
        Self::assemble(
            self.verifier.clone(),
            self.resolver.clone(),
            self.limits.clone(),
            self.config.clone(),
            channels,
        )
    }

    fn assemble(
        verifier: Arc<TokenVerifier>,
        resolver: Arc<UserResolver>,
        limits: Arc<Limits>,
        config: Arc<Config>,
        channels: Channels,
    ) -> Self {
        let token = &config.internal_token;
        Self {
            auth: AuthService::new(
                channels.auth.clone(),
                token.clone(),
                config.upstream_timeout,
            ),
            usage: UsageService::new(
                channels.usage.clone(),
                token.clone(),
                config.upstream_timeout,
            ),
            quota: QuotaClient::new(channels.usage.clone(), token.clone(), config.quota_timeout),
            credentials: CredentialsService::new(
                channels.credentials.clone(),
                token.clone(),
                config.upstream_timeout,
            ),
            skills: SkillsService::new(
                channels.skills.clone(),
                token.clone(),
                config.upstream_timeout,
            ),
            queue: QueueService::new(
                channels.queue.clone(),
                token.clone(),
                config.upstream_timeout,
            ),
            upstreams: vec![
                Upstream::of::<AuthClient>(channels.auth.clone()),
                Upstream::of::<UsageClient>(channels.usage.clone()),
                Upstream::of::<CredentialsClient>(channels.credentials.clone()),
                Upstream::of::<SkillsClient>(channels.skills.clone()),
                Upstream::of::<QueueClient>(channels.queue.clone()),
            ],
            verifier,
            resolver,
            limits,
            config,
            channels,
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
