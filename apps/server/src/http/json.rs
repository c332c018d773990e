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
use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_path_to_error::Segment;
use validator::{Validate, ValidationErrors, ValidationErrorsKind};

use super::{ApiError, FieldError};

/// The largest JSON body accepted, as app data; 1 MiB when absent.
#[derive(Debug, Clone, Copy)]
pub struct JsonLimit(pub usize);

const DEFAULT_LIMIT: usize = 1_048_576;

/// A JSON request body of type `T`.
///
/// Answers 415 `unsupported_media_type` for another content type, 413 `payload_too_large`
/// above the [`JsonLimit`], 400 `malformed_request` for text that is not JSON, and 422
/// `validation_failed` naming every field of the wrong shape (wrong type, unknown field, missing
/// field, unknown enum value) or breaking its rules ([`Validate`]).
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

impl<T: DeserializeOwned + Validate + 'static> FromRequest for ApiJson<T> {
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

/// How many repairs one body may need before the 422 names what was found so far: bounds the
/// work an error-riddled body can cause (each repair re-reads the parsed document).
const MAX_REPAIRS: usize = 64;

/// Values tried in place of a field that is missing or wrong, so the rest of the document is
/// still checked: the first one its type accepts lets deserialization go on.
const STAND_INS: [fn() -> Value; 6] = [
    || Value::Null,
    || Value::String(String::new()),
    || Value::from(0),
    || Value::Bool(false),
    || Value::Array(Vec::new()),
    || Value::Object(serde_json::Map::new()),
];

/// Parses `body` as `T`: syntax first (text that is not JSON is 400 `malformed_request`
/// before any field is looked at), then the shape and the rules of every field, so one 422
/// names every field that is wrong — with its JSON path and the problem in this API's words.
///
/// # Errors
/// 400 `malformed_request`, 422 `validation_failed`.
pub fn parse<T: DeserializeOwned + Validate>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::malformed("The request body is empty; a JSON document is required."));
    }
    let document: Value = serde_json::from_slice(body)
        .map_err(|err| ApiError::malformed(format!("The request body is not valid JSON: {err}")))?;
    // Every request body of this API is an object; serde would otherwise accept a struct
    // written as an array of its fields, which no client means.
    if !document.is_object() {
        return Err(ApiError::validation(vec![FieldError {
            field: "body".to_owned(),
            message: "must be a JSON object".to_owned(),
        }]));
    }
    decode(document).map_err(ApiError::validation)
}

/// Reads `document` as `T`, collecting every field error rather than the first: an unknown
/// field is dropped, a wrong or missing one is stood in for (see `STAND_INS`), and the
/// document is read again, until it reads; then `T`'s own rules run, and their errors are
/// added for the fields not already named.
///
/// # Errors
/// Every field error found, in document order (never empty).
pub fn decode<T: DeserializeOwned + Validate>(mut document: Value) -> Result<T, Vec<FieldError>> {
    let mut errors: Vec<FieldError> = Vec::new();
    let mut stand_in_tried: HashMap<String, usize> = HashMap::new();
    for _ in 0..MAX_REPAIRS {
        let error = match serde_path_to_error::deserialize::<_, T>(&document) {
            Ok(value) => {
                if let Err(invalid) = value.validate() {
                    for error in rule_errors(&invalid) {
                        if !errors.iter().any(|known| known.field == error.field) {
                            errors.push(error);
                        }
                    }
                }
                return if errors.is_empty() { Ok(value) } else { Err(errors) };
            }
            Err(error) => error,
        };
        let segments: Vec<Segment> = error.path().iter().cloned().collect();
        let message = strip_position(&error.into_inner().to_string());
        let (parent, name, kind) = locate(&segments, &message);
        let field = join(&parent, name.as_deref());
        if !errors.iter().any(|known| known.field == field) {
            errors.push(FieldError { field: field.clone(), message: in_our_words(kind, &message) });
        }
        let Some(name) = name else { break };
        let Some(object) = object_at(&mut document, &parent) else { break };
        if kind == Kind::Unknown {
            if object.remove(&name).is_none() {
                break; // not where serde said: stop rather than loop
            }
            continue;
        }
        let tried = stand_in_tried.entry(field).or_insert(0);
        let Some(stand_in) = STAND_INS.get(*tried) else { break };
        *tried += 1;
        object.insert(name, stand_in());
    }
    if errors.is_empty() {
        errors.push(FieldError { field: "body".to_owned(), message: "is not a valid request".to_owned() });
    }
    Err(errors)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Unknown,
    Missing,
    Invalid,
}

