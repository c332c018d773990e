//! E-mail addresses as accounts are keyed by them: normalised once, compared exactly.

use serde::{Deserialize, Serialize};

/// Why a string is not an acceptable e-mail address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// Nothing (or only white space) was given.
    #[error("email is empty")]
    Empty,
    /// Longer than the 254 characters SMTP can carry.
    #[error("email is longer than 254 characters")]
    TooLong,
    /// Not of the form `local@domain.tld`.
    #[error("email is not of the form name@example.com")]
    Malformed,
}

/// A syntactically valid e-mail address, trimmed and lower-cased.
///
/// Lower-casing the whole address (not only the domain) is a deliberate trade-off: no mainstream
/// provider treats local parts case-sensitively, and treating `Ann@x.io` and `ann@x.io` as two
/// accounts invites account confusion and duplicate sign-ups.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    /// Validates and normalises `raw`: the only way to get an `Email`, so every address that is
    /// stored or compared went through the same trimming and lower-casing.
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(EmailError::Empty);
        }
        if trimmed.chars().count() > 254 {
            return Err(EmailError::TooLong);
        }
        let normalised = trimmed.to_lowercase();
        let (local, domain) = normalised.rsplit_once('@').ok_or(EmailError::Malformed)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local.chars().all(|c| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if local_ok && domain_ok { Ok(Self(normalised)) } else { Err(EmailError::Malformed) }
    }

    /// The normalised address: the form to store, key lookups on and send to.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Email {
    type Error = EmailError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Email> for String {
    fn from(value: Email) -> Self {
        value.0
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_trimmed_and_lower_cased() {
        let email = Email::parse("  Ann.Lee+tag@Example.COM ").expect("valid");
        assert_eq!(email.as_str(), "ann.lee+tag@example.com");
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for raw in [
            "plainaddress",
            "@example.com",
            "ann@",
            "ann@example",
            "ann@.example.com",
            "ann@example..com",
            "ann..lee@example.com",
            ".ann@example.com",
            "ann lee@example.com",
            "ann@exa mple.com",
            "ann@-example.com",
        ] {
            assert_eq!(Email::parse(raw), Err(EmailError::Malformed), "{raw}");
        }
    }

    #[test]
    fn empty_and_overlong_addresses_say_why() {
        assert_eq!(Email::parse("   "), Err(EmailError::Empty));
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(Email::parse(&long), Err(EmailError::TooLong));
    }

    #[test]
    fn deserialising_validates() {
        assert!(serde_json::from_str::<Email>("\"nope\"").is_err());
        let ok: Email = serde_json::from_str("\"A@B.io\"").expect("valid");
        assert_eq!(ok.as_str(), "a@b.io");
    }
}
