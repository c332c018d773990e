//! The [`ObjectStorage`] contract, and chunk sources for tests that upload.
//!
//! Every case works in orgs of its own (fresh ids), so the suite can run in parallel with
//! itself against one shared bucket or folder, and never depends on what else is stored there.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use sha2::{Digest, Sha256};
use tenantry_domain::OrgId;
use tenantry_ports::{ByteRange, ChunkSource, DownloadHeaders, ObjectKey, ObjectStorage, StorageError, StoredBlob};
use uuid::Uuid;

const MIB: u64 = 1024 * 1024;

/// Whether the store under test can presign URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    /// It signs (S3): presigned URLs must work for a client without credentials.
    Signs,
    /// It cannot (local disk, memory): presigning answers `None`.
    Unsupported,
}

/// Runs every case against `store`. With [`Signing::Signs`] the presigned URLs are fetched
/// with a default `reqwest` client, so the test process must have installed a rustls crypto
/// provider (`rustls::crypto::ring::default_provider().install_default()`).
///
/// # Panics
/// Naming the broken rule.
pub async fn run_contract(store: Arc<dyn ObjectStorage>, signing: Signing) {
    let store = store.as_ref();
    round_trip_returns_the_bytes_with_their_size_and_sha256(store).await;
    an_empty_object_round_trips(store).await;
    a_large_upload_streams_through_in_chunks(store).await;
    an_upload_of_exactly_the_limit_is_stored(store).await;
    an_upload_over_the_limit_stops_at_once_and_leaves_nothing(store).await;
    an_upload_over_the_limit_after_a_part_leaves_nothing(store).await;
    a_failing_source_leaves_nothing(store).await;
    ranges_return_the_bytes_asked_for(store).await;
    ranges_outside_the_object_are_refused(store).await;
    missing_objects_are_not_found(store).await;
    delete_is_idempotent(store).await;
    delete_org_removes_that_org_only(store).await;
    listing_pages_through_older_objects_in_key_order(store).await;
    presigning_matches_what_the_store_can_do(store, signing).await;
    probe_succeeds(store).await;
}

/// A key in a new org.
pub fn fresh_key() -> ObjectKey {
    ObjectKey::new(OrgId::from_uuid(Uuid::now_v7()), Uuid::now_v7())
}

/// Lower-case hex SHA-256 of `bytes`, computed here independently of any adapter.
pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Yields the given chunks in order and counts how many were pulled.
#[derive(Debug)]
pub struct VecSource {
    chunks: std::vec::IntoIter<Vec<u8>>,
    pulled: Arc<AtomicUsize>,
}

impl VecSource {
    /// A source of `chunks`.
    pub fn new(chunks: Vec<Vec<u8>>) -> Self {
        Self { chunks: chunks.into_iter(), pulled: Arc::default() }
    }

    /// A source of `bytes` cut into chunks of `chunk` bytes.
    pub fn split(bytes: &[u8], chunk: usize) -> Self {
        Self::new(bytes.chunks(chunk.max(1)).map(<[u8]>::to_vec).collect())
    }

    /// How many chunks have been pulled, readable after the source was handed away.
    pub fn pulled(&self) -> Arc<AtomicUsize> {
        self.pulled.clone()
    }
}

#[async_trait::async_trait]
impl ChunkSource for VecSource {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
        let next = self.chunks.next();
        if next.is_some() {
            self.pulled.fetch_add(1, Ordering::SeqCst);
        }
        Ok(next)
    }
}

/// `total` deterministic bytes (see [`pattern_byte`]) made on demand in chunks of `chunk`, so a
/// large upload never exists whole in the test either; optionally failing after `fail_after`
/// chunks, like a client that goes away.
#[derive(Debug)]
pub struct PatternSource {
    total: u64,
    chunk: u64,
    offset: u64,
    fail_after: Option<usize>,
    pulled: Arc<AtomicUsize>,
}

impl PatternSource {
    /// `total` bytes in chunks of `chunk`.
    pub fn new(total: u64, chunk: u64) -> Self {
        Self { total, chunk: chunk.max(1), offset: 0, fail_after: None, pulled: Arc::default() }
    }

