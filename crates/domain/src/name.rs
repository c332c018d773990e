//! The display names of tenant things: an organization, a team, an API key.

use serde::{Deserialize, Serialize};

/// Why a string is not an acceptable name; one case, because the fix is always the same (a
/// shorter, printable name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be 1 to 100 printable characters")]
pub struct NameError;

/// Trimmed, 1 to 100 characters, no control characters: what a list or a mail subject can show
/// safely on one line.
fn bounded(raw: &str) -> Result<String, NameError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() || trimmed.chars().count() > 100 || trimmed.chars().any(char::is_control) {
        return Err(NameError);
    }
    Ok(trimmed.to_owned())
}

macro_rules! bounded_name {
    ($($(#[$doc:meta])* $name:ident;)*) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
            #[serde(try_from = "String", into = "String")]
            pub struct $name(String);

            impl $name {
                /// Parses `raw`, trimming surrounding white space.
                ///
                /// # Errors
                /// [`NameError`] when empty, over 100 characters or holding control characters.
                pub fn parse(raw: &str) -> Result<Self, NameError> {
                    bounded(raw).map(Self)
                }

                /// The name text, trimmed and within bounds, safe to show on one line.
                pub fn as_str(&self) -> &str {
                    &self.0
                }
            }

            impl TryFrom<String> for $name {
                type Error = NameError;

                fn try_from(value: String) -> Result<Self, Self::Error> {
                    Self::parse(&value)
                }
            }

            impl From<$name> for String {
                fn from(value: $name) -> Self {
                    value.0
                }
            }

            impl std::fmt::Display for $name {
                fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str(&self.0)
                }
            }
        )*
    };
}

bounded_name! {
    /// An organization's display name (its handle is the [`crate::Slug`]).
    OrgName;
    /// A team's name, unique within its organization.
    TeamName;
    /// An API key's label, so its owners can tell keys apart.
    ApiKeyName;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(OrgName::parse("  Acme  ").map(|n| n.to_string()), Ok("Acme".to_owned()));
        assert_eq!(TeamName::parse(&"x".repeat(100)).map(|n| n.as_str().len()), Ok(100));
        for bad in ["", "   ", "a\u{7}b", &"x".repeat(101)] {
            assert_eq!(ApiKeyName::parse(bad), Err(NameError), "{bad:?}");
        }
    }
}
