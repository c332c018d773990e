use std::sync::{Arc, Mutex, PoisonError, mpsc};

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
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

/// A job for the hashing threads, handed that thread's argon2 working memory.
type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// [`PasswordHasher`] with argon2id on a small pool of dedicated threads.
///
/// Dedicated threads, not tokio's blocking pool: the pool bounds concurrency *and* memory.
/// Each thread allocates its argon2 working area (19 MiB by default) once and reuses it for
/// every hash: allocating and freeing it per hash made glibc raise its mmap threshold after the
/// first free, after which each hash's area came from the heap and fragments of it stayed
/// resident (the server's peak grew by 19 MiB per registration, to ~195 MiB after eight;
/// `bench/memory.sh`). Queued jobs whose request has gone away (timeout, disconnect) are
/// skipped, so a flood cannot leave minutes of pointless hashing behind.
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
        let dummy_hash = hash_now(&params, "tenantry dummy password for unknown accounts", &mut Vec::new())?;
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for index in 0..settings.max_concurrent.max(1) {
            let receiver = Arc::clone(&receiver);
            std::thread::Builder::new()
                .name(format!("tenantry-argon2-{index}"))
                .spawn(move || {
                    let mut memory = Vec::new();
                    loop {
                        let job = {
                            let guard = receiver.lock().unwrap_or_else(PoisonError::into_inner);
                            match guard.recv() {
                                Ok(job) => job,
                                // The hasher was dropped: no more work will come.
                                Err(_) => break,
                            }
                        };
                        job(&mut memory);
                    }
                })
                .map_err(|err| CryptoError::Unavailable(anyhow::Error::new(err)))?;
        }
        Ok(Self { params, jobs: Mutex::new(sender), dummy_hash })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> Result<T, CryptoError> + Send + 'static,
    ) -> Result<T, CryptoError> {
        let (reply, answer) = oneshot::channel();
        let span = tracing::Span::current();
        let job: Job = Box::new(move |memory| {
            if reply.is_closed() {
                return;
            }
            // The caller may have gone meanwhile: nobody to tell, nothing to do.
            let _ = reply.send(span.in_scope(|| work(memory)));
        });
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send(job)
            .map_err(|_| CryptoError::Unavailable(anyhow::anyhow!("the hashing threads are gone")))?;
        answer.await.map_err(|err| CryptoError::Unavailable(anyhow::Error::new(err)))?
    }
}

/// `memory` with room for `params`' blocks: grown (never shrunk) to the largest cost seen, so
/// the hashing thread keeps one area for good instead of allocating one per hash.
fn working_area<'a>(memory: &'a mut Vec<Block>, params: &Params) -> &'a mut [Block] {
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    &mut memory[..blocks]
}

/// The raw argon2 output of `password` with `salt` under `algorithm`, `version` and `params`,
/// `length` bytes long, computed in `memory`.
fn derive(
    (algorithm, version, params): (Algorithm, Version, &Params),
    password: &str,
    salt: &[u8],
    length: usize,
    memory: &mut Vec<Block>,
) -> Result<Output, CryptoError> {
    let argon = Argon2::new(algorithm, version, params.clone());
    Output::init_with(length, |out| {
        argon
            .hash_password_into_with_memory(password.as_bytes(), salt, out, working_area(memory, params))
            .map_err(|_| argon2::password_hash::Error::Crypto)
    })
    .map_err(|_| CryptoError::Malformed)
}

fn hash_now(params: &Params, password: &str, memory: &mut Vec<Block>) -> Result<String, CryptoError> {
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0_u8; 64];
    let raw_salt = salt.as_salt().decode_b64(&mut salt_bytes).map_err(|_| CryptoError::Malformed)?;
    let length = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let output = derive((Algorithm::Argon2id, Version::V0x13, params), password, raw_salt, length, memory)?;
    let hash = PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|_| CryptoError::Malformed)?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(hash.to_string())
}