    /// Fails with [`StorageError::Interrupted`] on the pull after `chunks` chunks.
    pub fn failing_after(mut self, chunks: usize) -> Self {
        self.fail_after = Some(chunks);
        self
    }

    /// How many chunks have been pulled (the failing pull included).
    pub fn pulled(&self) -> Arc<AtomicUsize> {
        self.pulled.clone()
    }
}

/// The byte at `offset` of every [`PatternSource`]: varied enough that a misplaced or
/// repeated chunk changes the hash.
pub fn pattern_byte(offset: u64) -> u8 {
    (offset.wrapping_mul(31) ^ (offset >> 9)).to_le_bytes()[0]
}

/// Bytes `range` of the pattern.
pub fn pattern(range: std::ops::Range<u64>) -> Vec<u8> {
    range.map(pattern_byte).collect()
}

#[async_trait::async_trait]
impl ChunkSource for PatternSource {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
        let pulled = self.pulled.fetch_add(1, Ordering::SeqCst);
        if self.fail_after.is_some_and(|after| pulled >= after) {
            return Err(StorageError::Interrupted(std::io::Error::other("the client went away").into()));
        }
        if self.offset >= self.total {
            return Ok(None);
        }
        let end = (self.offset + self.chunk).min(self.total);
        let chunk = pattern(self.offset..end);
        self.offset = end;
        Ok(Some(chunk))
    }
}

