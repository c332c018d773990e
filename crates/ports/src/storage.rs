//! Object storage for uploaded files: the bytes, never the metadata (that is a database row).
//!
//! The port is shaped by what a file service must guarantee rather than by what a bucket can
//! do: objects are addressed only by tenant and file id (so a user-sent name can never reach a
//! path), uploads are pulled chunk by chunk with the size limit and the SHA-256 applied as the
//! bytes arrive (so nothing is ever held whole in memory and an oversize upload is cut off at
//! once), and a failed upload leaves nothing behind.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tenantry_domain::OrgId;
use uuid::Uuid;

/// Where one file's bytes live: `orgs/{org_id}/files/{file_id}`.
///
/// Built only from the tenant and the file id, so a name a user sent can never choose (or
/// escape) a path, and every object of an org shares one prefix that org deletion removes at
/// once. The derived order is the order of the textual keys (both ids print as fixed-width
/// lower-case hex), which is the order object stores list in; listing cursors rely on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    org_id: OrgId,
    file_id: Uuid,
}

impl ObjectKey {
    /// The key of file `file_id` of org `org_id`: the only constructor, so every key is
    /// tenant-scoped by construction.
    pub const fn new(org_id: OrgId, file_id: Uuid) -> Self {
        Self { org_id, file_id }
    }

    /// The tenant that owns the object.
    pub const fn org_id(&self) -> OrgId {
        self.org_id
    }

    /// The file the object holds the bytes of.
    pub const fn file_id(&self) -> Uuid {
        self.file_id
    }

    /// `orgs/{org_id}/files/`: the prefix every object of `org_id` starts with.
    pub fn org_prefix(org_id: OrgId) -> String {
        format!("orgs/{org_id}/files/")
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "orgs/{}/files/{}", self.org_id, self.file_id)
    }
}

/// A string that is not `orgs/{uuid}/files/{uuid}` in canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an object key: {0:?}")]
pub struct InvalidObjectKey(pub String);

impl FromStr for ObjectKey {
    type Err = InvalidObjectKey;

    /// Parses a key read back from a listing. Only the canonical form (lower-case, hyphenated
    /// ids) is accepted, so parsing and printing round-trip and a stray object in the bucket is
    /// never mistaken for a file.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidObjectKey(s.to_owned());
        let rest = s.strip_prefix("orgs/").ok_or_else(invalid)?;
        let (org, file) = rest.split_once("/files/").ok_or_else(invalid)?;
        let org_id: OrgId = org.parse().map_err(|_| invalid())?;
        let file_id = Uuid::parse_str(file).map_err(|_| invalid())?;
        let key = Self::new(org_id, file_id);
        if key.to_string() == s { Ok(key) } else { Err(invalid()) }
    }
}

/// A byte range of an object, as an HTTP `Range` header asks for it.
///
/// Resolved against the object's size by [`ByteRange::resolve`], the one place that decides
/// what is satisfiable, so every adapter answers a range the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// Bytes `start..end` (end exclusive; an end past the object is cut to its size).
    /// HTTP `bytes=first-last` is `Bounded { start: first, end: last + 1 }`.
    Bounded {
        /// First byte offset.
        start: u64,
        /// One past the last byte wanted.
        end: u64,
    },
    /// From `start` to the end (HTTP `bytes=start-`).
    From(u64),
    /// The last `n` bytes (HTTP `bytes=-n`); all of them when the object is shorter.
    Suffix(u64),
}

impl ByteRange {
    /// The concrete range of an object of `size` bytes, or `None` when unsatisfiable (it starts
    /// at or past the end, is empty, or the object is empty): HTTP's 416 cases.
    pub fn resolve(self, size: u64) -> Option<Range<u64>> {
        let range = match self {
            Self::Bounded { start, end } => start..end.min(size),
            Self::From(start) => start..size,
            Self::Suffix(n) => size.saturating_sub(n)..size,
        };
        (range.start < range.end).then_some(range)
    }
}

