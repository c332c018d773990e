//! The [`Broadcast`] contract.

use std::future::Future;
use std::time::Duration;

use tenantry_ports::{Broadcast, Subscription};

/// How long a case waits for a message that must come; a guard against hanging, not a speed
/// check (delivery is normally sub-millisecond).
const PATIENCE: Duration = Duration::from_secs(5);

/// Runs every case. `make` must return handles on *one* channel (as replicas sharing one
/// server would have) that no other test publishes to.
pub async fn run_contract<B, F, Fut>(make: F)
where
    B: Broadcast,
    F: Fn() -> Fut,
    Fut: Future<Output = B>,
{
    every_subscriber_of_every_handle_gets_each_message_in_order(make().await, make().await).await;
    a_subscriber_gets_only_what_was_published_after_it_subscribed(make().await).await;
    binary_payloads_survive(make().await).await;
}

async fn next(subscription: &mut Box<dyn Subscription>) -> Vec<u8> {
    tokio::time::timeout(PATIENCE, subscription.next()).await.expect("a message in time").expect("subscription alive")
}

async fn every_subscriber_of_every_handle_gets_each_message_in_order(here: impl Broadcast, there: impl Broadcast) {
    let mut own = here.subscribe().await.expect("subscribe");
    let mut other = there.subscribe().await.expect("subscribe");
    for message in ["one", "two", "three"] {
        here.publish(message.as_bytes()).await.expect("publish");
    }
    for subscription in [&mut own, &mut other] {
        for expected in ["one", "two", "three"] {
            assert_eq!(next(subscription).await, expected.as_bytes(), "in publishing order, to every subscriber");
        }
    }
}

async fn a_subscriber_gets_only_what_was_published_after_it_subscribed(broadcast: impl Broadcast) {
    broadcast.publish(b"before").await.expect("publish");
    let mut late = broadcast.subscribe().await.expect("subscribe");
    broadcast.publish(b"after").await.expect("publish");
    assert_eq!(next(&mut late).await, b"after", "no replay of earlier messages");
}

async fn binary_payloads_survive(broadcast: impl Broadcast) {
    let mut subscription = broadcast.subscribe().await.expect("subscribe");
    let payload: Vec<u8> = (0..=255).collect();
    broadcast.publish(&payload).await.expect("publish");
    assert_eq!(next(&mut subscription).await, payload);
}
