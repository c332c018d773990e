use std::sync::{Arc, Mutex, PoisonError, mpsc};

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::rngs::OsRng;
use tenantry_ports::{CryptoError, PasswordCheck, PasswordHasher};
use tokio::sync::oneshot;
use tracing::Instrument;

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Settings {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
    /// Hashing threads, so hashes computed at once; further requests wait their turn, so a
    /// login flood neither starves other requests of CPU nor allocates `memory_kib` per
    /// waiting request.
    pub max_concurrent: usize,
}

impl Default for Argon2Settings {
    /// OWASP's recommended argon2id minimum (m=19456 KiB, t=2, p=1); one hash at a time per
    /// core but one, leaving a core for everything else.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Self { memory_kib: 19_456, iterations: 2, parallelism: 1, max_concurrent: cores.saturating_sub(1).max(1) }
    }
}

/// A job for the hashing threads.
type Job = Box<dyn FnOnce() + Send>;

/// [`PasswordHasher`] with argon2id on a small pool of dedicated threads.
///
/// Dedicated threads, not tokio's blocking pool: the pool bounds concurrency *and* memory —
/// each thread's allocator keeps its one 19 MiB working area, where a growing set of blocking
/// threads would each keep one (hundreds of MiB after a login flood). Queued jobs whose request
/// has gone away (timeout, disconnect) are skipped, so a flood cannot leave minutes of
/// pointless hashing behind.
pub struct Argon2Hasher {
    params: Params,
    jobs: Mutex<mpsc::Sender<Job>>,
    dummy_hash: String,
}

impl Argon2Hasher {
    /// A hasher with `settings`, starting `max_concurrent` hashing threads; computes one dummy
    /// hash up front (for unknown accounts).
    ///
    /// # Errors
    /// [`CryptoError::Malformed`] for parameters argon2 refuses; [`CryptoError::Unavailable`]
    /// when a thread cannot be started.
    pub fn new(settings: Argon2Settings) -> Result<Self, CryptoError> {
        let params = Params::new(settings.memory_kib, settings.iterations, settings.parallelism, None)
            .map_err(|_| CryptoError::Malformed)?;
        let dummy_hash = hash_now(&params, "tenantry dummy password for unknown accounts")?;
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for index in 0..settings.max_concurrent.max(1) {
            let receiver = Arc::clone(&receiver);
            std::thread::Builder::new()
                .name(format!("tenantry-argon2-{index}"))
                .spawn(move || {
                    loop {
                        let job = {
                            let guard = receiver.lock().unwrap_or_else(PoisonError::into_inner);
                            match guard.recv() {
                                Ok(job) => job,
                                // The hasher was dropped: no more work will come.
                                Err(_) => break,
                            }
                        };
                        job();
                    }
                })
                .map_err(|err| CryptoError::Unavailable(anyhow::Error::new(err)))?;
        }
        Ok(Self { params, jobs: Mutex::new(sender), dummy_hash })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, CryptoError> + Send + 'static,
    ) -> Result<T, CryptoError> {
        let (reply, answer) = oneshot::channel();
        let span = tracing::Span::current();
        let job: Job = Box::new(move || {
            if reply.is_closed() {
                return;
            }
            // The caller may have gone meanwhile: nobody to tell, nothing to do.
            let _ = reply.send(span.in_scope(work));
        });
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send(job)
            .map_err(|_| CryptoError::Unavailable(anyhow::anyhow!("the hashing threads are gone")))?;
        answer.await.map_err(|err| CryptoError::Unavailable(anyhow::Error::new(err)))?
    }
}

fn argon(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

fn hash_now(params: &Params, password: &str) -> Result<String, CryptoError> {
    let salt = SaltString::generate(&mut OsRng);
    argon(params)
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|_| CryptoError::Malformed)
}

