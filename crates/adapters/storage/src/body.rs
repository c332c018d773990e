//! Download bodies: `object_store`'s two payload shapes as [`ChunkSource`]s.

use std::io::SeekFrom;
use std::ops::Range;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tenantry_ports::{ChunkSource, StorageError};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::map_error;

/// Bytes a remote (or in-memory) store streams back, passed on chunk by chunk.
pub(crate) struct StreamChunks(pub(crate) BoxStream<'static, object_store::Result<Bytes>>);

#[async_trait::async_trait]
impl ChunkSource for StreamChunks {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
        match self.0.next().await {
            None => Ok(None),
            Some(Ok(bytes)) => Ok(Some(Vec::from(bytes))),
            Some(Err(err)) => Err(map_error(err)),
        }
    }
}

/// How much of a local file one read takes: large enough that a 100 MiB download is a few
/// hundred reads on the blocking pool (`object_store`'s own reader takes 8 KiB at a time), small
/// enough that concurrent downloads stay cheap.
const FILE_CHUNK: u64 = 256 * 1024;

/// A range of a local file, read on demand.
pub(crate) struct FileChunks {
    file: tokio::fs::File,
    start: u64,
    remaining: u64,
    positioned: bool,
}

impl FileChunks {
    pub(crate) fn new(file: std::fs::File, range: Range<u64>) -> Self {
        Self {
            file: tokio::fs::File::from_std(file),
            start: range.start,
            remaining: range.end.saturating_sub(range.start),
            positioned: false,
        }
    }
}

#[async_trait::async_trait]
impl ChunkSource for FileChunks {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
        if self.remaining == 0 {
            return Ok(None);
        }
        let io = |err: std::io::Error| StorageError::Unavailable(err.into());
        if !self.positioned {
            self.file.seek(SeekFrom::Start(self.start)).await.map_err(io)?;
            self.positioned = true;
        }
        let want = usize::try_from(self.remaining.min(FILE_CHUNK)).unwrap_or(usize::MAX);
        let mut buffer = vec![0; want];
        let read = self.file.read(&mut buffer).await.map_err(io)?;
        if read == 0 {
            return Err(StorageError::Unexpected(anyhow::anyhow!("the file ended before the size its metadata gave")));
        }
        buffer.truncate(read);
        self.remaining -= read as u64;
        Ok(Some(buffer))
    }
}
