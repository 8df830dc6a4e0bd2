//! `/docs`: Swagger UI over this gateway's OpenAPI document, served from the binary itself so that
//! reading the reference and trying a request from it send nothing beyond this origin.
//!
//! Swagger UI's files are vendored unchanged from `swagger-ui-dist` in `gateway/assets/swagger-ui/`
//! (`deploy/vendor-swagger-ui.sh` upgrades them); the page and its initialiser are in
//! `gateway/assets/docs/`. Every asset URL the page uses carries a hash of the asset's content
//! (`?v=`), so those answers may be cached for good; any other request for an asset is
//! revalidated through its `ETag`.

use std::hash::{DefaultHasher, Hasher as _};
use std::sync::LazyLock;

use actix_web::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, HeaderValue, IF_NONE_MATCH,
};
use actix_web::{HttpRequest, HttpResponse, get, web};
use common::{ApiError, Kind};

use crate::error_set;
use crate::kit::{Errors, Routes};

/// The page's policy: scripts, styles and images from this origin, requests to this origin, and
/// nothing else, inline code included; only images may also be `data:` URLs, which Swagger UI's
/// stylesheet draws its icons with. (Swagger UI sets its inline styles through the DOM, which
/// `style-src 'self'` allows; the browser test records any violation.)
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";

/// A file the gateway serves under `/docs/assets/`.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: [Asset; 4] = [
    Asset {
        name: "swagger-ui-bundle.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../assets/swagger-ui/swagger-ui-bundle.js"),
    },
    Asset {
        name: "swagger-ui.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../assets/swagger-ui/swagger-ui.css"),
    },
    Asset {
        name: "favicon-32x32.png",
        content_type: "image/png",
        bytes: include_bytes!("../assets/swagger-ui/favicon-32x32.png"),
    },
    Asset {
        name: "init.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../assets/docs/init.js"),
    },
];

const PAGE_TEMPLATE: &str = include_str!("../assets/docs/index.html");

/// A short hash of `bytes`: the `ETag` of an asset and the `v` of its URL. (Stable within one
/// build, which is all a cache needs.)
fn content_tag(bytes: &[u8]) -> String {
    let mut hasher = DefaultHasher::new();
    hasher.write(bytes);
    format!("{:016x}", hasher.finish())
}

/// The content tag of each asset, in the order of [`ASSETS`], computed on first use.
static TAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| content_tag(asset.bytes))
        .collect()
});

/// The page, its `{name}` placeholders replaced by each asset's versioned URL, and its tag.
static PAGE: LazyLock<(String, String)> = LazyLock::new(|| {
    let page =
        ASSETS
            .iter()
            .zip(TAGS.iter())
            .fold(PAGE_TEMPLATE.to_owned(), |page, (asset, tag)| {
                page.replace(
                    &format!("{{{}}}", asset.name),
                    &format!("/docs/assets/{}?v={tag}", asset.name),
                )
            });
    let tag = content_tag(page.as_bytes());
    (page, tag)
});

/// This document in Swagger UI: every operation, with "Try it out" (served by the gateway; the
/// page loads nothing from elsewhere).
#[utoipa::path(
    tag = "docs",
    responses(
        (status = 200, description = "HTML", content_type = "text/html"),
        (status = 304, description = "Unchanged since the `ETag` in `If-None-Match`"),
    )
)]
#[get("/docs")]
pub async fn docs(req: HttpRequest) -> HttpResponse {
    let (page, tag) = &*PAGE;
    let mut response = answer(
        &req,
        tag,
        "text/html; charset=utf-8",
        REVALIDATE,
        page.as_bytes(),
    );
    response.headers_mut().insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_POLICY),
    );
    response
}

/// A file of the `/docs` page: Swagger UI's script, stylesheet and icon, and the page's
/// initialiser.
#[utoipa::path(
    tag = "docs",
    params((
        "file" = String, Path,
        description = "`swagger-ui-bundle.js`, `swagger-ui.css`, `favicon-32x32.png` or `init.js`"
    )),
    responses(
        (status = 200, description = "The file; cached for good when `v` is the hash the page \
            links with, revalidated otherwise", content(
            ("text/javascript"), ("text/css"), ("image/png"),
        )),
        (status = 304, description = "Unchanged since the `ETag` in `If-None-Match`"),
        Errors<NoSuchFile>,
    )
)]
#[get("/docs/assets/{file}")]
pub async fn docs_asset(
    req: HttpRequest,
    file: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let Some(index) = ASSETS.iter().position(|asset| asset.name == *file) else {
        return Err(ApiError::new(Kind::NotFound, "not_found", "no such file"));
    };
    let (asset, tag) = (&ASSETS[index], &TAGS[index]);
    let cache = if requested_version(&req) == Some(tag.as_str()) {
        IMMUTABLE
    } else {
        REVALIDATE
    };
    Ok(answer(&req, tag, asset.content_type, cache, asset.bytes))
}

error_set! {
    NoSuchFile {
        404 "not_found": "no such file",
    }
}

pub fn routes(routes: &mut Routes) {
    routes.add(docs).add(docs_asset);
}

/// The `v` of the query string, if any.
fn requested_version(req: &HttpRequest) -> Option<&str> {
    req.query_string()
        .split('&')
        .find_map(|pair| pair.strip_prefix("v="))
}

