//! A strict JSON body extractor: the right content type, a bounded size, no unknown fields
//! (with `#[serde(deny_unknown_fields)]` on the DTO), and errors that name the field.

use std::ops::Deref;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::web::BytesMut;
use actix_web::{FromRequest, HttpRequest};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use super::{ApiError, FieldError};

/// The largest JSON body accepted, as app data; 1 MiB when absent.
#[derive(Debug, Clone, Copy)]
pub struct JsonLimit(pub usize);

const DEFAULT_LIMIT: usize = 1_048_576;

/// A JSON request body of type `T`.
///
/// Answers 415 `unsupported_media_type` for another content type, 413 `payload_too_large`
/// above the [`JsonLimit`], 400 `malformed_request` for text that is not JSON, and 422
/// `validation_failed` naming the field for JSON of the wrong shape (wrong type, unknown field,
/// missing field, unknown enum value).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T> ApiJson<T> {
    /// The parsed body.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for ApiJson<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

fn is_json(req: &HttpRequest) -> bool {
    let Some(value) = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<T: DeserializeOwned + 'static> FromRequest for ApiJson<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req.app_data::<JsonLimit>().map_or(DEFAULT_LIMIT, |limit| limit.0);
        let json = is_json(req);
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            if !json {
                return Err(ApiError::from_status(actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE)
                    .with_extra("expected", "application/json"));
            }
            if declared.is_some_and(|length| length > limit) {
                return Err(too_large(limit));
            }
            let mut body = BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|err| match err {
                    PayloadError::Overflow => too_large(limit),
                    other => ApiError::malformed(format!("the request body could not be read: {other}")),
                })?;
                if body.len() + chunk.len() > limit {
                    return Err(too_large(limit));
                }
                body.extend_from_slice(&chunk);
            }
            parse(&body).map(ApiJson)
        })
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::from_status(actix_web::http::StatusCode::PAYLOAD_TOO_LARGE).with_extra("limit_bytes", limit)
}

/// Parses `body` as `T`, telling a syntax error (400) from a shape error (422, field named).
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::malformed("The request body is empty; a JSON document is required."));
    }
    // Every request body of this API is an object; serde would otherwise accept a struct
    // written as an array of its fields, which no client means.
    let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
    if first != Some(b'{') && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() {
        return Err(ApiError::validation(vec![FieldError {
            field: "body".to_owned(),
            message: "expected a JSON object".to_owned(),
        }]));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut deserializer);
    let value = result.map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let message = strip_position(&inner.to_string());
                ApiError::validation(vec![FieldError { field: field_of(&path, &message), message }])
            }
            _ => ApiError::malformed(format!("The request body is not valid JSON: {inner}")),
        }
    })?;
    deserializer.end().map_err(|err| ApiError::malformed(format!("The request body is not valid JSON: {err}")))?;
    Ok(value)
}

/// The field a data error is about: the path where it happened, or, for unknown and missing
/// fields (reported at the enclosing object), that object's path plus the field's name.
fn field_of(path: &str, message: &str) -> String {
    let named = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    match (path, named) {
        (".", Some(name)) => name.to_owned(),
        (path, Some(name)) if path == name || path.ends_with(&format!(".{name}")) => path.to_owned(),
        (parent, Some(name)) => format!("{parent}.{name}"),
        (".", None) => "body".to_owned(),
        (path, None) => path.to_owned(),
    }
}

/// serde_json appends " at line L column C" to data errors; the field path says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use actix_web::{App, HttpResponse, test, web};
    use serde::Deserialize;
    use serde_json::Value;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Probe {
        #[allow(dead_code)]
        name: String,
        #[allow(dead_code)]
        count: u32,
        #[allow(dead_code)]
        kind: Option<Kind>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        One,
    }

    async fn handler(_body: ApiJson<Probe>) -> HttpResponse {
        HttpResponse::NoContent().finish()
    }

    async fn send(content_type: Option<&str>, body: &'static str) -> (u16, Value) {
        let app = test::init_service(App::new().app_data(JsonLimit(64)).route("/probe", web::post().to(handler))).await;
        let mut req = test::TestRequest::post().uri("/probe").set_payload(body);
        if let Some(content_type) = content_type {
            req = req.insert_header((header::CONTENT_TYPE, content_type));
        }
        let res = test::call_service(&app, req.to_request()).await;
        let status = res.status().as_u16();
        let bytes = test::read_body(res).await;
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    #[actix_web::test]
    async fn a_valid_body_is_accepted() {
        let (status, _) = send(Some("application/json; charset=utf-8"), r#"{"name":"a","count":1}"#).await;
        assert_eq!(status, 204);
    }

    #[actix_web::test]
    async fn broken_json_is_a_400() {
        let (status, body) = send(Some("application/json"), r#"{"name":"a","#).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("malformed_request")));
        let (status, _) = send(Some("application/json"), "").await;
        assert_eq!(status, 400, "an empty body is malformed");
        let (status, _) = send(Some("application/json"), r#"{"name":"a","count":1} trailing"#).await;
        assert_eq!(status, 400, "trailing garbage is malformed");
    }

    #[actix_web::test]
    async fn wrong_shapes_are_422s_naming_the_field() {
        for (body, field) in [
            (r#"{"name":"a","count":"x"}"#, "count"),
            (r#"{"name":"a","count":-1}"#, "count"),
            (r#"{"name":"a","count":1,"extra":true}"#, "extra"),
            (r#"{"name":"a"}"#, "count"),
            (r#"{"name":"a","count":1,"kind":"two"}"#, "kind"),
            (r#"[1,2]"#, "body"),
        ] {
            let (status, problem) = send(Some("application/json"), body).await;
            assert_eq!(status, 422, "{body}");
            assert_eq!(problem["code"], "validation_failed", "{body}");
            assert_eq!(problem["errors"][0]["field"], field, "{body}: {problem}");
        }
    }

    #[actix_web::test]
    async fn other_content_types_are_415() {
        let (status, body) = send(Some("text/plain"), r#"{"name":"a","count":1}"#).await;
        assert_eq!((status, body["code"].as_str()), (415, Some("unsupported_media_type")));
        let (status, _) = send(None, r#"{"name":"a","count":1}"#).await;
        assert_eq!(status, 415);
    }

    #[actix_web::test]
    async fn oversize_bodies_are_413() {
        let big: &'static str = Box::leak(format!(r#"{{"name":"{}","count":1}}"#, "x".repeat(100)).into_boxed_str());
        let (status, body) = send(Some("application/json"), big).await;
        assert_eq!((status, body["code"].as_str()), (413, Some("payload_too_large")));
    }
}
