//! Accounts and sign-in: users, sessions, passwords, one-time tokens and the lockout rule.

mod lockout;
mod password;
mod session;
mod sign_in_alert;
mod user;

pub use lockout::{LockoutDecision, LockoutPolicy};
pub use password::{PasswordPolicy, WeakPassword};
pub use session::{Session, TokenLifetimes, TokenPurpose};
pub use sign_in_alert::{is_new_sign_in, network_of};
pub use user::{DisplayName, DisplayNameError, NotificationPreferences, SettingsError, User, UserSettings};
