//! Raw argon2id throughput with Tenantry's parameters (m=19456 KiB, t=2, p=1), on 1 thread and
//! on every core: the ceiling that sign-in throughput is compared to by `bench/auth.sh`.
//!
//! `cargo run --release -p tenantry-adapter-crypto --example argon2_rate [seconds]`

use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

fn rate(threads: usize, seconds: u64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                let params = Params::new(19_456, 2, 1, None).expect("valid params");
                let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
                let salt = SaltString::from_b64("c2FsdHNhbHRzYWx0c2FsdA").expect("salt");
                let mut count = 0_u64;
                while Instant::now() < deadline {
                    argon.hash_password(b"correct horse battery staple", &salt).expect("hash");
                    count += 1;
                }
                count
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().expect("thread")).sum();
    total as f64 / started.elapsed().as_secs_f64()
}

#[allow(clippy::print_stdout)]
fn main() {
    let seconds = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(3);
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    println!("argon2id_hashes_per_second_1_thread {:.1}", rate(1, seconds));
    println!("argon2id_hashes_per_second_{cores}_threads {:.1}", rate(cores, seconds));
}
