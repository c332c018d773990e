//! The [`IdGenerator`] contract: unique, UUIDv7, time-ordered.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::Utc;
use tenantry_ports::IdGenerator;
use uuid::Uuid;

/// How many ids each case draws: enough that a 1-in-a-million collision or a reordering within
/// one millisecond shows up.
const DRAWS: usize = 20_000;

/// Runs every case against `ids`.
///
/// # Panics
/// Naming the broken rule.
pub fn run_contract(ids: Arc<dyn IdGenerator>) {
    ids_are_uuid_version_7_with_the_rfc_variant(ids.as_ref());
    ids_are_unique_and_increase_in_generation_order(ids.as_ref());
    ids_drawn_on_several_threads_are_all_distinct(ids.clone());
    an_ids_timestamp_is_the_time_it_was_drawn(ids.as_ref());
}

fn ids_are_uuid_version_7_with_the_rfc_variant(ids: &dyn IdGenerator) {
    for _ in 0..100 {
        let id = ids.new_id();
        assert_eq!(id.get_version_num(), 7, "{id} is not a UUIDv7 (ids must be time-ordered)");
        assert_eq!(id.get_variant(), uuid::Variant::RFC4122, "{id} does not have the RFC 9562 variant");
    }
}

fn ids_are_unique_and_increase_in_generation_order(ids: &dyn IdGenerator) {
    let drawn: Vec<Uuid> = (0..DRAWS).map(|_| ids.new_id()).collect();
    for pair in drawn.windows(2) {
        assert!(
            pair[0] < pair[1],
            "ids must increase in the order they are drawn (cursor pagination and index locality rely on it): \
             {} then {}",
            pair[0],
            pair[1]
        );
    }
}

fn ids_drawn_on_several_threads_are_all_distinct(ids: Arc<dyn IdGenerator>) {
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let ids = ids.clone();
            std::thread::spawn(move || (0..DRAWS / 4).map(|_| ids.new_id()).collect::<Vec<_>>())
        })
        .collect();
    let mut seen = HashSet::new();
    for thread in threads {
        let Ok(drawn) = thread.join() else { panic!("a thread drawing ids panicked") };
        for id in drawn {
            assert!(seen.insert(id), "{id} was drawn twice on different threads");
        }
    }
}

fn an_ids_timestamp_is_the_time_it_was_drawn(ids: &dyn IdGenerator) {
    let before = Utc::now().timestamp_millis();
    let id = ids.new_id();
    let after = Utc::now().timestamp_millis();
    let Some((seconds, nanos)) = id.get_timestamp().map(|t| t.to_unix()) else { panic!("{id} carries no timestamp") };
    let millis = i64::try_from(seconds).unwrap_or(i64::MAX) * 1000 + i64::from(nanos / 1_000_000);
    // A generator may run a few milliseconds ahead to stay monotonic under bursts.
    assert!(
        millis >= before - 1 && millis <= after + 1000,
        "{id}'s timestamp ({millis} ms) is not the time it was drawn ({before}..={after} ms)"
    );
}