fn verify_now(
    params: &Params,
    password: &str,
    phc: &str,
    memory: &mut Vec<Block>,
) -> Result<PasswordCheck, CryptoError> {
    let parsed = PasswordHash::new(phc).map_err(|_| CryptoError::Malformed)?;
    // Verify with the algorithm, version and parameters stored in the hash, whatever today's are.
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(|_| CryptoError::Malformed)?;
    let version = parsed.version.map_or(Ok(Version::V0x13), Version::try_from).map_err(|_| CryptoError::Malformed)?;
    let stored = Params::try_from(&parsed).map_err(|_| CryptoError::Malformed)?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(CryptoError::Malformed);
    };
    let mut salt_bytes = [0_u8; 64];
    let raw_salt = salt.decode_b64(&mut salt_bytes).map_err(|_| CryptoError::Malformed)?;
    let computed = derive((algorithm, version, &stored), password, raw_salt, expected.len(), memory)?;
    // `Output`'s equality is constant-time.
    if computed != expected {
        return Ok(PasswordCheck::Invalid);
    }
    let current = algorithm == Algorithm::Argon2id
        && version == Version::V0x13
        && stored.m_cost() == params.m_cost()
        && stored.t_cost() == params.t_cost()
        && stored.p_cost() == params.p_cost();
    Ok(PasswordCheck::Valid { needs_rehash: !current })
}

#[async_trait::async_trait]
impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: &str) -> Result<String, CryptoError> {
        let params = self.params.clone();
        let password = password.to_owned();
        self.blocking(move |memory| hash_now(&params, &password, memory))
            .instrument(tracing::info_span!("adapter.crypto.argon2.hash"))
            .await
    }

    async fn verify(&self, password: &str, phc: &str) -> Result<PasswordCheck, CryptoError> {
        let params = self.params.clone();
        let (password, phc) = (password.to_owned(), phc.to_owned());
        self.blocking(move |memory| verify_now(&params, &password, &phc, memory))
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

    #[tokio::test]
    async fn hashes_read_both_ways_with_the_argon2_crates_own_phc_code() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let hasher = Argon2Hasher::new(cheap()).expect("params");
        // Ours, checked by the crate's verifier (as every stored hash before this code was).
        let ours = hasher.hash("correct horse battery staple").await.expect("hash");
        let parsed = PasswordHash::new(&ours).expect("a PHC string");
        Argon2::default().verify_password(b"correct horse battery staple", &parsed).expect("the crate agrees");
        assert!(Argon2::default().verify_password(b"wrong", &parsed).is_err());
        // The crate's, checked by ours: stored hashes keep working.
        let params = Params::new(1024, 1, 1, None).expect("params");
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
            .hash_password(b"correct horse battery staple", &salt)
            .expect("hash")
            .to_string();
        assert_eq!(
            hasher.verify("correct horse battery staple", &theirs).await.expect("verify"),
            PasswordCheck::Valid { needs_rehash: false }
        );
        assert_eq!(
            hasher.verify("correct horse battery stapler", &theirs).await.expect("verify"),
            PasswordCheck::Invalid
        );
        // Another variant of argon2 verifies, and asks to be replaced by argon2id.
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, params.clone())
            .hash_password(b"correct horse battery staple", &salt)
            .expect("hash")
            .to_string();
        assert_eq!(
            hasher.verify("correct horse battery staple", &argon2i).await.expect("verify"),
            PasswordCheck::Valid { needs_rehash: true }
        );
    }

    #[tokio::test]
    async fn a_larger_stored_cost_still_verifies_on_a_thread_sized_for_todays() {
        let small = Argon2Hasher::new(Argon2Settings { max_concurrent: 1, ..cheap() }).expect("params");
        let big = Argon2Hasher::new(Argon2Settings { memory_kib: 4096, ..cheap() }).expect("params");
        let phc = big.hash("correct horse battery staple").await.expect("hash");
        small.hash("warm the thread's area at 1 MiB").await.expect("hash");
        assert_eq!(
            small.verify("correct horse battery staple", &phc).await.expect("verify"),
            PasswordCheck::Valid { needs_rehash: true }
        );
        let cheaper = Argon2Hasher::new(cheap()).expect("params").hash("x y z long enough").await.expect("hash");
        assert_eq!(
            small.verify("x y z long enough", &cheaper).await.expect("verify"),
            PasswordCheck::Valid { needs_rehash: false }
        );
    }

    #[test]
    fn the_default_is_owasp_argon2id() {
        let settings = Argon2Settings::default();
        assert_eq!((settings.memory_kib, settings.iterations, settings.parallelism), (19_456, 2, 1));
        assert!(settings.max_concurrent >= 1);
    }
}