/// Every byte a chunk source yields.
///
/// # Errors
/// The source's.
pub async fn read_all(source: &mut dyn ChunkSource) -> Result<Vec<u8>, StorageError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = source.next_chunk().await? {
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

async fn put_bytes(store: &dyn ObjectStorage, key: &ObjectKey, bytes: &[u8]) -> StoredBlob {
    store.put(key, Box::new(VecSource::split(bytes, 1000)), u64::MAX).await.expect("put")
}

async fn download(store: &dyn ObjectStorage, key: &ObjectKey, range: Option<ByteRange>) -> Vec<u8> {
    let mut download = store.get(key, range).await.expect("get");
    let bytes = read_all(download.body.as_mut()).await.expect("read the body");
    assert_eq!(
        bytes.len() as u64,
        download.range.end - download.range.start,
        "the body has the length of the range the download announced"
    );
    bytes
}

fn assert_not_found(result: Result<impl std::fmt::Debug, StorageError>, what: &str) {
    assert!(matches!(result, Err(StorageError::NotFound)), "{what}: expected NotFound, got {result:?}");
}

async fn round_trip_returns_the_bytes_with_their_size_and_sha256(store: &dyn ObjectStorage) {
    let key = fresh_key();
    let bytes = pattern(0..10_000);
    let stored = put_bytes(store, &key, &bytes).await;
    assert_eq!(stored, StoredBlob { size: 10_000, sha256: sha256_hex(&bytes) }, "put reports size and SHA-256");
    let head = store.head(&key).await.expect("head of a stored object");
    assert_eq!((head.key, head.size), (key, 10_000), "head reports the key and size");
    let age = Utc::now() - head.last_modified;
    assert!(age < chrono::Duration::minutes(5) && age > chrono::Duration::minutes(-5), "last_modified is now: {age}");
    let opened = store.get(&key, None).await.expect("get");
    assert_eq!((opened.size, opened.range.clone()), (10_000, 0..10_000), "a whole download covers the object");
    assert_eq!(download(store, &key, None).await, bytes, "the same bytes come back");
}

async fn an_empty_object_round_trips(store: &dyn ObjectStorage) {
    let key = fresh_key();
    let stored = store.put(&key, Box::new(VecSource::new(Vec::new())), 10).await.expect("put nothing");
    assert_eq!(stored, StoredBlob { size: 0, sha256: sha256_hex(b"") }, "an empty body is an empty object");
    assert_eq!(store.head(&key).await.expect("head").size, 0);
    assert!(download(store, &key, None).await.is_empty(), "an empty object reads back empty");
    let range = store.get(&key, Some(ByteRange::From(0))).await;
    assert!(
        matches!(range, Err(StorageError::RangeNotSatisfiable { size: 0 })),
        "no range of an empty object is satisfiable: {range:?}"
    );
}

async fn a_large_upload_streams_through_in_chunks(store: &dyn ObjectStorage) {
    // 12 MiB in 64 KiB chunks: past two 5 MiB parts, so S3 takes the multipart path.
    let total = 12 * MIB;
    let key = fresh_key();
    let mut expected = Sha256::new();
    for start in (0..total).step_by(MIB as usize) {
        expected.update(pattern(start..start + MIB));
    }
    let expected = format!("{:x}", expected.finalize());
    let started = Instant::now();
    let stored = store.put(&key, Box::new(PatternSource::new(total, 64 * 1024)), 100 * MIB).await.expect("12 MiB put");
    let upload = started.elapsed();
    assert_eq!(stored, StoredBlob { size: total, sha256: expected.clone() }, "size and SHA-256 of 12 MiB");
    assert_eq!(store.head(&key).await.expect("head").size, total);

    let started = Instant::now();
    let mut download = store.get(&key, None).await.expect("get 12 MiB");
    let mut hasher = Sha256::new();
    let mut read = 0;
    while let Some(chunk) = download.body.next_chunk().await.expect("read a chunk") {
        read += chunk.len() as u64;
        hasher.update(&chunk);
    }
    eprintln!("storage contract: 12 MiB uploaded in {upload:?}, downloaded in {:?}", started.elapsed());
    assert_eq!((read, format!("{:x}", hasher.finalize())), (total, expected), "12 MiB come back intact");

    // A range across the first part boundary (5 MiB) reads seamlessly.
    let boundary = 5 * MIB;
    let bytes = download_range(store, &key, ByteRange::Bounded { start: boundary - 10, end: boundary + 10 }).await;
    assert_eq!(bytes, pattern(boundary - 10..boundary + 10), "a range across a part boundary");
    store.delete(&key).await.expect("delete");
}

async fn download_range(store: &dyn ObjectStorage, key: &ObjectKey, range: ByteRange) -> Vec<u8> {
    download(store, key, Some(range)).await
}

async fn an_upload_of_exactly_the_limit_is_stored(store: &dyn ObjectStorage) {
    let key = fresh_key();
    let stored = store.put(&key, Box::new(PatternSource::new(3000, 1000)), 3000).await.expect("at the limit");
    assert_eq!(stored.size, 3000, "the limit itself is allowed");
}

async fn an_upload_over_the_limit_stops_at_once_and_leaves_nothing(store: &dyn ObjectStorage) {
    let key = fresh_key();
    // 1000 chunks of 64 KiB offered, 100 KiB allowed: the second chunk passes the limit.
    let source = PatternSource::new(1000 * 64 * 1024, 64 * 1024);
    let pulled = source.pulled();
    let result = store.put(&key, Box::new(source), 100 * 1024).await;
    assert!(
        matches!(result, Err(StorageError::TooLarge { limit: 102_400 })),
        "over the limit is TooLarge naming the limit: {result:?}"
    );
    assert_eq!(pulled.load(Ordering::SeqCst), 2, "the source is not read past the chunk that passed the limit");
    assert_not_found(store.head(&key).await, "nothing is left of an upload over the limit");
}

async fn an_upload_over_the_limit_after_a_part_leaves_nothing(store: &dyn ObjectStorage) {
    let key = fresh_key();
    // 1 MiB chunks, 6 MiB allowed: a multipart upload has begun when the seventh chunk passes.
    let source = PatternSource::new(64 * MIB, MIB);
    let pulled = source.pulled();
    let result = store.put(&key, Box::new(source), 6 * MIB).await;
    assert!(matches!(result, Err(StorageError::TooLarge { .. })), "TooLarge: {result:?}");
    assert_eq!(pulled.load(Ordering::SeqCst), 7, "stopped at the chunk that passed the limit");
    assert_not_found(store.head(&key).await, "an aborted multipart upload leaves no object");
}

async fn a_failing_source_leaves_nothing(store: &dyn ObjectStorage) {
    for (chunks, chunk) in [(2, 1000), (7, MIB)] {
        let key = fresh_key();
        let source = PatternSource::new(64 * MIB, chunk).failing_after(chunks);
        let result = store.put(&key, Box::new(source), u64::MAX).await;
        assert!(
            matches!(result, Err(StorageError::Interrupted(_))),
            "the source's failure is passed through: {result:?}"
        );
        assert_not_found(store.head(&key).await, "an interrupted upload leaves no object");
    }
}

async fn ranges_return_the_bytes_asked_for(store: &dyn ObjectStorage) {
    let key = fresh_key();
    let bytes = pattern(0..1000);
    put_bytes(store, &key, &bytes).await;
    let cases = [
        (ByteRange::Bounded { start: 0, end: 10 }, 0..10),
        (ByteRange::Bounded { start: 500, end: 600 }, 500..600),
        (ByteRange::Bounded { start: 990, end: 5000 }, 990..1000),
        (ByteRange::From(995), 995..1000),
        (ByteRange::Suffix(10), 990..1000),
        (ByteRange::Suffix(5000), 0..1000),
    ];
    for (range, expected) in cases {
        let mut download = store.get(&key, Some(range)).await.expect("ranged get");
        assert_eq!((download.size, download.range.clone()), (1000, expected.clone()), "{range:?} covers {expected:?}");
        let body = read_all(download.body.as_mut()).await.expect("read");
        let start = usize::try_from(expected.start).expect("small");
        let end = usize::try_from(expected.end).expect("small");
        assert_eq!(body, bytes[start..end], "{range:?} returns those bytes");
    }
}

async fn ranges_outside_the_object_are_refused(store: &dyn ObjectStorage) {
    let key = fresh_key();
    put_bytes(store, &key, &pattern(0..1000)).await;
    for range in [ByteRange::From(1000), ByteRange::Bounded { start: 2000, end: 3000 }, ByteRange::Suffix(0)] {
        let result = store.get(&key, Some(range)).await;
        assert!(
            matches!(result, Err(StorageError::RangeNotSatisfiable { size: 1000 })),
            "{range:?} of 1000 bytes is unsatisfiable: {result:?}"
        );
    }
}

async fn missing_objects_are_not_found(store: &dyn ObjectStorage) {
    let key = fresh_key();
    assert_not_found(store.head(&key).await, "head of a missing object");
    assert_not_found(store.get(&key, None).await, "get of a missing object");
    assert_not_found(store.get(&key, Some(ByteRange::From(0))).await, "ranged get of a missing object");
}

async fn delete_is_idempotent(store: &dyn ObjectStorage) {
    let key = fresh_key();
    put_bytes(store, &key, b"short-lived").await;
    store.delete(&key).await.expect("delete");
    assert_not_found(store.head(&key).await, "a deleted object");
    assert_not_found(store.get(&key, None).await, "a deleted object's bytes");
    store.delete(&key).await.expect("deleting again succeeds");
    store.delete(&fresh_key()).await.expect("deleting what never existed succeeds");
}

async fn delete_org_removes_that_org_only(store: &dyn ObjectStorage) {
    let doomed = OrgId::from_uuid(Uuid::now_v7());
    let kept = OrgId::from_uuid(Uuid::now_v7());
    let doomed_keys: Vec<ObjectKey> = (0..3).map(|_| ObjectKey::new(doomed, Uuid::now_v7())).collect();
    let kept_key = ObjectKey::new(kept, Uuid::now_v7());
    for key in doomed_keys.iter().chain([&kept_key]) {
        put_bytes(store, key, key.to_string().as_bytes()).await;
    }
    assert_eq!(store.delete_org(doomed).await.expect("delete org"), 3, "every object of the org is removed");
    for key in &doomed_keys {
        assert_not_found(store.head(key).await, "an object of the deleted org");
    }
    assert_eq!(
        download(store, &kept_key, None).await,
        kept_key.to_string().as_bytes(),
        "another org's object is untouched"
    );
    assert_eq!(store.delete_org(doomed).await.expect("again"), 0, "deleting an org's objects twice removes nothing");
    store.delete_org(kept).await.expect("clean up");
}

async fn listing_pages_through_older_objects_in_key_order(store: &dyn ObjectStorage) {
    let started = Utc::now() - chrono::Duration::hours(1);
    let org = OrgId::from_uuid(Uuid::now_v7());
    let mut ours: Vec<ObjectKey> = (0..3).map(|_| ObjectKey::new(org, Uuid::now_v7())).collect();
    for key in &ours {
        put_bytes(store, key, b"listed").await;
    }
    ours.sort();

    // Everything written before a minute from now, in pages of two.
    let before = Utc::now() + chrono::Duration::minutes(1);
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_older_than(before, after, 2).await.expect("list a page");
        assert!(page.len() <= 2, "a page holds at most `limit` objects");
        for info in &page {
            assert!(after.is_none_or(|after| info.key > after), "pages advance past their cursor");
            assert!(info.last_modified < before, "only older objects are listed");
            if info.key.org_id() == org {
                assert_eq!(info.size, 6, "listed with its size");
            }
        }
        let keys: Vec<ObjectKey> = page.iter().map(|info| info.key).collect();
        assert!(keys.windows(2).all(|pair| pair[0] < pair[1]), "a page is in key order: {keys:?}");
        seen.extend(keys);
        match page.last() {
            Some(last) if page.len() == 2 => after = Some(last.key),
            _ => break,
        }
    }
    let listed: Vec<ObjectKey> = seen.iter().copied().filter(|key| key.org_id() == org).collect();
    assert_eq!(listed, ours, "every older object is listed once, in key order");

    // Nothing of ours is older than an hour ago.
    let mut after = None;
    loop {
        let page = store.list_older_than(started, after, 100).await.expect("list");
        assert!(page.iter().all(|info| info.key.org_id() != org), "new objects are not older than an hour");
        match page.last() {
            Some(last) if page.len() == 100 => after = Some(last.key),
            _ => break,
        }
    }
    store.delete_org(org).await.expect("clean up");
}

