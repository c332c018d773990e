//! A fresh PostgreSQL database per test, so tests never share state and may run in parallel.

use sea_orm::{ConnectionTrait, Database};

/// A database created for one test on the server named by `TENANTRY_TEST_DATABASE_URL`.
pub struct ScratchPostgres {
    /// URL of the new database (same server and credentials, new database name).
    pub url: String,
    server_url: String,
    name: String,
}

impl ScratchPostgres {
    /// Creates `tenantry_test_<random>` on the server at `server_url`.
    ///
    /// # Panics
    /// When the server cannot be reached or refuses: a test must not continue without its
    /// database.
    pub async fn create(server_url: &str) -> Self {
        let name = format!("tenantry_test_{}", uuid::Uuid::now_v7().simple());
        let admin = Database::connect(server_url).await.expect("connect to the test PostgreSQL server");
        admin.execute_unprepared(&format!("CREATE DATABASE \"{name}\"")).await.expect("create a scratch database");
        admin.close().await.ok();
        Self { url: with_database(server_url, &name), server_url: server_url.to_owned(), name }
    }

    /// Drops the database (and any connection still open on it).
    ///
    /// # Panics
    /// When the server refuses.
    pub async fn drop_database(self) {
        let admin = Database::connect(&self.server_url).await.expect("connect to the test PostgreSQL server");
        admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name))
            .await
            .expect("drop the scratch database");
        admin.close().await.ok();
    }
}

/// `server_url` with its database path replaced by `name`, query string kept.
fn with_database(server_url: &str, name: &str) -> String {
    let (base, query) = match server_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (server_url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let root = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{root}/{name}?{query}"),
        None => format!("{root}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_name_is_replaced_and_the_rest_kept() {
        assert_eq!(with_database("postgres://u:p@h:5432/postgres", "x"), "postgres://u:p@h:5432/x");
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
        assert_eq!(with_database("postgres://u@h/db?sslmode=disable", "x"), "postgres://u@h/x?sslmode=disable");
    }
}
