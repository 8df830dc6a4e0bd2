//! The HTTP edge of the Genie platform: verifies Directus JWTs, resolves the user through
//! svc-auth, and forwards each call over gRPC to the service that owns it (DESIGN §1-4).
//!
//! Layout: one module per concern ([`auth`] tokens, [`session`] identity, [`body`] request
//! bodies, [`rate_limit`], [`health`], [`openapi`]) and one module of thin handlers per upstream
//! service ([`svc_auth`], [`svc_usage`], [`svc_credentials`]).

pub mod auth;
pub mod body;
pub mod client_ip;
pub mod config;
pub mod directus;
pub mod docs_ui;
pub mod errors;
pub mod health;
pub mod middleware;
pub mod openapi;
pub mod rate_limit;
pub mod session;
pub mod state;
pub mod svc_auth;
pub mod svc_credentials;
pub mod svc_usage;
pub mod upstream;

#[cfg(test)]
mod test_support;

use std::net::TcpListener;

use actix_cors::Cors;
use actix_web::dev::Server;
use actix_web::http::{Method, header};
use actix_web::{App, HttpServer, Resource, web};
use anyhow::Context as _;

pub use crate::config::Config;
use crate::state::AppState;

/// Builds the HTTP server on an already-bound listener; the caller spawns or awaits it
/// (actix-web 4 runs on tokio). Must be called inside a tokio runtime (a gRPC channel starts a
/// background task where it is made). Connections to upstreams are made on first use, so the
/// gateway starts while its upstreams are still down.
pub fn build(config: Config, listener: TcpListener) -> anyhow::Result<Server> {
    config.validate()?;
    tokio::runtime::Handle::try_current()
        .context("gateway::build must be called inside a tokio runtime")?;
    let cors = CorsSettings::from(&config);
    let shared = std::sync::Arc::new(AppState::new(config)?);
    let document = web::Data::new(
        openapi::Document::build().context("cannot serialise the OpenAPI document")?,
    );
    let server = HttpServer::new(move || {
        App::new()
            // Runs on each worker's thread, so the worker's channels are made on its runtime.
            .app_data(web::Data::new(shared.for_worker()))
            .app_data(document.clone())
            .wrap(actix_web::middleware::Condition::new(
                cors.enabled(),
                cors.middleware(),
            ))
            // Registered last, so outermost: every response, CORS refusals included, gets an id.
            .wrap(actix_web::middleware::from_fn(middleware::request_context))
            .configure(routes)
            .default_service(web::to(errors::not_found))
    })
    .listen(listener)
    .context("cannot serve on the gateway's listener")?
    .run();
    Ok(server)
}

/// A path with its methods; any other method is a 405 in our error format.
fn resource(path: &str, allow: &'static str) -> Resource {
    web::resource(path).default_service(web::to(move || async move {
        errors::method_not_allowed(allow)
    }))
}

fn routes(cfg: &mut web::ServiceConfig) {
    use svc_auth::{api, directus_compat, profile};
    cfg.service(resource("/health", "GET").route(web::get().to(health::health)))
        .service(resource("/health/live", "GET").route(web::get().to(health::health_live)))
        .service(resource("/health/ready", "GET").route(web::get().to(health::health_ready)))
        .service(resource("/health/detailed", "GET").route(web::get().to(health::health_detailed)))
        .service(resource("/openapi.json", "GET").route(web::get().to(openapi::openapi_json)))
        .configure(docs_ui::routes)
        .service(resource("/auth/login", "POST").route(web::post().to(directus_compat::login)))
        .service(resource("/auth/refresh", "POST").route(web::post().to(directus_compat::refresh)))
        .service(resource("/auth/logout", "POST").route(web::post().to(directus_compat::logout)))
        .service(resource("/users/me", "GET").route(web::get().to(directus_compat::me)))
        .service(resource("/api/invites", "POST").route(web::post().to(api::create_invite)))
        .service(resource("/api/register", "POST").route(web::post().to(api::register)))
        .service(
            resource("/api/onboarding", "GET, PATCH")
                .route(web::get().to(api::get_onboarding))
                .route(web::patch().to(api::patch_onboarding)),
        )
        .service(
            resource("/api/onboarding/state", "GET, PATCH")
                .route(web::get().to(api::get_onboarding_state))
                .route(web::patch().to(api::patch_onboarding_state)),
        )
        .service(resource("/api/rbac-sync", "POST").route(web::post().to(api::rbac_sync)))
        .service(resource("/api/impersonate", "POST").route(web::post().to(api::impersonate)))
        .service(
            resource("/api/user-proxy", "GET, PATCH")
                .route(web::get().to(profile::get_profile))
                .route(web::patch().to(profile::patch_profile)),
        )
        .service(
            resource("/api/user-proxy/avatar", "GET").route(web::get().to(profile::get_avatar)),
        )
        .service(resource("/api/usage", "GET").route(web::get().to(svc_usage::get_usage)))
        .service(
            resource("/api/usage/increment", "POST").route(web::post().to(svc_usage::increment)),
        )
        .configure(credentials_routes);
}

