//! Driver errors mapped at the seam, for every repository of this crate.

use sea_orm::{DbErr, SqlErr};
use tenantry_ports::StoreError;

/// Maps a driver error at the seam: uniqueness → `Conflict`, connectivity → `Unavailable`.
pub(crate) fn store_error(err: DbErr) -> StoreError {
    if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) {
        return StoreError::Conflict;
    }
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => StoreError::Unavailable(anyhow::Error::new(err)),
        other => StoreError::Unexpected(anyhow::Error::new(other)),
    }
}

pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::Unexpected(anyhow::anyhow!("stored {what} is invalid"))
}
