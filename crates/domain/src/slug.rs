//! URL-safe organization handles.

use serde::{Deserialize, Serialize};

/// Why a string is not an acceptable slug, split so the message can tell the user what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlugError {
    /// Shorter than 3 or longer than 63 characters.
    #[error("slug must be 3 to 63 characters long")]
    Length,
    /// Contains something other than `a-z`, `0-9` and inner single hyphens.
    #[error("slug may contain only lower-case letters, digits and single inner hyphens")]
    Charset,
}

/// A lower-case, DNS-label-shaped handle, so it can appear in URLs and sub-domains unescaped.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Slug(String);

impl Slug {
    /// Validates `raw` as given: slugs are not silently rewritten, so what a user typed is
    /// exactly what they get or a clear error.
    pub fn parse(raw: &str) -> Result<Self, SlugError> {
        let len = raw.chars().count();
        if !(3..=63).contains(&len) {
            return Err(SlugError::Length);
        }
        let charset_ok = raw.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !charset_ok || raw.starts_with('-') || raw.ends_with('-') || raw.contains("--") {
            return Err(SlugError::Charset);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The slug text, usable in a URL or a sub-domain without escaping.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Slug {
    type Error = SlugError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Slug> for String {
    fn from(value: Slug) -> Self {
        value.0
    }
}

impl std::fmt::Display for Slug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_slugs_are_kept_verbatim() {
        assert_eq!(Slug::parse("acme-corp-2").expect("valid").as_str(), "acme-corp-2");
    }

    #[test]
    fn wrong_lengths_are_refused() {
        assert_eq!(Slug::parse("ab"), Err(SlugError::Length));
        assert_eq!(Slug::parse(&"a".repeat(64)), Err(SlugError::Length));
    }

    #[test]
    fn wrong_characters_are_refused() {
        for raw in ["Acme", "acme_corp", "-acme", "acme-", "ac--me", "acmé", "ac me"] {
            assert_eq!(Slug::parse(raw), Err(SlugError::Charset), "{raw}");
        }
    }
}
