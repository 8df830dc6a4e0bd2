//! Where posts go out: a connector publishes one post to its platform. The one shipped is a
//! webhook: it POSTs the post as JSON to a configured URL, signed with HMAC-SHA256 over a
//! timestamp and the body, so the receiver can tell the post is ours and not a replay. Platform
//! connectors (OnlyFans, Fansly, …) need network access this build does not have
//! (svc-queue/README.md, "Publishing").

use std::time::Duration;

use base64::Engine as _;
use ring::hmac;
use serde_json::{Value, json};

use common::secret::Secret;

/// The header carrying the signature: `v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub const SIGNATURE_HEADER: &str = "x-genie-signature";
/// The header carrying the Unix time (seconds) the request was signed at.
pub const TIMESTAMP_HEADER: &str = "x-genie-timestamp";
/// The header carrying the post's id: the same post delivered again (at least once) carries the
/// same one, for the receiver to publish it once.
pub const DELIVERY_HEADER: &str = "x-genie-delivery";

/// A post to publish, with its media.
#[derive(Debug, Clone)]
pub struct Publication {
    pub post_id: uuid::Uuid,
    pub creator_profile_id: uuid::Uuid,
    pub platform: String,
    pub caption: String,
    pub platform_specific_config: Value,
    pub scheduled_for: chrono::DateTime<chrono::Utc>,
    pub media: Option<Media>,
}

#[derive(Debug, Clone)]
pub struct Media {
    pub file_id: uuid::Uuid,
    pub content_type: String,
    pub sha256: String,
    pub bytes: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// Another attempt may work (the receiver unreachable, slow, 5xx, 408, 429).
    #[error("{0}")]
    Transient(String),
    /// The receiver refused the post; sending it again would not change that.
    #[error("{0}")]
    Refused(String),
}

#[tonic::async_trait]
pub trait Connector: Send + Sync {
    /// Publishes the post; what the platform said of it (its id, its address), as JSON.
    async fn publish(&self, post: &Publication) -> Result<Value, ConnectorError>;
}

pub struct Webhook {
    client: reqwest::Client,
    url: url::Url,
    key: hmac::Key,
}

impl Webhook {
    pub fn new(url: url::Url, secret: &Secret, timeout: Duration) -> Result<Self, reqwest::Error> {
        // reqwest's rustls has no provider of its own here; installing ring twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("genie-svc-queue")
            .build()?;
        Ok(Self {
            client,
            url,
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.expose().as_bytes()),
        })
    }
}

/// `v1=<hex>` over `"<timestamp>.<body>"`.
pub fn signature(key: &hmac::Key, timestamp: i64, body: &[u8]) -> String {
    let mut signed = Vec::with_capacity(body.len() + 21);
    signed.extend_from_slice(timestamp.to_string().as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    format!("v1={}", hex::encode(hmac::sign(key, &signed).as_ref()))
}

/// The JSON the webhook receives.
pub fn body(post: &Publication) -> Value {
    let media = post.media.as_ref().map(|media| {
        json!({
            "file_id": media.file_id,
            "content_type": media.content_type,
            "bytes": media.bytes.len(),
            "sha256": media.sha256,
            "data_base64": base64::engine::general_purpose::STANDARD.encode(&media.bytes),
        })
    });
    json!({
        "post_id": post.post_id,
        "creator_profile_id": post.creator_profile_id,
        "platform": post.platform,
        "caption": post.caption,
        "platform_specific_config": post.platform_specific_config,
        "scheduled_for": post.scheduled_for.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "media": media,
    })
}

/// How much of a receiver's answer is kept as the publication's result.
const MAX_ANSWER_BYTES: usize = 16 * 1024;

#[tonic::async_trait]
impl Connector for Webhook {
    async fn publish(&self, post: &Publication) -> Result<Value, ConnectorError> {
        let body = body(post).to_string().into_bytes();
        let timestamp = chrono::Utc::now().timestamp();
        let signature = signature(&self.key, timestamp, &body);
        let sent = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, signature)
            .header(DELIVERY_HEADER, post.post_id.to_string())
            .body(body)
            .send()
            .await
            // The job's error is its owner's to read; the URL (and any credentials in it) is not.
            .map_err(|err| {
                ConnectorError::Transient(format!(
                    "the publishing webhook failed: {}",
                    err.without_url()
                ))
            })?;
        let status = sent.status();
        if status.is_success() {
            // A receiver may answer what the platform said (`{platform_post_id, url}`); any
            // other answer is kept out of the result.
            let said = bounded_answer(sent)
                .await
                .and_then(|answer| serde_json::from_slice::<Value>(&answer).ok())
                .filter(Value::is_object)
                .unwrap_or(Value::Null);
            return Ok(said);
        }
        let problem = format!("the publishing webhook answered {status}");
        if status.is_server_error()
            || status == reqwest::StatusCode::REQUEST_TIMEOUT
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS
        {
            Err(ConnectorError::Transient(problem))
        } else {
            Err(ConnectorError::Refused(problem))
        }
    }
}

/// The answer's body if it is at most [`MAX_ANSWER_BYTES`]; a longer one is not read further
/// (a receiver cannot make the worker hold a body of any size).
async fn bounded_answer(mut answer: reqwest::Response) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = answer.chunk().await.ok()? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return None;
        }
        body.extend_from_slice(&chunk);
    }
    Some(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_covers_the_timestamp_and_the_body() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"0123456789abcdef0123456789abcdef");
        let signed = signature(&key, 1_700_000_000, b"{\"a\":1}");
        assert!(signed.starts_with("v1="));
        let tag = hex::decode(&signed[3..]).unwrap();
        hmac::verify(&key, b"1700000000.{\"a\":1}", &tag).unwrap();
        assert!(hmac::verify(&key, b"1700000001.{\"a\":1}", &tag).is_err());
        assert_ne!(signature(&key, 1_700_000_000, b"{\"a\":2}"), signed);
    }
}
