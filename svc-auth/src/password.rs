//! argon2id password hashing with Directus' parameters, on a pool of its own: `concurrency`
//! threads (each hash holds 64 MiB and a core for about a tenth of a second) at the lowest CPU
//! priority, so that request handling always comes first, fed by a queue of `queue` slots;
//! anything beyond is refused at once with `AuthError::Busy`, so that a flood of logins neither
//! piles up nor starves other work.

use std::sync::LazyLock;

use tokio::sync::oneshot;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::AuthError;

/// A fresh 16-byte salt from the operating system's random source.
fn salt() -> Result<SaltString, AuthError> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| AuthError::Hash("no randomness for a salt".into()))?;
    SaltString::encode_b64(&bytes).map_err(|err| AuthError::Hash(err.to_string()))
}

fn argon2() -> Result<Argon2<'static>, AuthError> {
    // m = 64 MiB, t = 3, p = 4: what Directus uses.
    let params = Params::new(65_536, 3, 4, None).map_err(|err| AuthError::Hash(err.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

type Job = Box<dyn FnOnce() + Send>;

/// Runs at most `concurrency` hashes at once with at most `queue` more waiting. The threads end
/// when the hasher is dropped.
pub struct Hasher {
    jobs: crossbeam_channel::Sender<Job>,
}

impl Hasher {
    pub fn new(concurrency: usize, queue: usize) -> Result<Self, AuthError> {
        let (jobs, inbox) = crossbeam_channel::bounded::<Job>(queue);
        for index in 0..concurrency.max(1) {
            let inbox = inbox.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{index}"))
                .spawn(move || {
                    if let Err(err) = thread_priority::set_current_thread_priority(
                        thread_priority::ThreadPriority::Min,
                    ) {
                        tracing::warn!(error = ?err, "password hashing runs at normal priority");
                    }
                    for job in inbox {
                        job();
                    }
                })
                .map_err(|err| AuthError::Hash(err.to_string()))?;
        }
        Ok(Self { jobs })
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, AuthError> + Send + 'static,
    ) -> Result<T, AuthError> {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move || {
            // The caller may have gone away; the answer is then dropped.
            let _ = answer.send(work());
        });
        self.jobs.try_send(job).map_err(|err| match err {
            crossbeam_channel::TrySendError::Full(_) => AuthError::Busy,
            crossbeam_channel::TrySendError::Disconnected(_) => {
                AuthError::Hash("the hashing threads are gone".into())
            }
        })?;
        answered
            .await
            .map_err(|_| AuthError::Hash("a hashing thread stopped".into()))?
    }

    pub async fn hash(&self, password: String) -> Result<String, AuthError> {
        self.run(move || {
            argon2()?
                .hash_password(password.as_bytes(), &salt()?)
                .map(|hash| hash.to_string())
                .map_err(|err| AuthError::Hash(err.to_string()))
        })
        .await
    }

    /// Whether `password` matches `stored`; with no stored hash the work is done against a decoy
    /// and the answer is always no.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, AuthError> {
        self.run(move || {
            let known = stored.is_some();
            let stored = match stored {
                Some(stored) => stored,
                None => DECOY_HASH.clone().map_err(AuthError::Hash)?,
            };
            let parsed =
                PasswordHash::new(&stored).map_err(|err| AuthError::Hash(err.to_string()))?;
            let matches = argon2()?
                .verify_password(password.as_bytes(), &parsed)
                .is_ok();
            Ok(known && matches)
        })
        .await
    }
}

/// A hash of a password nobody has, verified when the email is unknown so that an unknown email
/// costs the same work as a wrong password. Made once; if it cannot be made, logins of unknown
/// emails fail as internal errors.
static DECOY_HASH: LazyLock<Result<String, String>> = LazyLock::new(|| {
    let salt = salt().map_err(|err| err.to_string())?;
    argon2()
        .map_err(|err| err.to_string())?
        .hash_password(b"decoy password for unknown emails", &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| err.to_string())
});

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_with_argon2id_and_verifies() {
        let hasher = Hasher::new(2, 2).unwrap();
        let stored = hasher.hash("correct horse battery".into()).await.unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=65536,t=3,p=4$"),
            "{stored}"
        );
        assert!(
            hasher
                .verify("correct horse battery".into(), Some(stored.clone()))
                .await
                .unwrap()
        );
        assert!(!hasher.verify("wrong".into(), Some(stored)).await.unwrap());
        assert!(
            !hasher
                .verify("decoy password for unknown emails".into(), None)
                .await
                .unwrap()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn beyond_the_running_and_waiting_hashes_a_caller_is_refused_at_once() {
        let hasher = std::sync::Arc::new(Hasher::new(1, 1).unwrap());
        let calls: Vec<_> = (0..6)
            .map(|_| {
                let hasher = hasher.clone();
                tokio::spawn(async move {
                    let started = std::time::Instant::now();
                    let outcome = hasher.verify("password".into(), None).await;
                    (outcome, started.elapsed())
                })
            })
            .collect();
        let mut refused = 0;
        let mut done = 0;
        for call in calls {
            match call.await.unwrap() {
                (Err(AuthError::Busy), waited) => {
                    refused += 1;
                    assert!(waited < std::time::Duration::from_millis(50), "{waited:?}");
                }
                (Ok(false), _) => done += 1,
                (other, _) => panic!("{other:?}"),
            }
        }
        // One runs and one waits; the second is also refused when it came before the thread
        // took the first off the queue.
        assert!(
            (1..=2).contains(&done) && done + refused == 6,
            "{done} done, {refused} refused"
        );
        assert!(!hasher.verify("password".into(), None).await.unwrap());
    }
}
