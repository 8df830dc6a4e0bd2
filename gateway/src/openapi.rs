//! The OpenAPI 3.1 document of every route, collected from the routes as they are mounted
//! ([`crate::kit::Routes`]); [`crate::docs_ui`] shows it in Swagger UI.

use actix_web::dev::ResourceDef;
use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, get, web};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::directus::DirectusErrors;
use crate::errors::ErrorResponse;
use crate::kit::Routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Genie gateway",
        description = "The HTTP edge of the Genie platform. `/api/*` errors are \
            `{ok:false, success:false, error, reason, field?}`; the Directus-compatible routes \
            (`/auth/*`, `/users/me`) answer errors as Directus does: \
            `{errors:[{message, extensions:{code, field?}}]}`. Every response carries `X-Request-Id`."
    ),
    components(schemas(ErrorResponse, DirectusErrors)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "docs", description = "This document"),
        (name = "directus", description = "Directus-compatible routes, so that the Directus SDK works: authentication and the signed-in user (svc-auth), ping and health; errors in Directus' format"),
        (name = "auth", description = "Invites, registration, onboarding, RBAC sync, impersonation, profile (svc-auth)"),
        (name = "usage", description = "Subscription quotas: usage report and consumption (svc-usage)"),
        (name = "credentials", description = "Credentials vault: encrypted platform logins, sessions and secrets (svc-credentials)"),
        (name = "skills", description = "Agent skills catalogue: list, typo-tolerant search, related skills, explainable activation (svc-skills)"),
        (name = "queue", description = "Media jobs: enqueued with the quota and an idempotency key, stored with their outbox in one transaction, published to RabbitMQ with confirms (svc-queue)"),
        (name = "posts", description = "Scheduled posts: scheduled with the `scheduled_posts` quota, turned into `publish_post` jobs when due, published through the connector (svc-queue)"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("A Directus access token (HS256), from /auth/login"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "access_token",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "access_token",
                "The access token as a query parameter (not together with the header)",
            ))),
        );
        components.add_security_scheme(
            "session_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::auth::SESSION_COOKIE,
                "The access token in Directus' session cookie",
            ))),
        );
        components.add_security_scheme(
            "rbac_sync_secret",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-RBAC-SYNC-SECRET",
                "The shared secret of the RBAC sync webhook",
            ))),
        );
    }
}

/// The serialised document and the methods of each documented path, made once at start-up.
pub struct Document {
    pub json: String,
    paths: Vec<(ResourceDef, String)>,
}

impl Document {
    pub fn new(openapi: &utoipa::openapi::OpenApi) -> Result<Self, serde_json::Error> {
        let paths = openapi
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let methods = [
                    ("GET", &item.get),
                    ("PUT", &item.put),
                    ("POST", &item.post),
                    ("DELETE", &item.delete),
                    ("OPTIONS", &item.options),
                    ("HEAD", &item.head),
                    ("PATCH", &item.patch),
                    ("TRACE", &item.trace),
                ]
                .into_iter()
                .filter_map(|(method, operation)| operation.as_ref().map(|_| method))
                .collect::<Vec<_>>()
                .join(", ");
                (ResourceDef::new(path.as_str()), methods)
            })
            .collect();
        Ok(Self {
            json: openapi.to_json()?,
            paths,
        })
    }

    /// The methods a documented path serves, for the `Allow` of a 405.
    pub fn allowed_methods(&self, path: &str) -> Option<&str> {
        self.paths
            .iter()
            .find(|(def, _)| def.is_match(path))
            .map(|(_, methods)| methods.as_str())
    }
}

/// This OpenAPI 3.1 document.
#[utoipa::path(
    tag = "docs",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json"))
)]
#[get("/openapi.json")]
pub async fn openapi_json(document: web::Data<Document>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(document.json.clone())
}

pub fn routes(routes: &mut Routes) {
    routes.add(openapi_json);
}

#[cfg(test)]
mod tests {
    use actix_web::http::Method;
    use actix_web::test::{TestRequest, call_service, init_service, read_body};
    use serde_json::Value;

    use super::*;

    fn document() -> Value {
        serde_json::from_str(&Document::new(&crate::document()).unwrap().json).unwrap()
    }

