//! The OpenAPI 3.1 document of every route, assembled from the annotations beside the handlers,
//! and its page in Swagger UI ([`crate::docs_ui`]).

use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, web};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::directus::DirectusErrors;
use crate::errors::ErrorResponse;
use crate::{health, svc_auth, svc_credentials, svc_usage};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Genie gateway",
        description = "The HTTP edge of the Genie platform. `/api/*` errors are \
            `{ok:false, success:false, error, reason, field?}`; the Directus-compatible routes \
            (`/auth/*`, `/users/me`) answer errors as Directus does: \
            `{errors:[{message, extensions:{code}}]}`. Every response carries `X-Request-Id`."
    ),
    paths(
        health::health,
        health::health_live,
        health::health_ready,
        health::health_detailed,
        openapi_json,
        crate::docs_ui::docs,
        crate::docs_ui::docs_asset,
        svc_auth::directus_compat::login,
        svc_auth::directus_compat::refresh,
        svc_auth::directus_compat::logout,
        svc_auth::directus_compat::me,
        svc_auth::api::create_invite,
        svc_auth::api::register,
        svc_auth::api::get_onboarding,
        svc_auth::api::patch_onboarding,
        svc_auth::api::get_onboarding_state,
        svc_auth::api::patch_onboarding_state,
        svc_auth::api::rbac_sync,
        svc_auth::api::impersonate,
        svc_auth::profile::get_profile,
        svc_auth::profile::patch_profile,
        svc_auth::profile::get_avatar,
        svc_usage::get_usage,
        svc_usage::increment,
        svc_credentials::store_credentials,
        svc_credentials::reveal_credentials,
        svc_credentials::create_profile,
        svc_credentials::reveal_download_credential,
        svc_credentials::get_platform_session,
        svc_credentials::store_platform_session,
        svc_credentials::request_hitl_login,
        svc_credentials::list_vault,
        svc_credentials::create_vault_entry,
        svc_credentials::update_vault_entry,
        svc_credentials::delete_vault_entry,
        svc_credentials::rotate_vault_entry,
    ),
    components(schemas(ErrorResponse, DirectusErrors)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "docs", description = "This document"),
        (name = "directus", description = "Directus-compatible authentication (svc-auth); errors in Directus' format"),
        (name = "auth", description = "Invites, registration, onboarding, RBAC sync, impersonation, profile (svc-auth)"),
        (name = "usage", description = "Subscription quotas: usage report and consumption (svc-usage)"),
        (name = "credentials", description = "Credentials vault: encrypted platform logins, sessions and secrets (svc-credentials)"),
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

/// The serialised document, made once at start-up.
pub struct Document(pub String);

impl Document {
    pub fn build() -> Result<Self, serde_json::Error> {
        ApiDoc::openapi().to_json().map(Document)
    }
}

/// This OpenAPI 3.1 document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "docs",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json"))
)]
pub async fn openapi_json(document: web::Data<Document>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(document.0.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_and_lists_every_route() {
        let document: serde_json::Value =
            serde_json::from_str(&Document::build().unwrap().0).unwrap();
        assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
        let paths = document["paths"].as_object().unwrap();
        let expected = [
            ("/health", "get"),
            ("/health/live", "get"),
            ("/health/ready", "get"),
            ("/health/detailed", "get"),
            ("/openapi.json", "get"),
            ("/docs", "get"),
            ("/docs/assets/{file}", "get"),
            ("/auth/login", "post"),
            ("/auth/refresh", "post"),
            ("/auth/logout", "post"),
            ("/users/me", "get"),
            ("/api/invites", "post"),
            ("/api/register", "post"),
            ("/api/onboarding", "get"),
            ("/api/onboarding", "patch"),
            ("/api/onboarding/state", "get"),
            ("/api/onboarding/state", "patch"),
            ("/api/rbac-sync", "post"),
            ("/api/impersonate", "post"),
            ("/api/user-proxy", "get"),
            ("/api/user-proxy", "patch"),
            ("/api/user-proxy/avatar", "get"),
            ("/api/usage", "get"),
            ("/api/usage/increment", "post"),
            ("/api/credentials/store", "post"),
            ("/api/credentials/reveal", "post"),
            ("/api/credentials/create-profile", "post"),
            ("/api/credentials/reveal-download-cred", "post"),
            ("/api/credentials/get-platform-session", "post"),
            ("/api/credentials/store-platform-session", "post"),
            ("/api/credentials/hitl-request", "post"),
            ("/api/vault", "get"),
            ("/api/vault", "post"),
            ("/api/vault/{id}", "patch"),
            ("/api/vault/{id}", "delete"),
            ("/api/vault/{id}/rotate", "post"),
        ];
        for (path, method) in expected {
            let operation = &paths[path][method];
            assert!(operation.is_object(), "{method} {path} is documented");
            assert!(
                operation["summary"].is_string(),
                "{method} {path} has a summary"
            );
            assert!(
                operation["responses"]["200"].is_object()
                    || operation["responses"]["204"].is_object()
            );
        }
        assert_eq!(paths.len(), 31, "no undocumented or stray paths");
        let schemas = document["components"]["schemas"].as_object().unwrap();
        for schema in [
            "ErrorResponse",
            "DirectusErrors",
            "RegisterBody",
            "UserView",
            "TokenResponse",
            "UsageResponse",
            "OperationUsage",
            "IncrementBody",
            "IncrementResponse",
            "StoreCredentialsBody",
            "ProfileResponse",
            "CreatorProfileView",
            "VaultListResponse",
            "VaultEntryView",
            "PlatformSessionResponse",
        ] {
            assert!(schemas.contains_key(schema), "{schema}");
        }
        let register = &schemas["RegisterBody"];
        let required: Vec<&str> = register["required"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        assert_eq!(required, ["email", "password", "invite_code"]);

        let increment = &paths["/api/usage/increment"]["post"];
        for status in ["400", "401", "403", "409", "413", "503"] {
            assert!(
                increment["responses"][status].is_object(),
                "increment documents {status}"
            );
        }
        assert_eq!(increment["parameters"][0]["name"], "Idempotency-Key");
        assert_eq!(increment["parameters"][0]["in"], "header");
        let usage = &paths["/api/usage"]["get"];
        for status in ["401", "503"] {
            assert!(
                usage["responses"][status].is_object(),
                "usage documents {status}"
            );
        }
        assert_eq!(
            schemas["IncrementBody"]["required"],
            serde_json::json!(["operation"])
        );
        assert_eq!(
            schemas["StoreCredentialsBody"]["required"],
            serde_json::json!(["creatorProfileId", "credentials"])
        );
        let store = &paths["/api/credentials/store"]["post"];
        assert_eq!(store["tags"], serde_json::json!(["credentials"]));
        assert!(
            store["security"]
                .as_array()
                .unwrap()
                .iter()
                .any(|scheme| scheme.get("rbac_sync_secret").is_some()),
            "the owner-or-system routes take the RBAC sync secret"
        );
        let vault_params: Vec<&str> = paths["/api/vault"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|parameter| parameter["name"].as_str())
            .collect();
        assert_eq!(vault_params, ["kind", "limit", "offset"]);
        assert!(
            document["tags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|tag| tag["name"] == "credentials")
        );
        let by_operation = &schemas["UsageResponse"]["properties"]["usage"];
        assert_eq!(
            by_operation["additionalProperties"]["$ref"], "#/components/schemas/OperationUsage",
            "{by_operation}"
        );
    }
}
