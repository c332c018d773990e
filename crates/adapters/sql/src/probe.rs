use tenantry_ports::{HealthProbe, ProbeError};

use crate::SqlDatabase;

/// Readiness of the database: reachable, and with no migration pending (a replica running
/// older code against a newer schema, or the reverse, must not take traffic).
pub struct SqlHealthProbe {
    database: SqlDatabase,
}

impl SqlHealthProbe {
    /// Probes `database`.
    pub fn new(database: SqlDatabase) -> Self {
        Self { database }
    }
}

#[async_trait::async_trait]
impl HealthProbe for SqlHealthProbe {
    fn name(&self) -> &'static str {
        "database"
    }

    #[tracing::instrument(name = "adapter.sql.health.check", skip_all)]
    async fn check(&self) -> Result<(), ProbeError> {
        self.database.ping().await.map_err(|err| ProbeError::Unreachable(err.to_string()))?;
        let pending =
            self.database.pending_migrations().await.map_err(|err| ProbeError::Unreachable(err.to_string()))?;
        if pending.is_empty() {
            Ok(())
        } else {
            Err(ProbeError::NotReady(format!("{} migration(s) pending", pending.len())))
        }
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;
    use crate::SqlConfig;

    #[tokio::test]
    async fn pending_migrations_make_the_database_not_ready_until_applied() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let db = SqlDatabase::connect(&SqlConfig::new(SecretString::from(url))).await.expect("connects");
        let probe = SqlHealthProbe::new(db.clone());
        assert!(matches!(probe.check().await, Err(ProbeError::NotReady(_))));
        db.migrate().await.expect("migrates");
        probe.check().await.expect("ready once migrated");
    }
}