    fn operations(document: &Value) -> Vec<(String, String)> {
        let mut operations = Vec::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                operations.push((path.clone(), method.clone()));
            }
        }
        operations
    }

    #[actix_web::test]
    async fn every_documented_operation_is_served_and_every_served_route_documented() {
        let document = document();
        // Routes can only be mounted through `kit::Routes`, which documents them; what is left
        // to check is that nothing documented falls through to the fallback.
        let app = init_service(crate::test_support::gateway_app!()).await;
        let operations = operations(&document);
        assert!(operations.len() >= 35, "{}", operations.len());
        for (path, method) in operations {
            let uri = path.replace("{id}", "0b5c2f4e-8f0a-4c55-9a43-5c8f0e4f2b11");
            let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
            let response = call_service(
                &app,
                TestRequest::default()
                    .method(method.clone())
                    .uri(&uri)
                    .to_request(),
            )
            .await;
            let status = response.status().as_u16();
            let body = read_body(response).await;
            let fell_through = status == 405
                || (status == 404 && String::from_utf8_lossy(&body).contains("no such endpoint"));
            assert!(
                !fell_through,
                "{method} {path} is documented but not served"
            );
        }
        let unknown = call_service(&app, TestRequest::get().uri("/api/nope").to_request()).await;
        assert_eq!(unknown.status().as_u16(), 404);
        let wrong_method =
            call_service(&app, TestRequest::delete().uri("/api/usage").to_request()).await;
        assert_eq!(wrong_method.status().as_u16(), 405);
        assert_eq!(wrong_method.headers().get("allow").unwrap(), "GET");
        let two_methods = call_service(
            &app,
            TestRequest::put()
                .uri("/api/vault/0b5c2f4e-8f0a-4c55-9a43-5c8f0e4f2b11")
                .to_request(),
        )
        .await;
        assert_eq!(two_methods.headers().get("allow").unwrap(), "DELETE, PATCH");
    }

    #[test]
    fn the_document_is_openapi_3_1_with_summaries_errors_and_real_constraints() {
        let document = document();
        assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
        for (path, method) in operations(&document) {
            let operation = &document["paths"][&path][&method];
            assert!(
                operation["summary"].is_string(),
                "{method} {path} has a summary"
            );
            let responses = operation["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|status| status.starts_with('2')),
                "{method} {path} documents its success"
            );
            let takes_token = operation["security"]
                .as_array()
                .is_some_and(|schemes| schemes.iter().any(|scheme| scheme.get("bearer").is_some()));
            if takes_token && path.starts_with("/api") {
                let description = responses["401"]["description"].as_str().unwrap();
                assert!(description.contains("`token_expired`"), "{method} {path}");
                let ambiguous = responses["400"]["description"].as_str().unwrap();
                assert!(ambiguous.contains("`token_ambiguous`"), "{method} {path}");
            }
        }
        let schemas = document["components"]["schemas"].as_object().unwrap();
        let required = |schema: &str| schemas[schema]["required"].clone();
        assert_eq!(
            required("RegisterBody"),
            serde_json::json!(["email", "password", "invite_code"])
        );
        assert_eq!(required("IncrementBody"), serde_json::json!(["operation"]));
        assert_eq!(
            required("StoreCredentialsBody"),
            serde_json::json!(["creator_profile_id", "credentials"])
        );
        assert_eq!(schemas["NonBlank"]["minLength"], 1);
        assert_eq!(
            schemas["StoreCredentialsBody"]["properties"]["creator_profile_id"]["format"],
            "uuid"
        );
        assert_eq!(
            schemas["OnboardingState"]["enum"],
            serde_json::json!([
                "EXTENSION_INSTALL",
                "DATA_COLLECTION",
                "PROCESSING",
                "COMPLETE"
            ])
        );

        let increment = &document["paths"]["/api/usage/increment"]["post"]["responses"];
        let forbidden = increment["403"]["description"].as_str().unwrap();
        assert!(
            forbidden.contains("`limit_reached`") && forbidden.contains("`quota_check_failed`")
        );
        let impersonate = &document["paths"]["/api/impersonate"]["post"]["responses"];
        assert!(
            impersonate["403"]["description"]
                .as_str()
                .unwrap()
                .contains("`forbidden`")
        );
        let me = &document["paths"]["/users/me"]["get"]["responses"]["401"];
        assert_eq!(
            me["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/DirectusErrors"
        );
    }
}
