//! The in-process adapters against the suites `contract_tests.rs` does not run: the
//! personal-data reader and the task spawner.

use std::sync::Arc;

use tenantry_adapter_memory::{
    InMemoryOrgRepository, InMemoryPersonalDataReader, InMemoryUserRepository, MemoryDatabase, TokioTasks,
};
use tenantry_ports::BackgroundTasks;
use tenantry_testkit::personal::PersonalStores;

#[tokio::test]
async fn the_in_memory_reader_keeps_the_personal_data_contract() {
    tenantry_testkit::personal::run_contract(|| async {
        let db = MemoryDatabase::new();
        PersonalStores {
            users: Arc::new(InMemoryUserRepository::new(db.clone())),
            orgs: Arc::new(InMemoryOrgRepository::new(db.clone())),
            footprint: Arc::new(InMemoryPersonalDataReader::new(db)),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tokio_tasks_keep_the_background_tasks_contract() {
    let tasks = Arc::new(TokioTasks::new());
    tenantry_testkit::tasks::run_contract(tasks.clone() as Arc<dyn BackgroundTasks>).await;
}
