//! Files: multipart uploads streamed to object storage (`files:write`), metadata and
//! downloads (`files:read`), presigned uploads and their completion, deletion.
//!
//! An upload's body is never held whole: the multipart part is pulled chunk by chunk into a
//! bounded channel (actix's multipart field is not `Send`, the storage port's sources are), and
//! the file service pulls from the other end, so a slow store slows the client down instead of
//! filling memory, and a file over the limit is refused the moment it passes it.

use actix_multipart::Multipart;
use actix_web::body::SizedStream;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::web::{self, Bytes, Data, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tenantry_application::{FileBody, NewUpload, PresignedUpload};
use tenantry_domain::FileId;
use tenantry_domain::files::content_disposition;
use tenantry_ports::{ByteRange, ChunkSource, FileRecord, StorageError};
use tokio::sync::mpsc;
use utoipa::ToSchema;
use validator::Validate;

use crate::http::org::{FilesRead, FilesWrite, InOrg, file_error};
use crate::http::page::{ApiQuery, PageQuery};
use crate::http::{ApiError, ApiJson, FieldError};
use crate::state::AppState;

/// What a multipart body may add around its file: part headers and boundaries. A body whose
/// announced length passes the limit by more is refused before a byte is read.
const MULTIPART_OVERHEAD: u64 = 16 * 1024;

/// Chunks in flight between the request body and the store: with actix's chunks of up to
/// 64 KiB, at most a few hundred KiB per upload wait in the channel.
const CHANNEL_CHUNKS: usize = 4;

/// Registers the file routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(
        web::scope("/api/v1/orgs/{org_id}/files")
            .service(web::resource("").route(web::get().to(list)).route(web::post().to(upload)))
            // Before `/{file_id}`, which would otherwise answer 405 to its POST.
            .service(web::resource("/presign-upload").route(web::post().to(presign_upload)))
            .service(web::resource("/{file_id}").route(web::get().to(get)).route(web::delete().to(delete)))
            .service(web::resource("/{file_id}/download").route(web::get().to(download)))
            .service(web::resource("/{file_id}/complete").route(web::post().to(complete))),
    );
}

/// A stored file's metadata.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileResponse {
    /// Id.
    pub id: String,
    /// The name it was uploaded with, made safe for display (no folders, no control
    /// characters).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// The type sniffed from its bytes (never the one the client declared).
    #[schema(example = "application/pdf")]
    pub content_type: String,
    /// SHA-256 of the bytes, lower-case hex.
    pub sha256: String,
    /// Upload time.
    pub created_at: DateTime<Utc>,
}

impl From<FileRecord> for FileResponse {
    fn from(file: FileRecord) -> Self {
        Self {
            id: file.id.to_string(),
            name: file.name,
            size: file.size,
            content_type: file.content_type,
            sha256: file.sha256.unwrap_or_default(),
            created_at: file.created_at,
        }
    }
}

/// A page of files.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileList {
    /// Oldest first.
    pub items: Vec<FileResponse>,
    /// The next page's cursor, or null.
    pub next_cursor: Option<String>,
}

/// The multipart form of an upload.
#[derive(Debug, ToSchema)]
pub struct UploadForm {
    /// The file's bytes; the part's `filename` becomes its name. Other parts are ignored.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
}

/// A file's bytes, as a download sends them.
#[derive(Debug, ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct FileBytes(pub Vec<u8>);

/// The pulling end of an upload's channel.
struct ChannelSource(mpsc::Receiver<Result<Vec<u8>, StorageError>>);

#[async_trait::async_trait]
impl ChunkSource for ChannelSource {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
        self.0.recv().await.transpose()
    }
}

fn unsupported_body() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "Send the file as multipart/form-data, in a part named `file`.",
    )
}