/// Failures of [`ObjectStorage`]; callers branch on them, never on driver errors.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// No object at that key.
    #[error("object not found")]
    NotFound,
    /// The upload passed `limit` bytes; it was cut off there and nothing was stored.
    #[error("object larger than {limit} bytes")]
    TooLarge {
        /// The limit that was passed, in bytes.
        limit: u64,
    },
    /// The requested range lies outside the object (HTTP 416, which must name `size`).
    #[error("range not satisfiable for an object of {size} bytes")]
    RangeNotSatisfiable {
        /// The object's size, for `Content-Range: bytes */{size}`.
        size: u64,
    },
    /// The bytes being uploaded stopped before their end (the client went away, or its body
    /// was malformed). Nothing was stored. Raised by a [`ChunkSource`], passed through by `put`.
    #[error("upload interrupted")]
    Interrupted(#[source] anyhow::Error),
    /// The store could not be reached or failed to answer (network, timeout, a full disk);
    /// retrying later may work.
    #[error("object storage unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// Anything else the adapter did not expect (refused credentials, a misconfiguration);
    /// carries the cause for the logs.
    #[error("unexpected object storage failure")]
    Unexpected(#[source] anyhow::Error),
}

/// A stream of byte chunks pulled one at a time: an upload's body going in, a download's body
/// coming out.
///
/// Pull-based so the consumer sets the pace: `put` stops pulling the moment the size limit is
/// passed (the rest of an oversize body is never read), and a slow downloader never makes the
/// store buffer ahead. A plain trait rather than `futures::Stream` keeps the ports crate free
/// of stream and runtime crates; an HTTP body bridges to it with a few lines (or a channel,
/// when the body is not `Send`).
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait ChunkSource: Send {
    /// The next chunk, or `None` once the bytes are exhausted. Chunks may have any non-zero
    /// size; an empty chunk is allowed and means nothing.
    ///
    /// # Errors
    /// An upload source returns [`StorageError::Interrupted`] when its body is cut off or
    /// malformed (or any variant it sees fit, passed through as is); a download returns
    /// [`StorageError::Unavailable`] or [`StorageError::Unexpected`] when the store fails
    /// mid-way.
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StorageError>;
}

/// What `put` stored: the facts the file's metadata row records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    /// Bytes stored.
    pub size: u64,
    /// SHA-256 of exactly those bytes, lower-case hex, computed while they streamed through.
    pub sha256: String,
}

/// One object as a listing or `head` sees it: what the orphan sweeper needs to decide whether
/// an object without a row is old enough to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its key.
    pub key: ObjectKey,
    /// Its size in bytes.
    pub size: u64,
    /// When the store last wrote it: the orphan sweeper's age criterion.
    pub last_modified: DateTime<Utc>,
}

/// An object being read: its size, the part being sent, and the bytes.
pub struct Download {
    /// The whole object's size (for `Content-Range: bytes a-b/{size}`).
    pub size: u64,
    /// The byte range `body` yields: `0..size` without a range.
    pub range: Range<u64>,
    /// The bytes of `range`, in order, pulled on demand.
    pub body: Box<dyn ChunkSource>,
}

impl fmt::Debug for Download {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Download").field("size", &self.size).field("range", &self.range).finish_non_exhaustive()
    }
}

/// Response headers a presigned GET makes the store send, so a redirected download still
/// carries a safe `content-disposition` and the recorded `content-type` (never one the store
/// guesses from the bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DownloadHeaders {
    /// `Content-Type` to answer with.
    pub content_type: Option<String>,
    /// `Content-Disposition` to answer with (e.g. `attachment; filename="report.pdf"`).
    pub content_disposition: Option<String>,
}

