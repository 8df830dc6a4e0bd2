//! The HTTP edge of the Genie platform: verifies Directus JWTs, resolves the user through
//! svc-auth, and forwards each call over gRPC to the service that owns it (docs/DESIGN.md §1-4).
//!
//! Layout: one module per concern ([`auth`] tokens, [`session`] identity, [`body`] request
//! bodies, [`kit`] how a route is written, [`rate_limit`], [`health`], [`openapi`]) and one
//! module of thin handlers per upstream service ([`svc_auth`], [`svc_usage`],
//! [`svc_credentials`]), each with its `routes`.

pub mod auth;
pub mod body;
pub mod client_ip;
pub mod config;
pub mod directus;
pub mod docs_ui;
pub mod errors;
pub mod health;
pub mod kit;
pub mod middleware;
pub mod openapi;
pub mod rate_limit;
pub mod session;
pub mod state;
pub mod svc_auth;
pub mod svc_credentials;
pub mod svc_queue;
pub mod svc_skills;
pub mod svc_usage;
pub mod upstream;

#[cfg(test)]
mod test_support;

use std::net::TcpListener;

use actix_cors::Cors;
use actix_web::dev::{Server, ServiceFactory, ServiceRequest};
use actix_web::http::{Method, header};
use actix_web::{App, HttpServer, web};
use anyhow::Context as _;
use utoipa::OpenApi as _;
use utoipa_actix_web::AppExt as _;

pub use crate::config::Config;
use crate::kit::Routes;
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
        openapi::Document::new(&document()).context("cannot serialise the OpenAPI document")?,
    );
    let server = HttpServer::new(move || {
        let app = App::new()
            // Runs on each worker's thread, so the worker's channels are made on its runtime.
            .app_data(web::Data::new(shared.for_worker()))
            .app_data(document.clone())
            .wrap(actix_web::middleware::Condition::new(
                cors.enabled(),
                cors.middleware(),
            ))
            // Registered last, so outermost: every response, CORS refusals included, gets an id.
            .wrap(actix_web::middleware::from_fn(middleware::request_context));
        mounted(app).0.default_service(web::to(errors::no_route))
    })
    .listen(listener)
    .context("cannot serve on the gateway's listener")?
    .run();
    Ok(server)
}

/// Every route of the gateway, module by module.
fn routes(routes: &mut Routes) {
    health::routes(routes);
    openapi::routes(routes);
    docs_ui::routes(routes);
    svc_auth::routes(routes);
    svc_usage::routes(routes);
    svc_credentials::routes(routes);
    svc_skills::routes(routes);
    svc_queue::routes(routes);
}

/// `app` with every route mounted, and the OpenAPI document of exactly those routes.
fn mounted<T>(app: App<T>) -> (App<T>, utoipa::openapi::OpenApi)
where
    T: ServiceFactory<ServiceRequest, Config = (), Error = actix_web::Error, InitError = ()>,
{
    app.into_utoipa_app()
        .openapi(openapi::ApiDoc::openapi())
        .configure(|config| routes(&mut Routes::new(config)))
        .split_for_parts()
}

/// The OpenAPI document of every mounted route.
pub fn document() -> utoipa::openapi::OpenApi {
    mounted(App::new()).1
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
