//! A fresh PostgreSQL database per test, so tests never share state and may run in parallel.

use sea_orm::{ConnectionTrait, Database};

/// The role tests connect as: it owns its scratch database (so it migrates it) but is neither a
/// superuser nor `BYPASSRLS`, so Row-Level Security binds it exactly as it binds the server in
/// production.
pub const APP_ROLE: &str = "tenantry_app";

/// A database created for one test on the server named by `TENANTRY_TEST_DATABASE_URL`.
pub struct ScratchPostgres {
    /// URL of the new database as [`APP_ROLE`], the role the server under test connects as.
    pub url: String,
    /// URL of the new database as the server URL's (super)user, for reaching rows behind the
    /// application's back (tampering, inspection) past Row-Level Security.
    pub admin_url: String,
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
        // Parallel tests race to create the role: either error means it exists.
        admin
            .execute_unprepared(&format!(
                "DO $$ BEGIN CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE; \
                 EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
            ))
            .await
            .expect("create the application role");
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\" OWNER {APP_ROLE}"))
            .await
            .expect("create a scratch database");
        admin.close().await.ok();
        let admin_url = with_database(server_url, &name);
        Self { url: with_user(&admin_url, APP_ROLE), admin_url, server_url: server_url.to_owned(), name }
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

/// `url` connecting as `user` (no password: the test server trusts loopback connections).
fn with_user(url: &str, user: &str) -> String {
    let Some(authority_start) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[authority_start..];
    let host_start = rest.find('@').map_or(0, |at| at + 1);
    format!("{}{user}@{}", &url[..authority_start], &rest[host_start..])
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
    use super::{with_database, with_user};

    #[test]
    fn the_user_is_replaced_and_any_password_dropped() {
        assert_eq!(with_user("postgres://postgres@h:5432/x", "app"), "postgres://app@h:5432/x");
        assert_eq!(with_user("postgres://u:secret@h/x?a=b", "app"), "postgres://app@h/x?a=b");
        assert_eq!(with_user("postgres://h/x", "app"), "postgres://app@h/x");
    }

    #[test]
    fn the_database_name_is_replaced_and_the_rest_kept() {
        assert_eq!(with_database("postgres://u:p@h:5432/postgres", "x"), "postgres://u:p@h:5432/x");
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
        assert_eq!(with_database("postgres://u@h/db?sslmode=disable", "x"), "postgres://u@h/x?sslmode=disable");
    }
}