/// 200 with the body, or 304 when the caller's `If-None-Match` names `tag`.
fn answer(
    req: &HttpRequest,
    tag: &str,
    content_type: &'static str,
    cache: &'static str,
    body: &'static [u8],
) -> HttpResponse {
    let etag = format!("\"{tag}\"");
    let unchanged = req
        .headers()
        .get(IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value.split(',').map(str::trim).any(|candidate| {
                candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
            })
        });
    let mut response = if unchanged {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((ETAG, etag))
        .insert_header((CACHE_CONTROL, cache));
    if unchanged {
        response.finish()
    } else {
        response
            .insert_header((CONTENT_TYPE, content_type))
            .body(body)
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::StatusCode;
    use actix_web::test::{TestRequest, call_service, init_service, read_body, read_body_json};

    use super::*;

    fn page() -> &'static str {
        &PAGE.0
    }

    #[test]
    fn the_page_links_every_asset_by_its_versioned_url_and_nothing_remote() {
        for (asset, tag) in ASSETS.iter().zip(TAGS.iter()) {
            let url = format!("/docs/assets/{}?v={tag}", asset.name);
            assert!(page().contains(&url), "{url}");
        }
        assert!(
            !page().contains('{'),
            "every placeholder is filled: {}",
            page()
        );
        let init = std::str::from_utf8(ASSETS[3].bytes).unwrap();
        assert!(init.contains("url: \"/openapi.json\""));
        assert!(init.contains("validatorUrl: null"));
        for text in [page(), init] {
            for remote in ["http://", "https://", "//cdn", "<style", "style=", "onload"] {
                assert!(!text.contains(remote), "{remote} in {text}");
            }
        }
        // One inline script would need 'unsafe-inline'; every <script> has a src.
        assert_eq!(
            page().matches("<script").count(),
            page().matches("<script src=\"/docs/assets/").count()
        );
    }

    #[actix_web::test]
    async fn the_page_and_its_assets_are_served_with_their_types_and_caching() {
        let app = init_service(crate::test_support::gateway_app!()).await;

        let page = call_service(&app, TestRequest::get().uri("/docs").to_request()).await;
        assert_eq!(page.status(), StatusCode::OK);
        let header = |response: &actix_web::dev::ServiceResponse, name| {
            response
                .headers()
                .get(name)
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(header(&page, CONTENT_TYPE), "text/html; charset=utf-8");
        assert_eq!(header(&page, CACHE_CONTROL), "no-cache");
        let policy = header(&page, CONTENT_SECURITY_POLICY);
        assert!(policy.contains("script-src 'self';"), "{policy}");
        assert!(policy.contains("connect-src 'self';"), "{policy}");
        assert!(!policy.contains("http"), "{policy}");

        for (asset, tag) in ASSETS.iter().zip(TAGS.iter()) {
            let versioned = format!("/docs/assets/{}?v={tag}", asset.name);
            let response =
                call_service(&app, TestRequest::get().uri(&versioned).to_request()).await;
            assert_eq!(response.status(), StatusCode::OK, "{versioned}");
            assert_eq!(header(&response, CONTENT_TYPE), asset.content_type);
            assert_eq!(header(&response, CACHE_CONTROL), IMMUTABLE);
            let etag = header(&response, ETAG);
            assert_eq!(read_body(response).await.as_ref(), asset.bytes);

            let plain = format!("/docs/assets/{}", asset.name);
            let response = call_service(&app, TestRequest::get().uri(&plain).to_request()).await;
            assert_eq!(header(&response, CACHE_CONTROL), REVALIDATE, "{plain}");

            let again = TestRequest::get()
                .uri(&plain)
                .insert_header((IF_NONE_MATCH, etag.as_str()))
                .to_request();
            let response = call_service(&app, again).await;
            assert_eq!(response.status(), StatusCode::NOT_MODIFIED, "{plain}");
            assert!(read_body(response).await.is_empty());
        }
        assert_eq!(
            ASSETS.map(|asset| asset.content_type),
            [
                "text/javascript; charset=utf-8",
                "text/css; charset=utf-8",
                "image/png",
                "text/javascript; charset=utf-8"
            ]
        );
    }

    #[actix_web::test]
    async fn anything_else_under_docs_is_a_404_or_405_in_the_error_format() {
        let app = init_service(crate::test_support::gateway_app!()).await;
        for uri in [
            "/docs/assets/swagger-ui.js",
            "/docs/assets/index.html",
            "/docs/assets/..%2FCargo.toml",
            "/docs/assets/swagger-ui/LICENSE",
            "/docs/assets/",
        ] {
            let response = call_service(&app, TestRequest::get().uri(uri).to_request()).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{uri}");
            let body: serde_json::Value = read_body_json(response).await;
            assert_eq!(body["reason"], "not_found", "{uri}");
            assert_eq!(body["ok"], false, "{uri}");
        }
        for uri in ["/docs", "/docs/assets/init.js"] {
            let response = call_service(&app, TestRequest::post().uri(uri).to_request()).await;
            assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{uri}");
            assert_eq!(response.headers().get("allow").unwrap(), "GET");
        }
    }
}
