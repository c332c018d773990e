//! Query strings as typed requests, and the one way every list pages.
//!
//! [`ApiQuery`] reads a query string the way [`super::ApiJson`] reads a body: every parameter
//! checked, every bad one named in one 422, no parser text. [`PageQuery`] is the `limit` and
//! `cursor` of every list; [`Cursors`] makes and reads cursors: opaque (sealed with the
//! secret cipher, so a client cannot read or forge one), versioned by the cipher's format,
//! and bound to the list that issued them.

use std::ops::Deref;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use futures_util::future::{Ready, ready};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tenantry_ports::SecretCipher;
use utoipa::IntoParams;
use validator::Validate;

use super::{ApiError, FieldError};

/// The default page size.
pub const DEFAULT_LIMIT: u32 = 20;
/// The largest page size.
pub const MAX_LIMIT: u32 = 100;

/// A query string of type `T`: every parameter a string the type's rules check, unknown
/// parameters refused (`#[serde(deny_unknown_fields)]`), a repeated one refused, and one 422
/// naming every bad parameter.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T> Deref for ApiQuery<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + Validate> FromRequest for ApiQuery<T> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(parse_query(req.query_string()).map(ApiQuery))
    }
}

/// Parses `query` as `T`.
///
/// # Errors
/// 422 `validation_failed` naming each bad or repeated parameter.
pub fn parse_query<T: DeserializeOwned + Validate>(query: &str) -> Result<T, ApiError> {
    let mut params = Map::new();
    let mut repeated = Vec::new();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if params.insert(name.to_string(), Value::String(value.into_owned())).is_some()
            && !repeated.iter().any(|error: &FieldError| error.field == name)
        {
            repeated.push(FieldError { field: name.into_owned(), message: "is given more than once".to_owned() });
        }
    }
    let parsed = super::json::decode::<T>(Value::Object(params));
    match (parsed, repeated.is_empty()) {
        (Ok(value), true) => Ok(value),
        (Ok(_), false) => Err(ApiError::validation(repeated)),
        (Err(mut errors), _) => {
            for error in &mut errors {
                if error.message == "is not a known field" {
                    "is not a known query parameter".clone_into(&mut error.message);
                }
            }
            errors.extend(
                repeated.into_iter().filter(|r| !errors.iter().any(|e| e.field == r.field)).collect::<Vec<_>>(),
            );
            Err(ApiError::validation(errors))
        }
    }
}

/// `limit` and `cursor`, the paging of every list.
#[derive(Debug, Default, Deserialize, Validate, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1–100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// The previous page's `next_cursor`; opaque.
    pub cursor: Option<String>,
}

impl PageQuery {
    /// The page asked for, in `list`'s key type: every problem with `limit` and `cursor`
    /// named together.
    ///
    /// # Errors
    /// 422 naming `limit` and/or `cursor`.
    pub fn page<K: DeserializeOwned>(&self, cursors: &Cursors, list: &'static str) -> Result<PageRequest<K>, ApiError> {
        page(cursors, list, self.limit.as_deref(), self.cursor.as_deref()).map_err(ApiError::validation)
    }
}

/// Reads `limit` and `cursor` for `list`, collecting both errors.
///
/// # Errors
/// The field errors of `limit` and `cursor`.
pub fn page<K: DeserializeOwned>(
    cursors: &Cursors,
    list: &'static str,
    limit: Option<&str>,
    cursor: Option<&str>,
) -> Result<PageRequest<K>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let limit = match limit.map(str::trim) {
        None => Some(DEFAULT_LIMIT),
        Some(raw) => match raw.parse::<u32>() {
            Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => Some(limit),
            _ => {
                errors.push(FieldError {
                    field: "limit".to_owned(),
                    message: format!("must be a whole number from 1 to {MAX_LIMIT}"),
                });
                None
            }
        },
    };
    let after = match cursor {
        None => Some(None),
        Some(raw) => match cursors.read::<K>(list, raw) {
            Some(key) => Some(Some(key)),
            None => {
                errors.push(FieldError {
                    field: "cursor".to_owned(),
                    message: "is not a cursor this list issued".to_owned(),
                });
                None
            }
        },
    };
    match (limit, after) {
        (Some(limit), Some(after)) => Ok(PageRequest { after, limit }),
        _ => Err(errors),
    }
}