fn verify_now(params: &Params, password: &str, phc: &str) -> Result<PasswordCheck, CryptoError> {
    let parsed = PasswordHash::new(phc).map_err(|_| CryptoError::Malformed)?;
    // Verify with the parameters stored in the hash, whatever today's are.
    match Argon2::default().verify_password(password.as_bytes(), &parsed) {
        Ok(()) => {
            let current = parsed.algorithm.as_str() == "argon2id"
                && Params::try_from(&parsed).is_ok_and(|stored| {
                    stored.m_cost() == params.m_cost()
                        && stored.t_cost() == params.t_cost()
                        && stored.p_cost() == params.p_cost()
                });
            Ok(PasswordCheck::Valid { needs_rehash: !current })
        }
        Err(argon2::password_hash::Error::Password) => Ok(PasswordCheck::Invalid),
        Err(_) => Err(CryptoError::Malformed),
    }
}

#[async_trait::async_trait]
impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: &str) -> Result<String, CryptoError> {
        let params = self.params.clone();
        let password = password.to_owned();
        self.blocking(move || hash_now(&params, &password))
            .instrument(tracing::info_span!("adapter.crypto.argon2.hash"))
            .await
    }

    async fn verify(&self, password: &str, phc: &str) -> Result<PasswordCheck, CryptoError> {
        let params = self.params.clone();
        let (password, phc) = (password.to_owned(), phc.to_owned());
        self.blocking(move || verify_now(&params, &password, &phc))
            .instrument(tracing::info_span!("adapter.crypto.argon2.verify"))
            .await
    }

    async fn verify_dummy(&self, password: &str) -> Result<(), CryptoError> {
        self.verify(password, &self.dummy_hash.clone()).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Argon2Settings {
        Argon2Settings { memory_kib: 1024, iterations: 1, parallelism: 1, max_concurrent: 2 }
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let hasher = Argon2Hasher::new(cheap()).expect("params");
        let phc = hasher.hash("correct horse battery staple").await.expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{phc}");
        assert_eq!(
            hasher.verify("correct horse battery staple", &phc).await.expect("verify"),
            PasswordCheck::Valid { needs_rehash: false }
        );
        assert_eq!(hasher.verify("wrong horse", &phc).await.expect("verify"), PasswordCheck::Invalid);
        let again = hasher.hash("correct horse battery staple").await.expect("hash");
        assert_ne!(phc, again, "every hash has its own salt");
    }

    #[tokio::test]
    async fn hashes_with_old_parameters_ask_for_a_rehash() {
        let old = Argon2Hasher::new(cheap()).expect("params");
        let phc = old.hash("correct horse battery staple").await.expect("hash");
        let current = Argon2Hasher::new(Argon2Settings { memory_kib: 2048, ..cheap() }).expect("params");
        assert_eq!(
            current.verify("correct horse battery staple", &phc).await.expect("verify"),
            PasswordCheck::Valid { needs_rehash: true }
        );
    }

    #[tokio::test]
    async fn garbage_hashes_are_malformed_and_the_dummy_never_matches() {
        let hasher = Argon2Hasher::new(cheap()).expect("params");
        assert!(matches!(hasher.verify("x", "not a phc").await, Err(CryptoError::Malformed)));
        hasher.verify_dummy("anything").await.expect("dummy verify runs");
    }

    #[tokio::test]
    async fn concurrent_requests_are_all_answered_by_the_bounded_pool() {
        let hasher = Arc::new(Argon2Hasher::new(Argon2Settings { max_concurrent: 1, ..cheap() }).expect("params"));
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let hasher = Arc::clone(&hasher);
                tokio::spawn(async move { hasher.hash(&format!("password number {i}")).await })
            })
            .collect();
        for task in tasks {
            assert!(task.await.expect("joined").expect("hashed").starts_with("$argon2id$"));
        }
    }

    #[test]
    fn the_default_is_owasp_argon2id() {
        let settings = Argon2Settings::default();
        assert_eq!((settings.memory_kib, settings.iterations, settings.parallelism), (19_456, 2, 1));
        assert!(settings.max_concurrent >= 1);
    }
}
