//! Accounts and sign-in: users, sessions, passwords, one-time tokens and the lockout rule.

mod lockout;
mod password;
mod session;
mod user;

pub use lockout::{LockoutDecision, LockoutPolicy};
pub use password::{PasswordPolicy, WeakPassword};
pub use session::{Session, TokenLifetimes, TokenPurpose};
pub use user::{DisplayName, DisplayNameError, NotificationPreferences, SettingsError, User, UserSettings};