/// A page to read: the items strictly after `after` in the list's stable order, `limit` of
/// them at most.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest<K> {
    /// The last key of the previous page.
    pub after: Option<K>,
    /// The page size.
    pub limit: u32,
}

impl<K> PageRequest<K> {
    /// How many items to fetch: one more than the page, to learn whether another follows.
    pub fn fetch(&self) -> u32 {
        self.limit + 1
    }
}

/// One list's page as sent: `{items, next_cursor}`.
#[derive(Debug, Serialize)]
pub struct Paged<T> {
    /// The items, in the list's order.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; null on the last one.
    pub next_cursor: Option<String>,
}

impl<T> Paged<T> {
    /// The same page with each item converted (to its response type).
    pub fn map<U>(self, convert: impl FnMut(T) -> U) -> Paged<U> {
        Paged { items: self.items.into_iter().map(convert).collect(), next_cursor: self.next_cursor }
    }
}

/// Makes and reads cursors with the secret cipher (shared by every replica).
#[derive(Clone)]
pub struct Cursors {
    cipher: Arc<dyn SecretCipher>,
}

#[derive(Serialize, Deserialize)]
struct Sealed<K> {
    /// The list that issued the cursor: a cursor of one list is refused by another.
    l: String,
    /// The last key of the page.
    k: K,
}

impl Cursors {
    /// Over `cipher`.
    pub fn new(cipher: Arc<dyn SecretCipher>) -> Self {
        Self { cipher }
    }

    /// The cursor after `key` in `list`.
    pub fn make<K: Serialize>(&self, list: &str, key: &K) -> Option<String> {
        let plain = serde_json::to_vec(&Sealed { l: list.to_owned(), k: key }).ok()?;
        match self.cipher.seal(&plain) {
            Ok(cursor) => Some(cursor),
            Err(err) => {
                tracing::error!(error = %err, "sealing a cursor failed");
                None
            }
        }
    }

    /// The key in a cursor `list` issued; `None` for anything else.
    pub fn read<K: DeserializeOwned>(&self, list: &str, cursor: &str) -> Option<K> {
        let plain = self.cipher.open(cursor.trim()).ok()?;
        let sealed: Sealed<K> = serde_json::from_slice(&plain).ok()?;
        (sealed.l == list).then_some(sealed.k)
    }

    /// Cuts `items` (fetched with [`PageRequest::fetch`]) to the page and makes the cursor of
    /// the next one from the last item's key, if more follow.
    ///
    /// # Errors
    /// 500 when more follow but no cursor could be made: a page must never pass for the last.
    pub fn finish<T, K: Serialize>(
        &self,
        list: &str,
        mut items: Vec<T>,
        page: &PageRequest<impl Sized>,
        key: impl Fn(&T) -> K,
    ) -> Result<Paged<T>, ApiError> {
        let limit = usize::try_from(page.limit).unwrap_or(usize::MAX);
        let more = items.len() > limit;
        items.truncate(limit);
        let next_cursor = match items.last() {
            Some(last) if more => Some(
                self.make(list, &key(last))
                    .ok_or_else(|| ApiError::internal(anyhow::anyhow!("sealing a cursor failed")))?,
            ),
            _ => None,
        };
        Ok(Paged { items, next_cursor })
    }
}

#[cfg(test)]
mod tests {
    use tenantry_adapter_crypto::XChaChaCipher;

    use super::*;

    fn cursors() -> Cursors {
        let dir = tempfile::tempdir().expect("tempdir");
        Cursors::new(Arc::new(XChaChaCipher::load_or_generate(&dir.path().join("key")).expect("key")))
    }

