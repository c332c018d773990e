//! Driver errors mapped at the seam, for every repository of this crate.

use sea_orm::{DbErr, SqlErr};
use tenantry_ports::{Conflict, StoreError};

/// Maps a driver error at the seam: uniqueness → `Conflict(Duplicate)`, connectivity →
/// `Unavailable`.
pub(crate) fn store_error(err: DbErr) -> StoreError {
    if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) {
        return StoreError::Conflict(Conflict::Duplicate);
    }
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => StoreError::Unavailable(anyhow::Error::new(err)),
        other => StoreError::Unexpected(anyhow::Error::new(other)),
    }
}

pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::Unexpected(anyhow::anyhow!("stored {what} is invalid"))
}

/// As [`store_error`], for an insert whose only foreign key that can fail names the account:
/// the account was deleted meanwhile.
pub(crate) fn account_gone(err: DbErr) -> StoreError {
    if matches!(err.sql_err(), Some(SqlErr::ForeignKeyConstraintViolation(_))) {
        return StoreError::Conflict(Conflict::AccountGone);
    }
    store_error(err)
}

/// As [`store_error`], for a statement whose only uniqueness rule means `conflict`: the slug
/// of an org insert, the address of an account insert.
pub(crate) fn taken(conflict: Conflict) -> impl FnOnce(DbErr) -> StoreError {
    move |err| meaning(conflict)(store_error(err))
}

/// Gives a uniqueness failure of a change (already mapped) its meaning `conflict`.
pub(crate) fn meaning(conflict: Conflict) -> impl FnOnce(StoreError) -> StoreError {
    move |err| match err {
        StoreError::Conflict(Conflict::Duplicate) => StoreError::Conflict(conflict),
        other => other,
    }
}
