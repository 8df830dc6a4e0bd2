//! `/api/user-proxy`: the signed-in user's profile and avatar.

use actix_web::dev::Payload;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, ContentType, HeaderValue};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, get, patch, web};
use common::{ApiError, Kind};
use proto::auth::v1 as pb;
use serde::Deserialize;
use utoipa::ToSchema;

use super::UserReply;
use crate::body::{read_form, read_json};
use crate::kit::{Authenticated, Envelope, Errors, JsonBody, Reply, Routes};
use crate::session::AuthenticatedUser;
use crate::state::AppState;
use crate::{error_set, rpc};

/// Names are short; a bigger text part is not a name.
const MAX_TEXT_PART: usize = 4096;

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ProfileBody {
    #[schema(max_length = 100)]
    pub first_name: Option<String>,
    #[schema(max_length = 100)]
    pub last_name: Option<String>,
}

/// The multipart form of `PATCH /api/user-proxy`.
#[derive(ToSchema)]
#[allow(dead_code)] // only its schema is used
pub struct AvatarForm {
    /// The image: PNG, JPEG, GIF or WebP, with its content type on the part.
    #[schema(value_type = String, format = Binary, content_media_type = "application/octet-stream")]
    avatar: Vec<u8>,
    first_name: Option<String>,
    last_name: Option<String>,
}

error_set! {
    ProfileErrors {
        400 "invalid_body": "a name over 100 characters, an avatar that is not a PNG, JPEG, GIF or WebP image, or a malformed form (`field` names it)",
        400 "missing_field": "nothing to change: neither `first_name`, `last_name` nor `avatar`",
        413 "payload_too_large": "over the body or upload limit, or an avatar over 2 MiB",
        415 "unsupported_content_encoding": "a compressed form, or a JSON body in a coding other than gzip or deflate",
    }
}

/// The signed-in user's profile.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "The profile", body = Envelope<UserReply>),
        Errors<Authenticated>,
    )
)]
#[get("/api/user-proxy")]
pub async fn get_profile(
    AuthenticatedUser(identity): AuthenticatedUser,
    state: web::Data<AppState>,
) -> Reply<UserReply> {
    let request = pb::GetProfileRequest {};
    state
        .auth
        .forward(&identity, request, rpc!(get_profile))
        .await
}

/// Updates the profile: JSON names, or a multipart form with an `avatar` image part (and
/// optional `first_name` / `last_name` text parts).
#[utoipa::path(
    tag = "auth",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    request_body(content(
        (ProfileBody = "application/json"),
        (AvatarForm = "multipart/form-data"),
    )),
    responses(
        (status = 200, description = "The profile after the change", body = Envelope<UserReply>),
        Errors<(Authenticated, JsonBody, ProfileErrors)>,
    )
)]
#[patch("/api/user-proxy")]
pub async fn patch_profile(
    AuthenticatedUser(identity): AuthenticatedUser,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Reply<UserReply> {
    let payload = payload.into_inner();
    let (names, avatar) = if req
        .content_type()
        .eq_ignore_ascii_case("multipart/form-data")
    {
        read_profile_form(&req, payload, state.config.upload_limit_bytes).await?
    } else {
        let names: ProfileBody = read_json(&req, payload, state.config.body_limit_bytes).await?;
        (names, None)
    };
    let has_names = names.first_name.is_some() || names.last_name.is_some();
    if !has_names && avatar.is_none() {
        return Err(ApiError::new(
            Kind::InvalidArgument,
            "missing_field",
            "nothing to change: send first_name, last_name or an avatar",
        ));
    }
    let mut user = None;
    if has_names {
        let request = pb::UpdateProfileRequest {
            first_name: names.first_name,
            last_name: names.last_name,
        };
        user = Some(
            state
                .auth
                .forward(&identity, request, rpc!(update_profile))
                .await?,
        );
    }
    if let Some(avatar) = avatar {
        user = Some(
            state
                .auth
                .forward(&identity, avatar, rpc!(set_avatar))
                .await?,
        );
    }
    user.ok_or_else(ApiError::internal)
}

/// Reads the form's names and avatar, counting every byte against the upload limit; parts of
/// other names are read and dropped.
async fn read_profile_form(
    req: &HttpRequest,
    payload: Payload,
    limit: usize,
) -> Result<(ProfileBody, Option<pb::SetAvatarRequest>), ApiError> {
    let parts = read_form(req, payload, limit, &["avatar", "first_name", "last_name"]).await?;
    let mut names = ProfileBody::default();
    let mut avatar: Option<pb::SetAvatarRequest> = None;
    for part in parts {
        let name = part.name;
        match name.as_str() {
            "avatar" if avatar.is_some() => {
                return Err(ApiError::invalid_field("avatar", "send one avatar only"));
            }
            "avatar" => {
                avatar = Some(pb::SetAvatarRequest {
                    // svc-auth checks the type against the bytes themselves.
                    content_type: part
                        .content_type
                        .unwrap_or_else(|| "application/octet-stream".to_owned()),
                    image: part.bytes,
                });
            }
            _ if part.bytes.len() > MAX_TEXT_PART => {
                return Err(ApiError::invalid_field(
                    &name,
                    format!("{name} is too long"),
                ));
            }
            _ => {
                let text = String::from_utf8(part.bytes)
                    .ok()
                    .filter(|text| !text.contains('\0'))
                    .ok_or_else(|| {
                        ApiError::invalid_field(
                            &name,
                            format!("{name} must be UTF-8 text without NUL"),
                        )
                    })?;
                if name == "first_name" {
                    names.first_name = Some(text);
                } else {
                    names.last_name = Some(text);
                }
            }
        }
    }
    Ok((names, avatar))
}

/// The signed-in user's avatar image.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "The image, with its content type", content(
            ("image/png"), ("image/jpeg"), ("image/gif"), ("image/webp"),
        )),
        Errors<(Authenticated, NoAvatar)>,
    )
)]
#[get("/api/user-proxy/avatar")]
pub async fn get_avatar(
    AuthenticatedUser(identity): AuthenticatedUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let request = pb::GetAvatarRequest {};
    let avatar = state
        .auth
        .call(&identity, request, rpc!(get_avatar))
        .await?;
    if avatar.image.is_empty() {
        return Err(ApiError::not_found("avatar"));
    }
    let content_type = avatar
        .content_type
        .parse()
        .map(ContentType)
        .unwrap_or_else(|_| ContentType::octet_stream());
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((CACHE_CONTROL, HeaderValue::from_static("private, no-cache")))
        // An image is never a document: nothing in it may run if opened directly.
        .insert_header((
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; sandbox"),
        ))
        .body(avatar.image))
}