/// Uploads a file (`files:write`) as `multipart/form-data` with a part named `file`. The bytes
/// stream to storage as they arrive: 413 `payload_too_large` the moment the file passes
/// `TENANTRY_MAX_UPLOAD_BYTES`, 415 `unsupported_media_type` when its sniffed type is not
/// allowed, 403 `quota_exceeded` when the organization's `storage_bytes` or `file_uploads` is
/// used up — and nothing is kept after any of them. A body without `content-length` reserves
/// the whole upload limit of `storage_bytes` until it ends. An `idempotency-key` replays the
/// first upload's answer without reading the body again (the key, not the bytes, identifies
/// the upload).
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/files", tag = "files", security(("bearer" = []), ("api_key" = [])), params(("org_id" = String, Path)), request_body(content = UploadForm, content_type = "multipart/form-data"), responses((status = 201, body = FileResponse)))]
pub async fn upload(
    state: Data<AppState>,
    scope: InOrg<FilesWrite>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let is_multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"));
    if !is_multipart {
        return Err(unsupported_body());
    }
    let max = state.files.settings().max_upload_bytes;
    let announced =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|length| length > max.saturating_add(MULTIPART_OVERHEAD)) {
        return Err(file_error(tenantry_application::FileError::TooLarge { limit: max }));
    }
    let mut multipart = Multipart::new(req.headers(), payload);
    let mut skipped: u64 = 0;
    let field = loop {
        match multipart.next().await {
            None => {
                return Err(ApiError::validation(vec![FieldError {
                    field: "file".to_owned(),
                    message: "is required: a multipart part named `file`".to_owned(),
                }]));
            }
            Some(Err(err)) => return Err(ApiError::malformed(format!("The multipart body is malformed: {err}"))),
            Some(Ok(field)) if field.name() == Some("file") => break field,
            // Another part before the file: read past it, within the allowance for framing.
            Some(Ok(mut other)) => {
                while let Some(chunk) = other.next().await {
                    let chunk =
                        chunk.map_err(|err| ApiError::malformed(format!("The multipart body is malformed: {err}")))?;
                    skipped += chunk.len() as u64;
                    if skipped > MULTIPART_OVERHEAD {
                        return Err(file_error(tenantry_application::FileError::TooLarge { limit: max }));
                    }
                }
            }
        }
    };
    let name = field.content_disposition().and_then(|cd| cd.get_filename()).unwrap_or("file").to_owned();
    let (sender, receiver) = mpsc::channel(CHANNEL_CHUNKS);
    let mut field = field;
    let feed = async move {
        while let Some(chunk) = field.next().await {
            let item = chunk
                .map(|bytes| bytes.to_vec())
                .map_err(|err| StorageError::Interrupted(anyhow::anyhow!("multipart body: {err}")));
            let failed = item.is_err();
            // A closed channel means the upload stopped pulling (refused or failed): the rest
            // of the body is never read.
            if sender.send(item).await.is_err() || failed {
                return;
            }
        }
    };
    let upload =
        state.files.upload(&scope.access, NewUpload { name, size_bound: announced }, Box::new(ChannelSource(receiver)));
    // Once the service has answered (stored, or refused: too large, a type not allowed, a
    // quota), the rest of the body is not read, even from a client that stalls.
    let stored = match futures_util::future::select(std::pin::pin!(upload), std::pin::pin!(feed)).await {
        futures_util::future::Either::Left((stored, _feed)) => stored,
        futures_util::future::Either::Right(((), upload)) => upload.await,
    };
    let file = stored.map_err(file_error)?;
    Ok(HttpResponse::Created().json(FileResponse::from(file)))
}

/// The organization's files, oldest first (`files:read`).
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/files", tag = "files", security(("bearer" = []), ("api_key" = [])), params(("org_id" = String, Path), PageQuery), responses((status = 200, body = FileList)))]
pub async fn list(
    state: Data<AppState>,
    scope: InOrg<FilesRead>,
    query: ApiQuery<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.page::<FileId>(&state.cursors, "files")?;
    let found = state.files.list(&scope.access, page.after, page.fetch()).await.map_err(file_error)?;
    let page = state.cursors.finish("files", found, &page, |file| file.id)?;
    Ok(HttpResponse::Ok().json(page.map(FileResponse::from)))
}

/// One file's metadata (`files:read`).
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/files/{file_id}", tag = "files", security(("bearer" = []), ("api_key" = [])), params(("org_id" = String, Path), ("file_id" = String, Path)), responses((status = 200, body = FileResponse)))]
pub async fn get(
    state: Data<AppState>,
    scope: InOrg<FilesRead>,
    path: web::Path<(String, FileId)>,
) -> Result<HttpResponse, ApiError> {
    let file = state.files.get(&scope.access, path.into_inner().1).await.map_err(file_error)?;
    Ok(HttpResponse::Ok().json(FileResponse::from(file)))
}

