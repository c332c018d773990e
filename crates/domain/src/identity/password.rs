//! What makes a password acceptable.

/// Why a password was refused, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeakPassword {
    /// Fewer characters than the minimum.
    #[error("password must be at least {min} characters long")]
    TooShort {
        /// The minimum.
        min: usize,
    },
    /// More bytes than hashing should be asked to handle.
    #[error("password must be at most {max} bytes long")]
    TooLong {
        /// The maximum.
        max: usize,
    },
    /// Long enough but guessable (common, a pattern, or built from the user's own details).
    #[error("password is too easy to guess{}", hint.as_ref().map(|h| format!(": {h}")).unwrap_or_default())]
    Guessable {
        /// zxcvbn's suggestion, when it has one.
        hint: Option<String>,
    },
}

/// At least 12 characters and a zxcvbn score of 3 or more (API.md): length alone lets
/// `aaaaaaaaaaaa` through, a score alone lets short random strings through.
#[derive(Debug, Clone, Copy)]
pub struct PasswordPolicy {
    /// Minimum length in characters.
    pub min_chars: usize,
    /// Maximum length in bytes (bounds hashing work per request).
    pub max_bytes: usize,
    /// Minimum zxcvbn score (0–4).
    pub min_score: u8,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self { min_chars: 12, max_bytes: 1024, min_score: 3 }
    }
}

impl PasswordPolicy {
    /// Checks `password`; `user_inputs` (email, display name) count against it, so a password
    /// made of the user's own name scores low.
    ///
    /// # Errors
    /// [`WeakPassword`] saying why.
    pub fn check(&self, password: &str, user_inputs: &[&str]) -> Result<(), WeakPassword> {
        if password.chars().count() < self.min_chars {
            return Err(WeakPassword::TooShort { min: self.min_chars });
        }
        if password.len() > self.max_bytes {
            return Err(WeakPassword::TooLong { max: self.max_bytes });
        }
        // zxcvbn's cost grows with length; the strength of a long password is not in doubt.
        if password.chars().count() >= 64 {
            return Ok(());
        }
        let estimate = zxcvbn::zxcvbn(password, user_inputs);
        if u8::from(estimate.score()) >= self.min_score {
            return Ok(());
        }
        let hint = estimate.feedback().and_then(|feedback| {
            feedback.warning().map(|w| w.to_string()).or_else(|| feedback.suggestions().first().map(|s| s.to_string()))
        });
        Err(WeakPassword::Guessable { hint })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_passwords_are_refused_whatever_their_entropy() {
        assert_eq!(PasswordPolicy::default().check("x7$Kq!2vB", &[]), Err(WeakPassword::TooShort { min: 12 }));
    }

    #[test]
    fn long_but_common_passwords_are_refused() {
        for weak in ["password1234", "aaaaaaaaaaaaaaaa", "qwertyuiop12", "123456789012"] {
            assert!(
                matches!(PasswordPolicy::default().check(weak, &[]), Err(WeakPassword::Guessable { .. })),
                "{weak}"
            );
        }
    }

    #[test]
    fn passwords_built_from_the_users_own_details_are_refused() {
        let result = PasswordPolicy::default().check("annalee2024!", &["anna.lee@example.com", "annalee"]);
        assert!(matches!(result, Err(WeakPassword::Guessable { .. })), "{result:?}");
    }

    #[test]
    fn strong_passwords_pass() {
        for strong in ["correct horse battery staple", "vK9#mQ2$wL7!pZ", &"long enough ".repeat(6)] {
            PasswordPolicy::default().check(strong, &[]).unwrap_or_else(|err| panic!("{strong}: {err}"));
        }
    }

    #[test]
    fn absurdly_long_passwords_are_refused() {
        assert_eq!(PasswordPolicy::default().check(&"a".repeat(1025), &[]), Err(WeakPassword::TooLong { max: 1024 }));
    }
}