fn credentials_routes(cfg: &mut web::ServiceConfig) {
    use svc_credentials as credentials;
    let post = |path, handler| resource(path, "POST").route(handler);
    cfg.service(post(
        "/api/credentials/store",
        web::post().to(credentials::store_credentials),
    ))
    .service(post(
        "/api/credentials/reveal",
        web::post().to(credentials::reveal_credentials),
    ))
    .service(post(
        "/api/credentials/create-profile",
        web::post().to(credentials::create_profile),
    ))
    .service(post(
        "/api/credentials/reveal-download-cred",
        web::post().to(credentials::reveal_download_credential),
    ))
    .service(post(
        "/api/credentials/get-platform-session",
        web::post().to(credentials::get_platform_session),
    ))
    .service(post(
        "/api/credentials/store-platform-session",
        web::post().to(credentials::store_platform_session),
    ))
    .service(post(
        "/api/credentials/hitl-request",
        web::post().to(credentials::request_hitl_login),
    ))
    .service(
        resource("/api/vault", "GET, POST")
            .route(web::get().to(credentials::list_vault))
            .route(web::post().to(credentials::create_vault_entry)),
    )
    .service(
        resource("/api/vault/{id}", "PATCH, DELETE")
            .route(web::patch().to(credentials::update_vault_entry))
            .route(web::delete().to(credentials::delete_vault_entry)),
    )
    .service(post(
        "/api/vault/{id}/rotate",
        web::post().to(credentials::rotate_vault_entry),
    ));
}

/// CORS as configured: none (browsers on other origins get no CORS headers and so cannot read
/// answers), a list of origins (with credentials, for Directus' cookie mode), or any origin
/// without credentials (`*`).
#[derive(Clone)]
struct CorsSettings {
    origins: Vec<String>,
    permissive: bool,
}

impl From<&Config> for CorsSettings {
    fn from(config: &Config) -> Self {
        Self {
            origins: config.cors_allowed_origins.clone(),
            permissive: config.cors_permissive(),
        }
    }
}

impl CorsSettings {
    fn enabled(&self) -> bool {
        !self.origins.is_empty()
    }

    fn middleware(&self) -> Cors {
        let exposed = [middleware::REQUEST_ID_HEADER, header::RETRY_AFTER];
        let base = Cors::default()
            .allowed_methods([
                Method::GET,
                Method::POST,
                Method::PATCH,
                Method::PUT,
                Method::DELETE,
            ])
            .allowed_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT,
                header::HeaderName::from_static("x-request-id"),
                header::HeaderName::from_static("traceparent"),
                header::HeaderName::from_static("tracestate"),
                header::HeaderName::from_static("idempotency-key"),
            ])
            .expose_headers(exposed)
            .max_age(3600);
        if self.permissive {
            return base.allow_any_origin().send_wildcard();
        }
        self.origins
            .iter()
            .fold(base, |cors, origin| cors.allowed_origin(origin))
            .supports_credentials()
    }
}