/// `Range: bytes=…` as one [`ByteRange`]; `None` (the whole file, as RFC 9110 allows) for
/// anything else: another unit, several ranges, or a malformed one.
fn requested_range(value: Option<&HeaderValue>) -> Option<ByteRange> {
    let spec = value?.to_str().ok()?.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.trim().split_once('-')?;
    let number = |text: &str| text.trim().parse::<u64>().ok();
    match (first.trim().is_empty(), last.trim().is_empty()) {
        (true, false) => Some(ByteRange::Suffix(number(last)?)),
        (false, true) => Some(ByteRange::From(number(first)?)),
        (false, false) => {
            let (start, last) = (number(first)?, number(last)?);
            (last >= start).then(|| ByteRange::Bounded { start, end: last.saturating_add(1) })
        }
        (true, true) => None,
    }
}

/// The file's bytes (`files:read`): `200` with its type, length and
/// `content-disposition: attachment` (a safe name), or `206` with `content-range` for a
/// `Range: bytes=…` request (416 `range_not_satisfiable` outside the file); where the store
/// signs URLs (S3), `302` to a presigned URL valid for at most 5 minutes that answers the same
/// way.
#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org_id}/files/{file_id}/download",
    tag = "files",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("org_id" = String, Path),
        ("file_id" = String, Path),
        ("range" = Option<String>, Header, description = "One range, `bytes=first-last`, `bytes=first-` or `bytes=-suffix`.")
    ),
    responses(
        (status = 200, description = "The whole file, as the type sniffed at upload (`content-type`), with `content-length` and `content-disposition: attachment`.", content((FileBytes = "application/octet-stream"), (FileBytes = "*/*"))),
        (status = 206, description = "The requested range, with `content-range`.", content((FileBytes = "application/octet-stream"), (FileBytes = "*/*"))),
        (status = 302, description = "Where the store signs URLs: `location` is a presigned URL valid for at most 5 minutes."),
        (status = 416, description = "`range_not_satisfiable`: the range is outside the file (`content-range: bytes */size`).", content_type = "application/problem+json", body = crate::http::error::Problem)
    )
)]
pub async fn download(
    state: Data<AppState>,
    scope: InOrg<FilesRead>,
    path: web::Path<(String, FileId)>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let range = requested_range(req.headers().get(header::RANGE));
    let (file, body) = state.files.download(&scope.access, path.into_inner().1, range).await.map_err(file_error)?;
    let download = match body {
        FileBody::Redirect(url) => {
            return Ok(HttpResponse::Found().insert_header((header::LOCATION, url)).finish());
        }
        FileBody::Stream(download) => download,
    };
    let length = download.range.end - download.range.start;
    let mut response = if range.is_some() {
        let mut partial = HttpResponse::PartialContent();
        partial.insert_header((
            header::CONTENT_RANGE,
            format!("bytes {}-{}/{}", download.range.start, download.range.end.saturating_sub(1), download.size),
        ));
        partial
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::CONTENT_TYPE, file.content_type.as_str()))
        .insert_header((header::CONTENT_DISPOSITION, content_disposition(&file.name)))
        .insert_header((header::ACCEPT_RANGES, "bytes"));
    let chunks = futures_util::stream::unfold(Some(download.body), |source| async move {
        let mut source = source?;
        match source.next_chunk().await {
            Ok(Some(chunk)) => Some((Ok(Bytes::from(chunk)), Some(source))),
            Ok(None) => None,
            Err(err) => {
                // The status line is sent already: the connection is cut, so the client sees
                // a short body rather than a complete-looking one.
                tracing::error!(error = format!("{err:#}"), "reading a file from storage failed mid-download");
                Some((Err(std::io::Error::other("storage failed mid-download")), None))
            }
        }
    });
    Ok(response.body(SizedStream::new(length, chunks)))
}