/// The object holding the field an error is about, the field's name, and what is wrong: serde
/// reports unknown and missing fields at the enclosing object, other errors at the field.
fn locate(segments: &[Segment], message: &str) -> (Vec<Segment>, Option<String>, Kind) {
    // `unknown field `NAME`, expected …` / `missing field `NAME``: a name may itself hold a
    // backtick, so it ends at the last "`, expected" or the final backtick.
    let named = |prefix: &str| {
        message.strip_prefix(prefix).and_then(|rest| {
            rest.rsplit_once("`, expected").map(|(name, _)| name).or_else(|| rest.strip_suffix('`')).map(str::to_owned)
        })
    };
    let (kind, name) = match (named("unknown field `"), named("missing field `")) {
        (Some(name), _) => (Kind::Unknown, Some(name)),
        (None, Some(name)) => (Kind::Missing, Some(name)),
        (None, None) => (Kind::Invalid, None),
    };
    match (name, segments.split_last()) {
        // Some serde versions put the unknown key itself on the path.
        (Some(name), Some((Segment::Map { key }, parent))) if *key == name => (parent.to_vec(), Some(name), kind),
        (Some(name), _) => (segments.to_vec(), Some(name), kind),
        (None, Some((Segment::Map { key }, parent))) => (parent.to_vec(), Some(key.clone()), kind),
        (None, _) => (segments.to_vec(), None, kind),
    }
}

/// `parent.name` as a JSON path: `settings.locale`, `items[2].name`.
fn join(parent: &[Segment], name: Option<&str>) -> String {
    let mut path = String::new();
    for segment in parent {
        match segment {
            Segment::Seq { index } => path.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Segment::Unknown => path.push_str(if path.is_empty() { "?" } else { ".?" }),
        }
    }
    match name {
        Some(name) if path.is_empty() => name.to_owned(),
        Some(name) => format!("{path}.{name}"),
        None if path.is_empty() => "body".to_owned(),
        None => path,
    }
}

fn object_at<'a>(document: &'a mut Value, path: &[Segment]) -> Option<&'a mut serde_json::Map<String, Value>> {
    let mut node = document;
    for segment in path {
        node = match segment {
            Segment::Map { key } => node.as_object_mut()?.get_mut(key)?,
            Segment::Seq { index } => node.as_array_mut()?.get_mut(*index)?,
            Segment::Enum { .. } | Segment::Unknown => return None,
        };
    }
    node.as_object_mut()
}

/// serde's wording turned into the API's: no Rust type names, no parser internals.
fn in_our_words(kind: Kind, message: &str) -> String {
    match kind {
        Kind::Unknown => return "is not a known field".to_owned(),
        Kind::Missing => return "is required".to_owned(),
        Kind::Invalid => {}
    }
    if let Some(variants) = message.strip_prefix("unknown variant `").and_then(|rest| rest.split_once("expected ")) {
        return format!("must be {}", variants.1.replace('`', ""));
    }
    let expected = message.rsplit_once(", expected ").map(|(_, expected)| expected);
    match expected {
        Some(expected) => format!("must be {}", plain_type(expected)),
        // Our own newtypes' messages (slug, e-mail, …) are already in our words.
        None => message.to_owned(),
    }
}

