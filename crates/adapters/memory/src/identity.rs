//! Accounts, sessions, single-use tokens and second-factor state over a [`MemoryDatabase`].

use chrono::{DateTime, Utc};
use tenantry_domain::audit::AccountDeletion;
use tenantry_domain::identity::{DisplayName, Session, TokenPurpose, User, UserSettings};
use tenantry_domain::{ApiKeyId, Email, OrgId, SessionId, UserId};
use tenantry_ports::{
    AccountDeleted, Conflict, IssuedToken, NewUser, OneTimeTokenRepository, QueuedMail, RefreshOutcome,
    SessionRepository, StoreError, TwoFactorRecord, TwoFactorRepository, UserRepository,
};
use uuid::Uuid;

use crate::database::{BackupCodeRow, MemoryDatabase, OWNER, RefreshRow, TokenRow, UserRow, missing};

fn page(limit: u32) -> usize {
    usize::try_from(limit).unwrap_or(usize::MAX)
}

/// [`UserRepository`] in memory. Deleting an account applies the same rules as the SQL
/// adapter in one critical section: refused while the user is the last owner of an
/// organization, their API keys revoked, and each membership ended and key revoked recorded
/// in that organization's audit log.
#[derive(Clone, Debug)]
pub struct InMemoryUserRepository {
    db: MemoryDatabase,
}

impl InMemoryUserRepository {
    /// A view over `db`.
    #[must_use]
    pub fn new(db: MemoryDatabase) -> Self {
        Self { db }
    }
}

fn with_user(db: &MemoryDatabase, id: UserId, change: impl FnOnce(&mut UserRow)) -> Result<(), StoreError> {
    db.write(|tables| {
        let row = tables.users.get_mut(&id.as_uuid()).ok_or(StoreError::NotFound)?;
        change(row);
        Ok(())
    })
}

#[async_trait::async_trait]
impl UserRepository for InMemoryUserRepository {
    async fn create(&self, user: &NewUser) -> Result<(), StoreError> {
        self.db.write(|tables| {
            if tables.emails.contains_key(user.email.as_str()) {
                return Err(StoreError::Conflict(Conflict::EmailTaken));
            }
            if tables.users.contains_key(&user.id.as_uuid()) {
                return Err(StoreError::Conflict(Conflict::Duplicate));
            }
            let row = UserRow {
                user: User {
                    id: user.id,
                    email: user.email.clone(),
                    display_name: user.display_name.clone(),
                    password_hash: user.password_hash.clone(),
                    email_verified_at: user.email_verified_at,
                    is_admin: user.is_admin,
                    disabled_at: None,
                    settings: UserSettings::default(),
                    totp_enabled: false,
                    created_at: user.created_at,
                    updated_at: user.created_at,
                },
                totp_secret: None,
                totp_pending_secret: None,
                totp_enabled_at: None,
                totp_last_step: None,
            };
            tables.emails.insert(user.email.as_str().to_owned(), user.id.as_uuid());
            tables.users.insert(user.id.as_uuid(), row);
            Ok(())
        })
    }