/// Deletes a file (`files:write`): its bytes leave the storage quota.
#[utoipa::path(delete, path = "/api/v1/orgs/{org_id}/files/{file_id}", tag = "files", security(("bearer" = []), ("api_key" = [])), params(("org_id" = String, Path), ("file_id" = String, Path)), responses((status = 204)))]
pub async fn delete(
    state: Data<AppState>,
    scope: InOrg<FilesWrite>,
    path: web::Path<(String, FileId)>,
) -> Result<HttpResponse, ApiError> {
    state.files.delete(&scope.access, path.into_inner().1).await.map_err(file_error)?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /orgs/{org_id}/files/presign-upload`.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct PresignUploadRequest {
    /// The file's name (made safe for display).
    #[schema(example = "report.pdf", min_length = 1, max_length = 255)]
    #[validate(length(min = 1, max = 255, message = "must be 1 to 255 characters"))]
    pub name: String,
    /// Its exact size in bytes: completion refuses any other.
    pub size: u64,
    /// Its type; must be allowed (completion sniffs the stored bytes again).
    #[schema(example = "application/pdf", min_length = 1, max_length = 255)]
    #[validate(length(min = 1, max = 255, message = "must be 1 to 255 characters"))]
    pub content_type: String,
}

/// Where to upload.
#[derive(Debug, Serialize, ToSchema)]
pub struct PresignUploadResponse {
    /// `PUT` the bytes here, before `expires_at`.
    pub upload_url: String,
    /// The file's id: complete it with `POST …/files/{file_id}/complete`.
    pub file_id: String,
    /// When the URL stops working and the unfinished upload is discarded.
    pub expires_at: DateTime<Utc>,
}

impl From<PresignedUpload> for PresignUploadResponse {
    fn from(upload: PresignedUpload) -> Self {
        Self { upload_url: upload.upload_url, file_id: upload.file_id.to_string(), expires_at: upload.expires_at }
    }
}

/// A presigned URL to `PUT` a file's bytes to directly (`files:write`), where the store signs
/// URLs (S3); `storage_bytes` and `file_uploads` are reserved now. Then
/// `POST …/files/{file_id}/complete`. On a store that cannot sign (a local folder, memory):
/// 409 `conflict` with reason `presign_unsupported`, and the multipart upload is the way.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/files/presign-upload", tag = "files", security(("bearer" = []), ("api_key" = [])), params(("org_id" = String, Path)), request_body = PresignUploadRequest, responses((status = 201, body = PresignUploadResponse)))]
pub async fn presign_upload(
    state: Data<AppState>,
    scope: InOrg<FilesWrite>,
    body: ApiJson<PresignUploadRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let presigned = state
        .files
        .presign_upload(&scope.access, &body.name, body.size, &body.content_type)
        .await
        .map_err(file_error)?;
    Ok(HttpResponse::Created().json(PresignUploadResponse::from(presigned)))
}

/// Completes a presigned upload (`files:write`): the stored object must have the announced
/// size and an allowed type; its SHA-256 is computed from the stored bytes, and
/// `file.uploaded` is emitted. 409 `upload_missing` before the `PUT`; 409 `upload_mismatch`
/// (the upload is discarded) for another size.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/files/{file_id}/complete", tag = "files", security(("bearer" = []), ("api_key" = [])), params(("org_id" = String, Path), ("file_id" = String, Path)), responses((status = 200, body = FileResponse)))]
pub async fn complete(
    state: Data<AppState>,
    scope: InOrg<FilesWrite>,
    path: web::Path<(String, FileId)>,
) -> Result<HttpResponse, ApiError> {
    let file = state.files.complete(&scope.access, path.into_inner().1).await.map_err(file_error)?;
    Ok(HttpResponse::Ok().json(FileResponse::from(file)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(raw: &str) -> Option<ByteRange> {
        requested_range(Some(&HeaderValue::from_str(raw).expect("header")))
    }

    #[test]
    fn ranges_are_read_like_rfc_9110_says() {
        assert_eq!(range("bytes=0-9"), Some(ByteRange::Bounded { start: 0, end: 10 }));
        assert_eq!(range("bytes=100-"), Some(ByteRange::From(100)));
        assert_eq!(range("bytes=-5"), Some(ByteRange::Suffix(5)));
        assert_eq!(range(" bytes= 3 - 4 "), Some(ByteRange::Bounded { start: 3, end: 5 }));
        for ignored in
            ["bytes=5-2", "bytes=0-1,4-5", "items=0-9", "bytes=-", "bytes=a-b", "bytes=0-99999999999999999999999"]
        {
            assert_eq!(range(ignored), None, "{ignored}");
        }
        assert_eq!(requested_range(None), None);
    }
}
