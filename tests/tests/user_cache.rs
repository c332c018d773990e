//! The read-through user cache is a drop-in `UserRepository`: the identity contract suite passes
//! through it (in-process cache over SQLite; Redis over PostgreSQL when configured), so every
//! write through it is visible at the next read.

use std::sync::Arc;

use tenantry_adapter_memory::{CachedUserRepository, InMemoryCache, SystemClock, UserCacheAwareTwoFactor};
use tenantry_adapter_redis::{RedisCache, RedisConfig, RedisPool};
use tenantry_adapter_sql::{
    SqlConfig, SqlDatabase, SqlOneTimeTokenRepository, SqlSessionRepository, SqlTwoFactorRepository, SqlUserRepository,
};
use tenantry_ports::Cache;
use tenantry_testkit::identity::{IdentityStores, run_contract};
use tenantry_testkit::postgres::ScratchPostgres;

fn stores(db: &SqlDatabase, cache: Arc<dyn Cache>) -> IdentityStores {
    IdentityStores {
        users: Arc::new(CachedUserRepository::new(Arc::new(SqlUserRepository::new(db.clone())), cache.clone())),
        sessions: Arc::new(SqlSessionRepository::new(db.clone())),
        tokens: Arc::new(SqlOneTimeTokenRepository::new(db.clone())),
        two_factor: Arc::new(UserCacheAwareTwoFactor::new(Arc::new(SqlTwoFactorRepository::new(db.clone())), cache)),
    }
}

#[tokio::test]
async fn the_identity_contract_holds_through_the_in_process_user_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("cache.db").display());
    let db = SqlDatabase::connect(&SqlConfig::new(url.into())).await.expect("connects");
    db.migrate().await.expect("migrates");
    let cache: Arc<dyn Cache> = Arc::new(InMemoryCache::new(Arc::new(SystemClock)));
    run_contract(|| {
        let stores = stores(&db, cache.clone());
        async move { stores }
    })
    .await;
}

#[tokio::test]
async fn the_identity_contract_holds_through_the_redis_user_cache_on_postgres() {
    let Some(server) = tenantry_testkit::env::postgres_url() else { return };
    let Some(redis) = tenantry_testkit::env::redis_url() else { return };
    let scratch = ScratchPostgres::create(&server).await;
    let db = SqlDatabase::connect(&SqlConfig::new(scratch.url.clone().into())).await.expect("connects");
    db.migrate().await.expect("migrates");
    let mut config = RedisConfig::new(redis.into());
    config.key_prefix = format!("tenantry-test:{}:", uuid::Uuid::now_v7());
    let cache: Arc<dyn Cache> = Arc::new(RedisCache::new(RedisPool::connect(&config).expect("redis url")));
    run_contract(|| {
        let stores = stores(&db, cache.clone());
        async move { stores }
    })
    .await;
    db.close().await;
    scratch.drop_database().await;
}
