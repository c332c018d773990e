//! The [`Clock`] contract.
//!
//! Two suites: [`run_contract`] for every clock (a clock held still by a test is a clock too),
//! and [`run_wall_clock_contract`] for clocks that claim to tell the real time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tenantry_ports::Clock;

/// Rules every clock keeps: reading it never goes backwards, from one thread or several at
/// once (expiry checks and retry schedules compare readings taken on different threads).
///
/// # Panics
/// Naming the broken rule.
pub fn run_contract(clock: Arc<dyn Clock>) {
    readings_never_go_backwards(clock.as_ref());
    readings_from_several_threads_never_go_backwards(clock);
}

/// [`run_contract`], plus what a clock standing for real time must do: agree with the system
/// clock within `tolerance` and move forward on its own.
///
/// # Panics
/// Naming the broken rule.
pub fn run_wall_clock_contract(clock: Arc<dyn Clock>, tolerance: Duration) {
    run_contract(clock.clone());
    agrees_with_the_system_clock(clock.as_ref(), tolerance);
    moves_forward_on_its_own(clock.as_ref());
}

fn readings_never_go_backwards(clock: &dyn Clock) {
    let mut last = clock.now();
    for _ in 0..10_000 {
        let now = clock.now();
        assert!(now >= last, "the clock went backwards: {now} after {last}");
        last = now;
    }
}

fn readings_from_several_threads_never_go_backwards(clock: Arc<dyn Clock>) {
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let clock = clock.clone();
            std::thread::spawn(move || {
                let mut last: DateTime<Utc> = clock.now();
                for _ in 0..2_000 {
                    let now = clock.now();
                    assert!(now >= last, "the clock went backwards on one thread: {now} after {last}");
                    last = now;
                }
            })
        })
        .collect();
    for thread in threads {
        assert!(thread.join().is_ok(), "a thread reading the clock panicked (see above)");
    }
}

fn agrees_with_the_system_clock(clock: &dyn Clock, tolerance: Duration) {
    let system = Utc::now();
    let read = clock.now();
    let apart = (read - system).abs().to_std().unwrap_or(Duration::MAX);
    assert!(apart <= tolerance, "the clock is {apart:?} away from the system clock (tolerance {tolerance:?})");
}

fn moves_forward_on_its_own(clock: &dyn Clock) {
    let first = clock.now();
    let deadline = Instant::now() + Duration::from_secs(1);
    while clock.now() == first {
        assert!(Instant::now() < deadline, "a wall clock did not move for a second");
        std::hint::spin_loop();
    }
}