    async fn by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        self.db.read(|tables| Ok(tables.users.get(&id.as_uuid()).map(|row| row.user.clone())))
    }

    async fn by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        self.db.read(|tables| {
            Ok(tables.emails.get(email.as_str()).and_then(|id| tables.users.get(id)).map(|row| row.user.clone()))
        })
    }

    async fn update_profile(
        &self,
        id: UserId,
        display_name: Option<DisplayName>,
        settings: &UserSettings,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        with_user(&self.db, id, |row| {
            row.user.display_name = display_name;
            row.user.settings = settings.clone();
            row.user.updated_at = now;
        })
    }

    async fn set_password_hash(&self, id: UserId, hash: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        with_user(&self.db, id, |row| {
            hash.clone_into(&mut row.user.password_hash);
            row.user.updated_at = now;
        })
    }

    async fn mark_email_verified(&self, id: UserId, now: DateTime<Utc>) -> Result<(), StoreError> {
        with_user(&self.db, id, |row| {
            if row.user.email_verified_at.is_none() {
                row.user.email_verified_at = Some(now);
                row.user.updated_at = now;
            }
        })
    }

    async fn list(&self, after: Option<UserId>, limit: u32) -> Result<Vec<User>, StoreError> {
        self.db.read(|tables| {
            Ok(tables
                .users
                .values()
                .filter(|row| after.is_none_or(|after| row.user.id > after))
                .take(page(limit))
                .map(|row| row.user.clone())
                .collect())
        })
    }

    async fn set_disabled(
        &self,
        id: UserId,
        disabled_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        with_user(&self.db, id, |row| {
            row.user.disabled_at = disabled_at;
            row.user.updated_at = now;
        })
    }

    async fn delete(&self, id: UserId, audit: &AccountDeletion) -> Result<AccountDeleted, StoreError> {
        let user = id.as_uuid();
        let at = audit.at();
        self.db.write(|tables| {
            if !tables.users.contains_key(&user) {
                return Err(StoreError::NotFound);
            }
            let memberships: Vec<(Uuid, String)> = tables
                .memberships
                .iter()
                .filter(|((_, member), _)| *member == user)
                .map(|((org, _), row)| (*org, row.role.clone()))
                .collect();
            if memberships.iter().any(|(org, role)| role == OWNER && tables.owners(*org) <= 1) {
                return Err(StoreError::Conflict(Conflict::LastOwner));
            }
            let keys: Vec<Uuid> = tables
                .api_keys
                .values()
                .filter(|(key, _)| {
                    key.created_by == id && key.revoked_at.is_none() && key.expires_at.is_none_or(|ends| ends > at)
                })
                .map(|(key, _)| key.id.as_uuid())
                .collect();
            let mut events = Vec::with_capacity(memberships.len() + keys.len());
            for (org, role) in &memberships {
                tables.memberships.remove(&(*org, user));
                events.push(audit.membership_ended(OrgId::from_uuid(*org), role));
            }
            for key in &keys {
                if let Some((row, _)) = tables.api_keys.get_mut(key) {
                    row.revoked_at = Some(at);
                    events.push(audit.key_revoked(row.org_id, ApiKeyId::from_uuid(*key)));
                }
            }
            events.sort_by_key(|event| event.org_id);
            for event in &events {
                tables.append(event);
            }
            let mut orgs: Vec<OrgId> = events.iter().map(|event| event.org_id).collect();
            orgs.dedup();
            let sessions = tables.drop_sessions_of(user).into_iter().map(SessionId::from_uuid).collect();
            tables.one_time_tokens.retain(|_, token| token.user_id != user);
            tables.backup_codes.remove(&user);
            tables.team_members.retain(|(_, member), _| *member != user);
            if let Some(row) = tables.users.remove(&user) {
                tables.emails.remove(row.user.email.as_str());
            }
            Ok(AccountDeleted { orgs, sessions })
        })
    }
}

/// [`SessionRepository`] in memory: refresh tokens rotate under the database's lock, so of
/// several concurrent presentations of one token exactly one rotates it.
#[derive(Clone, Debug)]
pub struct InMemorySessionRepository {
    db: MemoryDatabase,
}

impl InMemorySessionRepository {
    /// A view over `db`.
    #[must_use]
    pub fn new(db: MemoryDatabase) -> Self {
        Self { db }
    }
}

#[async_trait::async_trait]
impl SessionRepository for InMemorySessionRepository {
    async fn create(&self, session: &Session, refresh_hash: &str, mails: &[QueuedMail]) -> Result<(), StoreError> {
        self.db.write(|tables| {
            if !tables.user_exists(session.user_id) {
                return Err(missing("user"));
            }
            if tables.sessions.contains_key(&session.id.as_uuid()) || tables.refresh_tokens.contains_key(refresh_hash) {
                return Err(StoreError::Conflict(Conflict::Duplicate));
            }
            tables.queue_mail(mails)?;
            tables.sessions.insert(session.id.as_uuid(), session.clone());
            tables
                .refresh_tokens
                .insert(refresh_hash.to_owned(), RefreshRow { session_id: session.id.as_uuid(), used_at: None });
            Ok(())
        })
    }

