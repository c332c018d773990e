//! The clocks and the id generator against the test kit's contract suites.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use tenantry_adapter_memory::{ManualClock, SystemClock, UuidV7Generator};

#[test]
fn the_system_clock_keeps_the_wall_clock_contract() {
    tenantry_testkit::clock::run_wall_clock_contract(Arc::new(SystemClock), Duration::from_secs(1));
}

#[test]
fn a_manual_clock_keeps_the_clock_contract() {
    let start = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).single().expect("a date");
    tenantry_testkit::clock::run_contract(Arc::new(ManualClock::new(start)));
}

#[test]
fn uuid_v7_ids_keep_the_id_generator_contract() {
    tenantry_testkit::ids::run_contract(Arc::new(UuidV7Generator));
}
