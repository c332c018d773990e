//! A [`Cache`] adapter written outside Tenantry: one file per key in a folder, the expiry
//! stored in the file. It is what a team would write to run Tenantry's cache on a shared
//! volume, and it shows the three parts of any adapter:
//!
//! 1. **implement the port** (`tenantry_ports::Cache`), mapping the store's errors to the
//!    port's variants at the seam (here every I/O failure is [`CacheError::Unavailable`]);
//! 2. **run the port's contract suite** from the test kit against it
//!    (`tests/contract.rs`: `tenantry_testkit::cache::run_contract`);
//! 3. **hand it to the composition root** as `Ports::cache`.
//!
//! [`BrokenFileCache`] is the same adapter with one rule broken (it ignores the TTL given to
//! `set`), kept to show that the suite catches it.
//!
//! Layout: `<folder>/<hex of the key>` holds an 8-byte big-endian expiry (milliseconds since
//! the Unix epoch, 0 for none) followed by the value. Writes go to a temporary file renamed
//! over the old one, so a reader never sees half a value; every read-modify-write runs under
//! an exclusive lock on `<folder>/.lock`, so increments from several processes sharing the
//! folder are not lost either.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tenantry_ports::{Cache, CacheError};

/// The [`Cache`] port over a folder of files.
#[derive(Debug, Clone)]
pub struct FileCache {
    inner: Arc<Folder>,
}

#[derive(Debug)]
struct Folder {
    dir: PathBuf,
    /// Distinguishes this process's temporary files.
    temp_counter: AtomicU64,
}

/// What a key's file holds.
struct Entry {
    /// Milliseconds since the Unix epoch; `None` for no expiry.
    expires_at: Option<u64>,
    value: Vec<u8>,
}

fn now_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn unavailable(err: std::io::Error) -> CacheError {
    CacheError::Unavailable(anyhow::Error::new(err).context("file cache"))
}

impl FileCache {
    /// A cache in `dir`, created if missing.
    ///
    /// # Errors
    /// When the folder cannot be created.
    pub fn open(dir: impl AsRef<Path>) -> std::io::Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir)?;
        Ok(Self { inner: Arc::new(Folder { dir, temp_counter: AtomicU64::new(0) }) })
    }

    /// Runs `work` on the blocking pool (file I/O must not stall the async workers), holding
    /// the folder's lock: exclusive for writes, shared for reads.
    async fn locked<T, F>(&self, exclusive: bool, work: F) -> Result<T, CacheError>
    where
        T: Send + 'static,
        F: FnOnce(&Folder) -> Result<T, CacheError> + Send + 'static,
    {
        let folder = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let lock = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(folder.dir.join(".lock"))
                .map_err(unavailable)?;
            if exclusive { lock.lock() } else { lock.lock_shared() }.map_err(unavailable)?;
            let result = work(&folder);
            // Dropping the file releases the lock too; unlocking first says so.
            let _ = lock.unlock();
            result
        })
        .await
        .map_err(|err| CacheError::Unexpected(anyhow::Error::new(err)))?
    }
}

impl Folder {
    fn path(&self, key: &str) -> PathBuf {
        // Hex keeps any key a valid, collision-free file name.
        self.dir.join(hex::encode(key.as_bytes()))
    }

    /// The live entry at `key`; an expired one is removed and reads as absent.
    fn read(&self, key: &str) -> Result<Option<Entry>, CacheError> {
        let path = self.path(key);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(unavailable(err)),
        };
        let Some((head, value)) = bytes.split_first_chunk::<8>() else {
            return Err(CacheError::Unexpected(anyhow::anyhow!("a cache file shorter than its header")));
        };
        let expires_at = Some(u64::from_be_bytes(*head)).filter(|at| *at != 0);
        if expires_at.is_some_and(|at| at <= now_millis()) {
            // Writers hold the lock exclusively, so no write is under way; two readers removing
            // the same expired file is harmless.
            let _ = fs::remove_file(&path);
            return Ok(None);
        }
        Ok(Some(Entry { expires_at, value: value.to_vec() }))
    }

    /// Replaces `key`'s file atomically (write a temporary file, rename it over).
    fn write(&self, key: &str, entry: &Entry) -> Result<(), CacheError> {
        let n = self.temp_counter.fetch_add(1, Ordering::Relaxed);
        let temp = self.dir.join(format!(".tmp-{}-{n}", std::process::id()));
        let mut file = File::create(&temp).map_err(unavailable)?;
        file.write_all(&entry.expires_at.unwrap_or(0).to_be_bytes()).map_err(unavailable)?;
        file.write_all(&entry.value).map_err(unavailable)?;
        file.sync_data().map_err(unavailable)?;
        fs::rename(&temp, self.path(key)).map_err(unavailable)
    }

    fn remove(&self, key: &str) -> Result<bool, CacheError> {
        match fs::remove_file(self.path(key)) {
            Ok(()) => Ok(true),
            Err(err) if err.kind() == ErrorKind::NotFound => Ok(false),
            Err(err) => Err(unavailable(err)),
        }
    }
}