/// The bytes of uploaded files, by tenant and file id: S3-compatible storage in production, a
/// local folder in the embedded default, memory in tests.
///
/// Every adapter passes the same contract suite (`tenantry_testkit::storage`), so the file
/// service can rely on the guarantees written here whichever store is configured.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait ObjectStorage: Send + Sync {
    /// Stores the bytes `source` yields at `key`, pulling them chunk by chunk, and returns their
    /// size and SHA-256.
    ///
    /// Never holds the whole body: large bodies go out as a multipart upload while they arrive.
    /// The moment more than `max_bytes` have arrived it stops pulling and fails with
    /// [`StorageError::TooLarge`]. On any failure (limit, source, store) the partial upload is
    /// aborted, so a fresh key has no object afterwards. The object becomes visible only
    /// complete.
    ///
    /// # Errors
    /// [`StorageError::TooLarge`]; the source's own error ([`StorageError::Interrupted`]);
    /// [`StorageError::Unavailable`], [`StorageError::Unexpected`].
    async fn put(
        &self,
        key: &ObjectKey,
        source: Box<dyn ChunkSource>,
        max_bytes: u64,
    ) -> Result<StoredBlob, StorageError>;

    /// Opens the object at `key` for reading, all of it or `range`.
    ///
    /// # Errors
    /// [`StorageError::NotFound`]; [`StorageError::RangeNotSatisfiable`] when `range` does not
    /// [resolve](ByteRange::resolve); [`StorageError::Unavailable`], [`StorageError::Unexpected`].
    async fn get(&self, key: &ObjectKey, range: Option<ByteRange>) -> Result<Download, StorageError>;

    /// The object's size and age without its bytes: how a presigned upload's completion step
    /// checks what arrived.
    ///
    /// # Errors
    /// [`StorageError::NotFound`]; [`StorageError::Unavailable`], [`StorageError::Unexpected`].
    async fn head(&self, key: &ObjectKey) -> Result<ObjectInfo, StorageError>;

    /// Removes the object at `key`. Idempotent: a missing object is success, so a retried
    /// deletion (or one racing the sweeper) never fails.
    ///
    /// # Errors
    /// [`StorageError::Unavailable`], [`StorageError::Unexpected`].
    async fn delete(&self, key: &ObjectKey) -> Result<(), StorageError>;

    /// Removes every object of `org_id` (org deletion) and returns how many were removed.
    /// Other orgs' objects are untouched. Idempotent.
    ///
    /// # Errors
    /// [`StorageError::Unavailable`], [`StorageError::Unexpected`].
    async fn delete_org(&self, org_id: OrgId) -> Result<u64, StorageError>;

    /// Up to `limit` objects last written before `before`, in key order, starting after the
    /// cursor `after` (exclusive): one page of the orphan sweeper's scan. Pass the last key of
    /// a page as `after` for the next one; a page shorter than `limit` is the last. Anything in
    /// the store that is not an [`ObjectKey`] is skipped.
    ///
    /// # Errors
    /// [`StorageError::Unavailable`], [`StorageError::Unexpected`].
    async fn list_older_than(
        &self,
        before: DateTime<Utc>,
        after: Option<ObjectKey>,
        limit: usize,
    ) -> Result<Vec<ObjectInfo>, StorageError>;

    /// A URL that lets its holder `GET` the object for `ttl` without credentials, answered with
    /// `headers`; `None` when this store cannot sign (local disk, memory), and the bytes must
    /// then be streamed through the server.
    ///
    /// # Errors
    /// [`StorageError::Unavailable`], [`StorageError::Unexpected`] (e.g. a `ttl` the store
    /// refuses).
    async fn presign_get(
        &self,
        key: &ObjectKey,
        ttl: Duration,
        headers: &DownloadHeaders,
    ) -> Result<Option<String>, StorageError>;

    /// A URL that lets its holder `PUT` the object's bytes to `key` for `ttl`; `None` when this
    /// store cannot sign. The signature binds the key and the expiry, not the length (S3's
    /// presigned PUT cannot bind it), so whoever completes a presigned upload must check the
    /// stored size and hash ([`ObjectStorage::head`], [`ObjectStorage::get`]) before recording
    /// it, and delete what does not match.
    ///
    /// # Errors
    /// [`StorageError::Unavailable`], [`StorageError::Unexpected`].
    async fn presign_put(&self, key: &ObjectKey, ttl: Duration) -> Result<Option<String>, StorageError>;

    /// Checks that the store is reachable and writable (writes and removes a small object
    /// outside every org's prefix): the `storage` check of `/health/ready`.
    ///
    /// # Errors
    /// [`StorageError::Unavailable`] when it is not.
    async fn probe(&self) -> Result<(), StorageError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ObjectKey {
        ObjectKey::new(OrgId::from_uuid(Uuid::now_v7()), Uuid::now_v7())
    }

    #[test]
    fn keys_are_built_from_the_org_and_file_ids_only() {
        let key = key();
        assert_eq!(key.to_string(), format!("orgs/{}/files/{}", key.org_id(), key.file_id()));
        assert!(key.to_string().starts_with(&ObjectKey::org_prefix(key.org_id())));
    }

    #[test]
    fn keys_round_trip_and_refuse_anything_else() {
        let key = key();
        assert_eq!(key.to_string().parse::<ObjectKey>(), Ok(key));
        let org = key.org_id();
        for bad in [
            String::new(),
            "orgs/x/files/y".to_owned(),
            format!("orgs/{org}/files/../../etc"),
            format!("orgs/{org}/files/{}/extra", key.file_id()),
            key.to_string().to_uppercase(),
            format!("/{key}"),
            format!("_tenantry/{key}"),
        ] {
            assert!(bad.parse::<ObjectKey>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn key_order_is_the_textual_order() {
        let mut keys: Vec<ObjectKey> = (0..50).map(|_| key()).collect();
        keys.sort();
        let texts: Vec<String> = keys.iter().map(ToString::to_string).collect();
        let mut sorted = texts.clone();
        sorted.sort();
        assert_eq!(texts, sorted);
    }

    #[test]
    fn ranges_resolve_like_http() {
        assert_eq!(ByteRange::Bounded { start: 0, end: 10 }.resolve(100), Some(0..10));
        assert_eq!(ByteRange::Bounded { start: 90, end: 200 }.resolve(100), Some(90..100));
        assert_eq!(ByteRange::From(99).resolve(100), Some(99..100));
        assert_eq!(ByteRange::Suffix(10).resolve(100), Some(90..100));
        assert_eq!(ByteRange::Suffix(1000).resolve(100), Some(0..100));
    }

    #[test]
    fn unsatisfiable_ranges_resolve_to_none() {
        assert_eq!(ByteRange::Bounded { start: 100, end: 110 }.resolve(100), None);
        assert_eq!(ByteRange::Bounded { start: 5, end: 5 }.resolve(100), None);
        assert_eq!(ByteRange::From(100).resolve(100), None);
        assert_eq!(ByteRange::Suffix(0).resolve(100), None);
        assert_eq!(ByteRange::Suffix(10).resolve(0), None);
    }
}