error_set! {
    NoAvatar {
        404 "not_found": "the user has no avatar",
    }
}

pub fn routes(routes: &mut Routes) {
    routes.add(get_profile).add(patch_profile).add(get_avatar);
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn form(boundary: &str, parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (name, content_type, bytes) in parts {
            body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"f\"\r\n")
                    .as_bytes(),
            );
            if let Some(content_type) = content_type {
                body.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
            }
            body.extend_from_slice(b"\r\n");
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        body
    }

    async fn read(
        body: Vec<u8>,
        limit: usize,
    ) -> Result<(ProfileBody, Option<pb::SetAvatarRequest>), ApiError> {
        let (req, payload) = TestRequest::patch()
            .insert_header(("content-type", "multipart/form-data; boundary=XyZ"))
            .set_payload(body)
            .to_http_parts();
        read_profile_form(&req, payload, limit).await
    }

    #[actix_web::test]
    async fn a_form_yields_the_avatar_and_names() {
        let body = form(
            "XyZ",
            &[
                ("first_name", None, b"Grace"),
                ("avatar", Some("image/png"), b"\x89PNG\r\n\x1a\n pixels"),
                ("ignored", Some("text/plain"), b"whatever"),
            ],
        );
        let (names, avatar) = read(body, 10_000).await.unwrap();
        assert_eq!(names.first_name.as_deref(), Some("Grace"));
        assert_eq!(names.last_name, None);
        let avatar = avatar.unwrap();
        assert_eq!(avatar.content_type, "image/png");
        assert_eq!(avatar.image, b"\x89PNG\r\n\x1a\n pixels");
    }

    #[actix_web::test]
    async fn a_name_with_nul_or_invalid_utf8_is_refused_naming_it() {
        for (name, bytes) in [
            ("first_name", &b"Gr\0ce"[..]),
            ("last_name", &b"\xff\xfe"[..]),
        ] {
            let err = read(form("XyZ", &[(name, None, bytes)]), 10_000)
                .await
                .unwrap_err();
            assert_eq!(err.reason, "invalid_body");
            assert_eq!(err.field.as_deref(), Some(name));
        }
    }

    #[actix_web::test]
    async fn a_compressed_form_is_refused() {
        let (req, payload) = TestRequest::patch()
            .insert_header(("content-type", "multipart/form-data; boundary=XyZ"))
            .insert_header(("content-encoding", "gzip"))
            .set_payload(form("XyZ", &[("first_name", None, b"Grace")]))
            .to_http_parts();
        let err = read_profile_form(&req, payload, 10_000).await.unwrap_err();
        assert_eq!(err.kind, Kind::UnsupportedMediaType);
    }

    #[actix_web::test]
    async fn a_form_over_the_limit_is_refused() {
        let image = vec![7u8; 2048];
        let body = form("XyZ", &[("avatar", Some("image/png"), &image)]);
        let err = read(body, 1024).await.unwrap_err();
        assert_eq!(err.reason, "payload_too_large");
    }

    #[actix_web::test]
    async fn two_avatars_or_a_broken_form_are_refused() {
        let body = form(
            "XyZ",
            &[
                ("avatar", Some("image/png"), b"a"),
                ("avatar", Some("image/png"), b"b"),
            ],
        );
        assert_eq!(
            read(body, 10_000).await.unwrap_err().field.as_deref(),
            Some("avatar")
        );
        let err = read(b"--XyZ\r\ngarbage".to_vec(), 10_000)
            .await
            .unwrap_err();
        assert_eq!(err.reason, "invalid_body");
    }
}
