//! Test support: a scratch PostgreSQL database, migrated, with organizations inserted behind
//! the API's back, for the tests that check a table is fenced by Row-Level Security.

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use secrecy::SecretString;
use tenantry_domain::OrgId;
use tenantry_testkit::postgres::ScratchPostgres;

use crate::{SqlConfig, SqlDatabase};

/// The scratch database (dropped with it), the application's pool, a superuser connection
/// that sees everything, and `count` organizations.
pub(crate) struct FencedOrgs {
    pub scratch: ScratchPostgres,
    pub db: SqlDatabase,
    pub superuser: DatabaseConnection,
    pub orgs: Vec<OrgId>,
}

/// `None` without `TENANTRY_TEST_DATABASE_URL` (a failure under CI, as the testkit decides).
pub(crate) async fn fenced_orgs(count: usize) -> Option<FencedOrgs> {
    let server = tenantry_testkit::env::postgres_url()?;
    let scratch = ScratchPostgres::create(&server).await;
    let db = SqlDatabase::connect(&SqlConfig::new(SecretString::from(scratch.url.clone()))).await.expect("connects");
    db.migrate().await.expect("migrates");
    let superuser = Database::connect(scratch.admin_url.as_str()).await.expect("connects");
    let orgs: Vec<OrgId> = (0..count).map(|_| OrgId::from_uuid(uuid::Uuid::now_v7())).collect();
    for org in &orgs {
        superuser
            .execute_unprepared(&format!(
                "INSERT INTO orgs (id, name, slug, plan, created_at, updated_at) \
                 VALUES ('{org}', 'o', 'o-{}', 'free', now(), now())",
                org.as_uuid().simple()
            ))
            .await
            .expect("insert org");
    }
    Some(FencedOrgs { scratch, db, superuser, orgs })
}

/// `SELECT COUNT(*) …` on PostgreSQL, as a number.
pub(crate) async fn count<C: ConnectionTrait>(db: &C, sql: &str) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(DbBackend::Postgres, sql.to_owned()))
        .await
        .expect("query runs")
        .expect("one row");
    row.try_get_by_index::<i64>(0).expect("a count")
}