    async fn rotate_refresh(
        &self,
        presented_hash: &str,
        next_hash: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<RefreshOutcome, StoreError> {
        self.db.write(|tables| {
            let Some(token) = tables.refresh_tokens.get(presented_hash) else {
                return Ok(RefreshOutcome::Invalid);
            };
            let session_id = token.session_id;
            if token.used_at.is_some() {
                return Ok(RefreshOutcome::Reused(SessionId::from_uuid(session_id)));
            }
            let Some(session) = tables.sessions.get(&session_id) else {
                return Ok(RefreshOutcome::Invalid);
            };
            // A dead session leaves its token as it was, as the SQL transaction rolls back.
            if !session.is_active(now) {
                return Ok(RefreshOutcome::Invalid);
            }
            if tables.refresh_tokens.contains_key(next_hash) {
                return Err(StoreError::Conflict(Conflict::Duplicate));
            }
            if let Some(token) = tables.refresh_tokens.get_mut(presented_hash) {
                token.used_at = Some(now);
            }
            tables.refresh_tokens.insert(next_hash.to_owned(), RefreshRow { session_id, used_at: None });
            let session = tables.sessions.get_mut(&session_id).ok_or(StoreError::NotFound)?;
            session.expires_at = expires_at;
            session.last_seen_at = now;
            Ok(RefreshOutcome::Rotated(session.clone()))
        })
    }

    async fn get(&self, id: SessionId) -> Result<Option<Session>, StoreError> {
        self.db.read(|tables| Ok(tables.sessions.get(&id.as_uuid()).cloned()))
    }

    async fn list_active(
        &self,
        user_id: UserId,
        now: DateTime<Utc>,
        before: Option<SessionId>,
        limit: u32,
    ) -> Result<Vec<Session>, StoreError> {
        self.db.read(|tables| {
            Ok(tables
                .sessions
                .values()
                .rev()
                .filter(|session| session.user_id == user_id && session.is_active(now))
                .filter(|session| before.is_none_or(|before| session.id < before))
                .take(page(limit))
                .cloned()
                .collect())
        })
    }

    async fn list_all(&self, user_id: UserId) -> Result<Vec<Session>, StoreError> {
        self.db.read(|tables| {
            let mut all: Vec<Session> =
                tables.sessions.values().filter(|session| session.user_id == user_id).cloned().collect();
            all.sort_by_key(|session| std::cmp::Reverse((session.created_at, session.id)));
            Ok(all)
        })
    }

    async fn revoke(&self, user_id: UserId, id: SessionId, now: DateTime<Utc>) -> Result<bool, StoreError> {
        self.db.write(|tables| {
            Ok(match tables.sessions.get_mut(&id.as_uuid()) {
                Some(session) if session.user_id == user_id && session.revoked_at.is_none() => {
                    session.revoked_at = Some(now);
                    true
                }
                _ => false,
            })
        })
    }

    async fn revoke_all(
        &self,
        user_id: UserId,
        except: Option<SessionId>,
        now: DateTime<Utc>,
    ) -> Result<Vec<SessionId>, StoreError> {
        self.db.write(|tables| {
            let mut revoked = Vec::new();
            for session in tables.sessions.values_mut() {
                if session.user_id == user_id && session.is_active(now) && Some(session.id) != except {
                    session.revoked_at = Some(now);
                    revoked.push(session.id);
                }
            }
            Ok(revoked)
        })
    }

    async fn touch(&self, id: SessionId, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.db.write(|tables| {
            if let Some(session) = tables.sessions.get_mut(&id.as_uuid()) {
                session.last_seen_at = now;
            }
            Ok(())
        })
    }
}

/// [`OneTimeTokenRepository`] in memory: a token is consumed under the database's lock, so two
/// concurrent uses cannot both succeed.
#[derive(Clone, Debug)]
pub struct InMemoryOneTimeTokenRepository {
    db: MemoryDatabase,
}

impl InMemoryOneTimeTokenRepository {
    /// A view over `db`.
    #[must_use]
    pub fn new(db: MemoryDatabase) -> Self {
        Self { db }
    }
}

fn usable(token: &TokenRow, purpose: TokenPurpose, now: DateTime<Utc>) -> bool {
    token.purpose == purpose && token.used_at.is_none() && token.expires_at > now
}

#[async_trait::async_trait]
impl OneTimeTokenRepository for InMemoryOneTimeTokenRepository {
    async fn create(
        &self,
        user_id: UserId,
        purpose: TokenPurpose,
        token_hash: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        mails: &[QueuedMail],
    ) -> Result<(), StoreError> {
        self.db.write(|tables| {
            if !tables.user_exists(user_id) {
                return Err(missing("user"));
            }
            if tables.one_time_tokens.contains_key(token_hash) {
                return Err(StoreError::Conflict(Conflict::Duplicate));
            }
            tables.queue_mail(mails)?;
            tables.one_time_tokens.insert(
                token_hash.to_owned(),
                TokenRow { user_id: user_id.as_uuid(), purpose, created_at: now, expires_at, used_at: None },
            );
            Ok(())
        })
    }