async fn presigning_matches_what_the_store_can_do(store: &dyn ObjectStorage, signing: Signing) {
    let key = fresh_key();
    let bytes = pattern(0..4096);
    put_bytes(store, &key, &bytes).await;
    let ttl = Duration::from_secs(300);
    let headers = DownloadHeaders {
        content_type: Some("application/pdf".to_owned()),
        content_disposition: Some("attachment; filename=\"report.pdf\"".to_owned()),
    };
    let get_url = store.presign_get(&key, ttl, &headers).await.expect("presign a GET");
    let put_key = fresh_key();
    let put_url = store.presign_put(&put_key, ttl).await.expect("presign a PUT");
    match signing {
        Signing::Unsupported => {
            assert_eq!(get_url, None, "a store that cannot sign presigns no GET");
            assert_eq!(put_url, None, "a store that cannot sign presigns no PUT");
        }
        Signing::Signs => {
            let client = reqwest::Client::new();
            let get_url = get_url.expect("a signing store presigns a GET");
            let response = client.get(&get_url).send().await.expect("GET the presigned URL");
            assert_eq!(response.status(), 200, "the presigned GET is accepted");
            let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
            assert_eq!(header("content-type").as_deref(), Some("application/pdf"), "the signed content type");
            assert_eq!(
                header("content-disposition").as_deref(),
                Some("attachment; filename=\"report.pdf\""),
                "the signed content disposition"
            );
            assert_eq!(response.bytes().await.expect("body").as_ref(), bytes, "the presigned GET returns the bytes");

            let put_url = put_url.expect("a signing store presigns a PUT");
            let response = client.put(&put_url).body(bytes.clone()).send().await.expect("PUT the presigned URL");
            assert!(response.status().is_success(), "the presigned PUT is accepted: {}", response.status());
            assert_eq!(store.head(&put_key).await.expect("head").size, bytes.len() as u64, "the PUT's bytes arrived");
            assert_eq!(download(store, &put_key, None).await, bytes, "and read back");
            store.delete(&put_key).await.expect("clean up");
        }
    }
    store.delete(&key).await.expect("clean up");
}

async fn probe_succeeds(store: &dyn ObjectStorage) {
    store.probe().await.expect("the store is reachable and writable");
}

/// `TENANTRY_TEST_S3_URL`: an S3-compatible server (path-style) the tests may create a bucket
/// on and write prefixed objects to. Skipped when unset outside CI, a failure under `CI=true`.
pub fn s3_url() -> Option<String> {
    crate::env::backend_url("TENANTRY_TEST_S3_URL")
}
