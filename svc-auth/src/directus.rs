//! Directus mode: the client of a running Directus (its REST API), which issues the tokens and
//! owns the users while svc-auth mirrors them.

use std::time::Duration;

use common::secret::Secret;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::error::AuthError;
use crate::service::Tokens;

pub struct DirectusClient {
    http: reqwest::Client,
    base_url: String,
    admin_token: Secret,
}

/// A user as Directus describes it, with its role expanded.
#[derive(Debug, Deserialize)]
pub struct DirectusUser {
    pub id: Uuid,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub status: String,
    pub role: Option<DirectusRole>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DirectusRole {
    pub id: Uuid,
    pub name: String,
}

#[derive(Deserialize)]
struct Data<T> {
    data: T,
}

/// The `data` of a successful Directus answer; `what` names it in the error.
async fn data_of<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    what: &str,
) -> Result<T, AuthError> {
    response
        .json::<Data<T>>()
        .await
        .map(|data| data.data)
        .map_err(|err| AuthError::Directus(format!("unexpected {what} answer: {err}")))
}

#[derive(Deserialize)]
struct TokenData {
    access_token: String,
    refresh_token: String,
    expires: u64,
}

#[derive(Deserialize)]
struct Errors {
    errors: Vec<DirectusError>,
}

#[derive(Deserialize)]
struct DirectusError {
    extensions: Option<ErrorExtensions>,
}

#[derive(Deserialize)]
struct ErrorExtensions {
    code: Option<String>,
}

const USER_FIELDS: &str = "id,email,first_name,last_name,status,role.id,role.name";

fn unreachable(err: reqwest::Error) -> AuthError {
    // The URL may carry a host name worth keeping out of client-facing errors; log it here.
    tracing::warn!(error = %err.without_url(), "Directus unreachable");
    AuthError::Directus("Directus is unreachable".into())
}

impl DirectusClient {
    pub fn new(base_url: &str, admin_token: Secret, timeout: Duration) -> Result<Self, AuthError> {
        // reqwest's rustls has no provider of its own here; installing ring twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(2))
            .build()
            .map_err(|err| AuthError::Directus(format!("cannot build the HTTP client: {err}")))?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            admin_token,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// The Directus error code of a failed answer, if it has one.
    async fn error_code(response: reqwest::Response) -> (reqwest::StatusCode, Option<String>) {
        let status = response.status();
        let code = response
            .json::<Errors>()
            .await
            .ok()
            .and_then(|errors| errors.errors.into_iter().next())
            .and_then(|error| error.extensions)
            .and_then(|extensions| extensions.code);
        (status, code)
    }

    async fn tokens(&self, path: &str, body: serde_json::Value) -> Result<Tokens, AuthError> {
        let response = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .map_err(unreachable)?;
        if response.status().is_success() {
            let data: TokenData = data_of(response, "token").await?;
            return Ok(Tokens {
                access_token: data.access_token,
                refresh_token: data.refresh_token,
                expires: Duration::from_millis(data.expires),
            });
        }
        match Self::error_code(response).await {
            (status, _) if status.is_client_error() => Err(AuthError::InvalidCredentials),
            (status, code) => Err(AuthError::Directus(format!(
                "Directus answered {status} {}",
                code.unwrap_or_default()
            ))),
        }
    }

    pub async fn login(&self, email: &str, password: &str) -> Result<Tokens, AuthError> {
        self.tokens(
            "/auth/login",
            json!({"email": email, "password": password, "mode": "json"}),
        )
        .await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, AuthError> {
        self.tokens(
            "/auth/refresh",
            json!({"refresh_token": refresh_token, "mode": "json"}),
        )
        .await
    }

    /// Ends the Directus session; an unknown token is already logged out.
    pub async fn logout(&self, refresh_token: &str) -> Result<(), AuthError> {
        let response = self
            .http
            .post(self.url("/auth/logout"))
            .json(&json!({"refresh_token": refresh_token}))
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        if status.is_success() || status.is_client_error() {
            Ok(())
        } else {
            Err(AuthError::Directus(format!(
                "Directus answered {status} to logout"
            )))
        }
    }

    /// The user with this id, or `None` when Directus has none (it answers 403 rather than 404
    /// for items that do not exist).
    pub async fn user(&self, id: Uuid) -> Result<Option<DirectusUser>, AuthError> {
        let response = self
            .http
            .get(self.url(&format!("/users/{id}?fields={USER_FIELDS}")))
            .bearer_auth(self.admin_token.expose())
            .send()
            .await
            .map_err(unreachable)?;
        match response.status() {
            status if status.is_success() => data_of(response, "user").await.map(Some),
            reqwest::StatusCode::FORBIDDEN | reqwest::StatusCode::NOT_FOUND => Ok(None),
            status => Err(AuthError::Directus(format!(
                "Directus answered {status} for a user"
            ))),
        }
    }

    /// The Directus role whose name is `name`, ignoring case.
    pub async fn role_named(&self, name: &str) -> Result<Option<DirectusRole>, AuthError> {
        let response = self
            .http
            .get(self.url("/roles?fields=id,name&limit=-1"))
            .bearer_auth(self.admin_token.expose())
            .send()
            .await
            .map_err(unreachable)?;
        if !response.status().is_success() {
            let status = response.status();
            return Err(AuthError::Directus(format!(
                "Directus answered {status} for roles"
            )));
        }
        let roles: Vec<DirectusRole> = data_of(response, "roles").await?;
        Ok(roles
            .into_iter()
            .find(|role| role.name.eq_ignore_ascii_case(name)))
    }

    /// Changes the user's fields in Directus (names, email) with the administrator's token.
    pub async fn update_user(
        &self,
        id: Uuid,
        change: serde_json::Map<String, serde_json::Value>,
    ) -> Result<DirectusUser, AuthError> {
        let response = self
            .http
            .patch(self.url(&format!("/users/{id}?fields={USER_FIELDS}")))
            .bearer_auth(self.admin_token.expose())
            .json(&change)
            .send()
            .await
            .map_err(unreachable)?;
        if response.status().is_success() {
            return data_of(response, "user").await;
        }
        match Self::error_code(response).await {
            (_, Some(code)) if code == "RECORD_NOT_UNIQUE" => Err(AuthError::EmailTaken),
            (status, _) if status == reqwest::StatusCode::FORBIDDEN => {
                Err(AuthError::NotFound("user"))
            }
            (status, code) => Err(AuthError::Directus(format!(
                "Directus refused the change: {status} {}",
                code.unwrap_or_default()
            ))),
        }
    }

    /// Creates an active user in Directus with this role.
    pub async fn create_user(
        &self,
        email: &str,
        password: &str,
        role: Uuid,
        first_name: Option<&str>,
        last_name: Option<&str>,
    ) -> Result<DirectusUser, AuthError> {
        let response = self
            .http
            .post(self.url(&format!("/users?fields={USER_FIELDS}")))
            .bearer_auth(self.admin_token.expose())
            .json(&json!({
                "email": email,
                "password": password,
                "role": role,
                "status": "active",
                "first_name": first_name,
                "last_name": last_name,
            }))
            .send()
            .await
            .map_err(unreachable)?;
        if response.status().is_success() {
            return data_of(response, "user").await;
        }
        match Self::error_code(response).await {
            (_, Some(code)) if code == "RECORD_NOT_UNIQUE" => Err(AuthError::EmailTaken),
            (status, code) => Err(AuthError::Directus(format!(
                "Directus refused the new user: {status} {}",
                code.unwrap_or_default()
            ))),
        }
    }
}