fn plain_type(expected: &str) -> String {
    let whole = |max: &str| format!("a whole number from 0 to {max}");
    match expected {
        "u8" => whole("255"),
        "u16" => whole("65535"),
        "u32" => whole("4294967295"),
        "u64" | "usize" => whole("18446744073709551615"),
        "i32" | "i64" | "isize" => "a whole number".to_owned(),
        "f32" | "f64" => "a number".to_owned(),
        "a sequence" => "an array".to_owned(),
        "a map" => "an object".to_owned(),
        other if other.starts_with("struct ") => "an object".to_owned(),
        other if other.starts_with("a string") || other.starts_with("a boolean") => other.to_owned(),
        "RFC 3339 format" | "an RFC 3339 formatted date and time string" => "an RFC 3339 date-time".to_owned(),
        other => other.to_owned(),
    }
}

/// The `validator` rules' failures as field errors, nested fields with their path.
fn rule_errors(invalid: &ValidationErrors) -> Vec<FieldError> {
    fn walk(prefix: &str, invalid: &ValidationErrors, out: &mut Vec<FieldError>) {
        let mut fields: Vec<_> = invalid.errors().iter().collect();
        fields.sort_by(|a, b| a.0.cmp(b.0));
        for (name, kind) in fields {
            let path = if prefix.is_empty() { name.to_string() } else { format!("{prefix}.{name}") };
            match kind {
                ValidationErrorsKind::Field(errors) => {
                    if let Some(first) = errors.first() {
                        let message =
                            first.message.as_ref().map_or_else(|| first.code.to_string(), ToString::to_string);
                        out.push(FieldError { field: path, message });
                    }
                }
                ValidationErrorsKind::Struct(inner) => walk(&path, inner, out),
                ValidationErrorsKind::List(items) => {
                    for (index, inner) in items {
                        walk(&format!("{path}[{index}]"), inner, out);
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    walk("", invalid, &mut out);
    out
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
    use validator::Validate;

    use super::*;

    #[derive(Debug, Deserialize, Validate)]
    #[serde(deny_unknown_fields)]
    struct Probe {
        #[allow(dead_code)]
        #[validate(length(min = 1, message = "must not be empty"))]
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
    async fn a_truncated_body_is_malformed_even_after_an_unknown_field() {
        let (status, body) = send(Some("application/json"), r#"{"extra":1,"name":"a","cou"#).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("malformed_request")), "{body}");
    }

    fn fields(problem: &Value) -> Vec<String> {
        problem["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .map(|e| e["field"].as_str().expect("field").to_owned())
            .collect()
    }

    #[actix_web::test]
    async fn one_422_names_every_bad_field() {
        // Wrong type, unknown field, broken rule, bad enum value: all four named at once.
        let (status, problem) =
            send(Some("application/json"), r#"{"name":"","count":"x","extra":true,"kind":"two"}"#).await;
        assert_eq!(status, 422, "{problem}");
        let mut named = fields(&problem);
        named.sort();
        assert_eq!(named, ["count", "extra", "kind", "name"], "{problem}");
        // Two missing, one unknown.
        let (_, problem) = send(Some("application/json"), r#"{"other":1}"#).await;
        let mut named = fields(&problem);
        named.sort();
        assert_eq!(named, ["count", "name", "other"], "{problem}");
    }

    #[actix_web::test]
    async fn an_unknown_field_with_a_backtick_in_its_name_is_named_whole() {
        let (status, problem) = send(Some("application/json"), r#"{"name":"a","count":1,"a`b":1}"#).await;
        assert_eq!(status, 422);
        assert_eq!(fields(&problem), ["a`b"], "{problem}");
    }

    #[actix_web::test]
    async fn messages_are_in_the_apis_words() {
        let (_, problem) = send(Some("application/json"), r#"{"name":"a","count":99999999999999999999999}"#).await;
        let message = problem["errors"][0]["message"].as_str().expect("message");
        assert_eq!(message, "must be a whole number from 0 to 4294967295", "{problem}");
        let (_, problem) = send(Some("application/json"), r#"{"name":"a","count":1,"kind":"two"}"#).await;
        assert_eq!(problem["errors"][0]["message"], "must be one", "{problem}");
        let (_, problem) = send(Some("application/json"), r#"{"name":"a","count":1,"x":1}"#).await;
        assert_eq!(problem["errors"][0]["message"], "is not a known field", "{problem}");
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