    fn fields(error: ApiError) -> Vec<String> {
        error.body()["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .map(|e| e["field"].as_str().expect("f").to_owned())
            .collect()
    }

    #[test]
    fn limits_default_to_20_and_stay_within_1_to_100() {
        let cursors = cursors();
        let page = |limit: Option<&str>| page::<String>(&cursors, "l", limit, None);
        assert_eq!(page(None).map(|p| p.limit), Ok(20));
        assert_eq!(page(Some("1")).map(|p| p.limit), Ok(1));
        assert_eq!(page(Some("100")).map(|p| p.limit), Ok(100));
        for bad in ["0", "101", "-1", "abc", "1.5", "", "99999999999999999999999"] {
            let errors = page(Some(bad)).expect_err(bad);
            assert_eq!(errors.len(), 1, "{bad}");
            assert_eq!(errors[0].field, "limit");
            assert!(!errors[0].message.contains("deserialize"), "{}", errors[0].message);
        }
    }

    #[test]
    fn cursors_round_trip_only_in_the_list_that_made_them() {
        let cursors = cursors();
        let cursor = cursors.make("teams", &"0193-key").expect("cursor");
        assert!(!cursor.contains("0193"), "opaque: {cursor}");
        assert_eq!(cursors.read::<String>("teams", &cursor), Some("0193-key".to_owned()));
        assert_eq!(cursors.read::<String>("roles", &cursor), None, "another list's cursor");
        assert_eq!(cursors.read::<String>("teams", "garbage"), None);
        let other = super::tests::cursors();
        assert_eq!(other.read::<String>("teams", &cursor), None, "another key's cursor");
    }

    #[test]
    fn id_cursors_keep_their_sealed_form_under_the_typed_ids() {
        use tenantry_domain::{ApiKeyId, DeliveryId};
        let cursors = cursors();
        let raw = uuid::Uuid::now_v7();
        let issued_before = cursors.make("api_keys", &raw).expect("cursor");
        assert_eq!(cursors.read::<ApiKeyId>("api_keys", &issued_before), Some(ApiKeyId::from_uuid(raw)));
        let issued_now = cursors.make("deliveries", &DeliveryId::from_uuid(raw)).expect("cursor");
        assert_eq!(cursors.read::<uuid::Uuid>("deliveries", &issued_now), Some(raw), "the same key inside");
        let not_an_id = cursors.make("api_keys", &"not-an-id").expect("cursor");
        let errors = page::<ApiKeyId>(&cursors, "api_keys", None, Some(&not_an_id)).expect_err("no id inside");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "cursor");
    }

    #[test]
    fn a_bad_limit_and_a_bad_cursor_are_named_together() {
        let cursors = cursors();
        let errors = page::<String>(&cursors, "l", Some("0"), Some("nope")).expect_err("both bad");
        let named: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(named, ["limit", "cursor"]);
    }

    #[test]
    fn a_page_is_cut_and_continued_without_gap_or_repeat() {
        let cursors = cursors();
        let all: Vec<u32> = (1..=45).collect();
        let mut seen = Vec::new();
        let mut after: Option<u32> = None;
        loop {
            let request = PageRequest { after, limit: 20 };
            let fetched: Vec<u32> =
                all.iter().copied().filter(|n| after.is_none_or(|a| *n > a)).take(request.fetch() as usize).collect();
            let page = cursors.finish("n", fetched, &request, |n| *n).expect("a page");
            seen.extend(page.items.iter().copied());
            match page.next_cursor {
                Some(cursor) => after = cursors.read("n", &cursor),
                None => break,
            }
        }
        assert_eq!(seen, all);
    }

    #[derive(Debug, Deserialize, Validate)]
    #[serde(deny_unknown_fields)]
    struct Probe {
        #[allow(dead_code)]
        limit: Option<String>,
        #[allow(dead_code)]
        action: Option<String>,
    }

    #[test]
    fn queries_name_every_unknown_or_repeated_parameter_in_our_words() {
        let errors = parse_query::<Probe>("limit=1&limit=2&bogus=1&other=2").expect_err("bad");
        let body = errors.body();
        let mut named = fields(errors);
        named.sort();
        assert_eq!(named, ["bogus", "limit", "other"], "{body}");
        assert!(body.to_string().contains("is not a known query parameter"), "{body}");
        assert!(!body.to_string().to_lowercase().contains("deserialize"), "{body}");
        assert!(parse_query::<Probe>("limit=5&action=member.*").is_ok());
    }
}