fn expiry(ttl: Option<Duration>) -> Option<u64> {
    ttl.map(|ttl| now_millis().saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)))
}

#[async_trait::async_trait]
impl Cache for FileCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let key = key.to_owned();
        self.locked(false, move |folder| Ok(folder.read(&key)?.map(|entry| entry.value))).await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, CacheError> {
        let keys = keys.to_vec();
        self.locked(false, move |folder| {
            keys.iter().map(|key| Ok(folder.read(key)?.map(|entry| entry.value))).collect()
        })
        .await
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), CacheError> {
        let (key, value) = (key.to_owned(), value.to_vec());
        self.locked(true, move |folder| folder.write(&key, &Entry { expires_at: expiry(ttl), value })).await
    }

    async fn set_if_absent(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool, CacheError> {
        let (key, value) = (key.to_owned(), value.to_vec());
        self.locked(true, move |folder| {
            if folder.read(&key)?.is_some() {
                return Ok(false);
            }
            folder.write(&key, &Entry { expires_at: expiry(ttl), value })?;
            Ok(true)
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        let key = key.to_owned();
        // An expired entry reads as absent (and is removed by the read): nothing was deleted.
        self.locked(true, move |folder| if folder.read(&key)?.is_some() { folder.remove(&key) } else { Ok(false) })
            .await
    }

    async fn increment(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64, CacheError> {
        let key = key.to_owned();
        self.locked(true, move |folder| {
            let (current, expires_at) = match folder.read(&key)? {
                Some(entry) => {
                    let text = std::str::from_utf8(&entry.value).map_err(|_| CacheError::NotAnInteger)?;
                    (text.parse::<i64>().map_err(|_| CacheError::NotAnInteger)?, entry.expires_at)
                }
                // The TTL applies only when this call creates the key.
                None => (0, expiry(ttl)),
            };
            let next =
                current.checked_add(by).ok_or_else(|| CacheError::Unexpected(anyhow::anyhow!("counter overflow")))?;
            folder.write(&key, &Entry { expires_at, value: next.to_string().into_bytes() })?;
            Ok(next)
        })
        .await
    }

    async fn ttl(&self, key: &str) -> Result<Option<Duration>, CacheError> {
        let key = key.to_owned();
        self.locked(false, move |folder| {
            Ok(folder
                .read(&key)?
                .and_then(|entry| entry.expires_at)
                .map(|at| Duration::from_millis(at.saturating_sub(now_millis()))))
        })
        .await
    }

    async fn ping(&self) -> Result<(), CacheError> {
        let dir = self.inner.dir.clone();
        let metadata = tokio::task::spawn_blocking(move || fs::metadata(dir))
            .await
            .map_err(|err| CacheError::Unexpected(anyhow::Error::new(err)))?
            .map_err(unavailable)?;
        if metadata.is_dir() {
            Ok(())
        } else {
            Err(CacheError::Unavailable(anyhow::anyhow!("the cache folder is not a folder")))
        }
    }
}

/// [`FileCache`] with one rule of the port broken on purpose: `set` ignores its TTL, so
/// entries meant to expire (revocations, idempotency markers) live forever.
/// `tests/contract.rs` shows the contract suite failing on it.
#[derive(Debug, Clone)]
pub struct BrokenFileCache(pub FileCache);

#[async_trait::async_trait]
impl Cache for BrokenFileCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        self.0.get(key).await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, CacheError> {
        self.0.get_many(keys).await
    }

    async fn set(&self, key: &str, value: &[u8], _ttl: Option<Duration>) -> Result<(), CacheError> {
        // The bug: the TTL is dropped.
        self.0.set(key, value, None).await
    }

    async fn set_if_absent(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool, CacheError> {
        self.0.set_if_absent(key, value, ttl).await
    }

    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        self.0.delete(key).await
    }

    async fn increment(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64, CacheError> {
        self.0.increment(key, by, ttl).await
    }

    async fn ttl(&self, key: &str) -> Result<Option<Duration>, CacheError> {
        self.0.ttl(key).await
    }

    async fn ping(&self) -> Result<(), CacheError> {
        self.0.ping().await
    }
}
