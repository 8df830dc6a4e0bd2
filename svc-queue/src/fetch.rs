//! The worker's fetch of a job's `input_url`. It runs inside the platform's network, so every
//! address it connects to is checked (a public name may resolve to a private address, a public
//! page may redirect to one), the body is capped in size and the whole fetch in time, and only
//! media content types are read.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect::{Attempt, Policy};

use crate::operations::{is_private, public_url};

const MAX_REDIRECTS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Fetching again will not help: a refused address, a 4xx, a type that is no media, too big.
    #[error("{0}")]
    Refused(String),
    /// It may work later: the host unreachable, a 5xx, a timeout.
    #[error("{0}")]
    Failed(String),
}

#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    max_bytes: usize,
}

/// Resolves names to their public addresses only.
struct PublicAddresses;

impl Resolve for PublicAddresses {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let public: Vec<SocketAddr> = found.filter(|addr| !is_private(addr.ip())).collect();
            if public.is_empty() {
                return Err("the host resolves only to loopback or private addresses".into());
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

impl Fetcher {
    pub fn new(
        timeout: Duration,
        max_bytes: usize,
        allow_private: bool,
    ) -> Result<Self, reqwest::Error> {
        // reqwest's rustls has no provider of its own here; installing ring twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let redirects = Policy::custom(move |attempt: Attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                attempt.error("too many redirects")
            } else if public_url(attempt.url().as_str(), allow_private).is_err() {
                attempt.error("redirected to a URL this server does not fetch from")
            } else {
                attempt.follow()
            }
        });
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(redirects)
            // A proxy would resolve the name itself, past the check of every address below.
            .no_proxy()
            .user_agent(concat!("genie-svc-queue/", env!("CARGO_PKG_VERSION")));
        if !allow_private {
            builder = builder.dns_resolver(std::sync::Arc::new(PublicAddresses));
        }
        Ok(Self {
            client: builder.build()?,
            max_bytes,
        })
    }

    /// The body at `url`, if it is media of at most the size cap.
    pub async fn fetch(&self, url: &url::Url) -> Result<Vec<u8>, FetchError> {
        let failed = |err: reqwest::Error| {
            let err = err.without_url();
            if err.is_redirect() || err.is_builder() {
                FetchError::Refused(format!("input_url: {err}"))
            } else {
                FetchError::Failed(format!("input_url could not be fetched: {err}"))
            }
        };
        let mut response = self.client.get(url.clone()).send().await.map_err(failed)?;
        let status = response.status();
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(FetchError::Failed(format!("input_url answered {status}")));
        }
        if !status.is_success() {
            return Err(FetchError::Refused(format!("input_url answered {status}")));
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_ascii_lowercase();
        let media = ["image/", "video/", "application/octet-stream"]
            .iter()
            .any(|prefix| content_type.starts_with(prefix));
        if !media {
            return Err(FetchError::Refused(format!(
                "input_url is {content_type}, not an image or a video"
            )));
        }
        let too_big = || {
            FetchError::Refused(format!(
                "input_url is over the {} byte limit of an input",
                self.max_bytes
            ))
        };
        if response
            .content_length()
            .is_some_and(|length| length > self.max_bytes as u64)
        {
            return Err(too_big());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(failed)? {
            if body.len() + chunk.len() > self.max_bytes {
                return Err(too_big());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}