    async fn consume(
        &self,
        purpose: TokenPurpose,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<UserId>, StoreError> {
        self.db.write(|tables| {
            Ok(match tables.one_time_tokens.get_mut(token_hash) {
                Some(token) if usable(token, purpose, now) => {
                    token.used_at = Some(now);
                    Some(UserId::from_uuid(token.user_id))
                }
                _ => None,
            })
        })
    }

    async fn peek(
        &self,
        purpose: TokenPurpose,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<UserId>, StoreError> {
        self.db.read(|tables| {
            Ok(tables
                .one_time_tokens
                .get(token_hash)
                .filter(|token| usable(token, purpose, now))
                .map(|token| UserId::from_uuid(token.user_id)))
        })
    }

    async fn invalidate(&self, user_id: UserId, purpose: TokenPurpose, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.db.write(|tables| {
            for token in tables.one_time_tokens.values_mut() {
                if token.user_id == user_id.as_uuid() && token.purpose == purpose && token.used_at.is_none() {
                    token.used_at = Some(now);
                }
            }
            Ok(())
        })
    }

    async fn list_for_user(&self, user_id: UserId) -> Result<Vec<IssuedToken>, StoreError> {
        self.db.read(|tables| {
            let mut issued: Vec<IssuedToken> = tables
                .one_time_tokens
                .values()
                .filter(|token| token.user_id == user_id.as_uuid())
                .map(|token| IssuedToken {
                    purpose: token.purpose,
                    created_at: token.created_at,
                    expires_at: token.expires_at,
                    used_at: token.used_at,
                })
                .collect();
            issued.sort_by_key(|token| token.created_at);
            Ok(issued)
        })
    }
}

/// [`TwoFactorRepository`] in memory: secrets live on the user row, as in SQL, so the state
/// goes with the account.
#[derive(Clone, Debug)]
pub struct InMemoryTwoFactorRepository {
    db: MemoryDatabase,
}

impl InMemoryTwoFactorRepository {
    /// A view over `db`.
    #[must_use]
    pub fn new(db: MemoryDatabase) -> Self {
        Self { db }
    }
}

#[async_trait::async_trait]
impl TwoFactorRepository for InMemoryTwoFactorRepository {
    async fn get(&self, user_id: UserId) -> Result<Option<TwoFactorRecord>, StoreError> {
        self.db.read(|tables| {
            Ok(tables.users.get(&user_id.as_uuid()).map(|row| TwoFactorRecord {
                pending_secret: row.totp_pending_secret.clone(),
                secret: row.totp_enabled_at.and(row.totp_secret.clone()),
                last_step: row.totp_last_step,
            }))
        })
    }

    async fn set_pending(&self, user_id: UserId, sealed: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        with_user(&self.db, user_id, |row| {
            row.totp_pending_secret = Some(sealed.to_owned());
            row.user.updated_at = now;
        })
    }

    async fn enable(
        &self,
        user_id: UserId,
        sealed: &str,
        first_step: i64,
        backup_code_hashes: &[String],
        now: DateTime<Utc>,
        mails: &[QueuedMail],
    ) -> Result<(), StoreError> {
        self.db.write(|tables| {
            if !tables.user_exists(user_id) {
                return Err(StoreError::NotFound);
            }
            tables.queue_mail(mails)?;
            let row = tables.users.get_mut(&user_id.as_uuid()).ok_or(StoreError::NotFound)?;
            row.totp_secret = Some(sealed.to_owned());
            row.totp_pending_secret = None;
            row.totp_enabled_at = Some(now);
            row.totp_last_step = Some(first_step);
            row.user.totp_enabled = true;
            row.user.updated_at = now;
            let codes = backup_code_hashes
                .iter()
                .map(|hash| BackupCodeRow { code_hash: hash.clone(), used_at: None })
                .collect();
            tables.backup_codes.insert(user_id.as_uuid(), codes);
            Ok(())
        })
    }

    async fn disable(&self, user_id: UserId, now: DateTime<Utc>, mails: &[QueuedMail]) -> Result<(), StoreError> {
        self.db.write(|tables| {
            if !tables.user_exists(user_id) {
                return Err(StoreError::NotFound);
            }
            tables.queue_mail(mails)?;
            let row = tables.users.get_mut(&user_id.as_uuid()).ok_or(StoreError::NotFound)?;
            row.totp_secret = None;
            row.totp_pending_secret = None;
            row.totp_enabled_at = None;
            row.totp_last_step = None;
            row.user.totp_enabled = false;
            row.user.updated_at = now;
            tables.backup_codes.remove(&user_id.as_uuid());
            Ok(())
        })
    }

    async fn advance_step(&self, user_id: UserId, step: i64) -> Result<bool, StoreError> {
        self.db.write(|tables| {
            Ok(match tables.users.get_mut(&user_id.as_uuid()) {
                Some(row) if row.totp_last_step.is_none_or(|last| last < step) => {
                    row.totp_last_step = Some(step);
                    true
                }
                _ => false,
            })
        })
    }

    async fn consume_backup_code(
        &self,
        user_id: UserId,
        code_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.db.write(|tables| {
            let codes = tables.backup_codes.get_mut(&user_id.as_uuid());
            let code = codes
                .and_then(|codes| codes.iter_mut().find(|code| code.code_hash == code_hash && code.used_at.is_none()));
            Ok(match code {
                Some(code) => {
                    code.used_at = Some(now);
                    true
                }
                None => false,
            })
        })
    }

    async fn backup_codes_left(&self, user_id: UserId) -> Result<u32, StoreError> {
        self.db.read(|tables| {
            let left = tables
                .backup_codes
                .get(&user_id.as_uuid())
                .map_or(0, |codes| codes.iter().filter(|code| code.used_at.is_none()).count());
            Ok(u32::try_from(left).unwrap_or(u32::MAX))
        })
    }
}
