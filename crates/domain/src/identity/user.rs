//! User accounts.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Email, UserId};

/// A user account: the platform-wide identity, which exists apart from any organization and
/// joins organizations through memberships.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Its id.
    pub id: UserId,
    /// Sign-in address, normalised.
    pub email: Email,
    /// Name shown to others.
    pub display_name: Option<DisplayName>,
    /// The argon2id PHC string.
    pub password_hash: String,
    /// When the address was proven.
    pub email_verified_at: Option<DateTime<Utc>>,
    /// Platform administrator (may use the admin routes).
    pub is_admin: bool,
    /// When an administrator disabled the account (it cannot sign in).
    pub disabled_at: Option<DateTime<Utc>>,
    /// Preferences.
    pub settings: UserSettings,
    /// Whether TOTP two-factor sign-in is on.
    pub totp_enabled: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Why a display name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DisplayNameError {
    /// Empty after trimming, or over 100 characters.
    #[error("display name must be 1 to 100 characters")]
    Length,
    /// Contains control characters.
    #[error("display name may not contain control characters")]
    Control,
}

/// A trimmed, printable name of 1–100 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DisplayName(String);

impl DisplayName {
    /// Validates `raw` (trimmed first).
    ///
    /// # Errors
    /// [`DisplayNameError`].
    pub fn parse(raw: &str) -> Result<Self, DisplayNameError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.chars().count() > 100 {
            return Err(DisplayNameError::Length);
        }
        if trimmed.chars().any(char::is_control) {
            return Err(DisplayNameError::Control);
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The name, trimmed and free of control characters, safe to show to other members.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DisplayName {
    type Error = DisplayNameError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<DisplayName> for String {
    fn from(value: DisplayName) -> Self {
        value.0
    }
}

/// Which e-mails a user wants beyond the security ones, which are always sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationPreferences {
    /// Product news.
    #[serde(default)]
    pub product_updates: bool,
    /// Activity in the user's organizations (invitations, role changes).
    #[serde(default = "yes")]
    pub org_activity: bool,
}

fn yes() -> bool {
    true
}

impl Default for NotificationPreferences {
    fn default() -> Self {
        Self { product_updates: false, org_activity: true }
    }
}

/// Why settings were refused; stored settings are validated, so mail and clients can rely on
/// a zone and a locale they understand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// Not an IANA zone name such as `Europe/Paris` or `UTC`.
    #[error("time_zone must be an IANA zone name such as Europe/Paris or UTC")]
    TimeZone,
    /// Not a language tag such as `en` or `pt-BR`.
    #[error("locale must be a language tag such as en or pt-BR")]
    Locale,
}

/// Per-user preferences, strict about unknown fields so a client's typo is an error rather
/// than a setting silently ignored.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSettings {
    /// IANA time zone.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// BCP 47 language tag.
    #[serde(default)]
    pub locale: Option<String>,
    /// E-mail preferences.
    #[serde(default)]
    pub notifications: NotificationPreferences,
}

impl UserSettings {
    /// Checks the shape of each value.
    ///
    /// # Errors
    /// [`SettingsError`] naming the first bad value.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if let Some(zone) = &self.time_zone {
            let ok = zone.len() <= 64
                && (zone == "UTC"
                    || (zone.contains('/')
                        && zone.split('/').all(|part| {
                            !part.is_empty()
                                && part.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                                && part.chars().all(|c| c.is_ascii_alphanumeric() || "_-+".contains(c))
                        })));
            if !ok {
                return Err(SettingsError::TimeZone);
            }
        }
        if let Some(locale) = &self.locale {
            let mut parts = locale.split('-');
            let language_ok =
                parts.next().is_some_and(|l| (2..=3).contains(&l.len()) && l.chars().all(|c| c.is_ascii_lowercase()));
            let rest_ok = parts.all(|p| (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()));
            if !(language_ok && rest_ok && locale.len() <= 35) {
                return Err(SettingsError::Locale);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_are_trimmed_and_bounded() {
        assert_eq!(DisplayName::parse("  Ann Lee ").expect("valid").as_str(), "Ann Lee");
        assert_eq!(DisplayName::parse("   "), Err(DisplayNameError::Length));
        assert_eq!(DisplayName::parse(&"x".repeat(101)), Err(DisplayNameError::Length));
        assert_eq!(DisplayName::parse("Ann\u{0}Lee"), Err(DisplayNameError::Control));
    }

    #[test]
    fn settings_accept_real_zones_and_tags_only() {
        let mut settings =
            UserSettings { time_zone: Some("Europe/Paris".into()), locale: Some("pt-BR".into()), ..Default::default() };
        settings.validate().expect("valid");
        settings.time_zone = Some("America/Argentina/Buenos_Aires".into());
        settings.validate().expect("valid");
        settings.time_zone = Some("not a zone".into());
        assert_eq!(settings.validate(), Err(SettingsError::TimeZone));
        settings.time_zone = Some("UTC".into());
        settings.locale = Some("english".into());
        assert_eq!(settings.validate(), Err(SettingsError::Locale));
    }

    #[test]
    fn notification_defaults_are_conservative() {
        let settings: UserSettings = serde_json_free_default();
        assert!(!settings.notifications.product_updates);
        assert!(settings.notifications.org_activity);
    }

    fn serde_json_free_default() -> UserSettings {
        UserSettings::default()
    }
}
