//! [`Broadcast`] within one process: what tests use to stand for several replicas sharing
//! one Redis, and what a single-process deployment would need (nothing else listens).

use tenantry_ports::{Broadcast, CacheError, Subscription};
use tokio::sync::broadcast;

/// Messages a subscriber may fall behind by before its subscription counts as lost.
const BACKLOG: usize = 1024;

/// An in-process broadcast; clones share one channel.
#[derive(Clone)]
pub struct InMemoryBroadcast {
    sender: broadcast::Sender<Vec<u8>>,
}

impl Default for InMemoryBroadcast {
    fn default() -> Self {
        Self { sender: broadcast::channel(BACKLOG).0 }
    }
}

#[async_trait::async_trait]
impl Broadcast for InMemoryBroadcast {
    async fn publish(&self, message: &[u8]) -> Result<(), CacheError> {
        // No subscriber is not an error: nobody needed the message.
        let _ = self.sender.send(message.to_vec());
        Ok(())
    }

    async fn subscribe(&self) -> Result<Box<dyn Subscription>, CacheError> {
        Ok(Box::new(InMemorySubscription { receiver: self.sender.subscribe() }))
    }
}

struct InMemorySubscription {
    receiver: broadcast::Receiver<Vec<u8>>,
}

#[async_trait::async_trait]
impl Subscription for InMemorySubscription {
    async fn next(&mut self) -> Option<Vec<u8>> {
        // Falling behind loses messages: report the subscription as lost, as Redis would.
        self.receiver.recv().await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_broadcast_contract_holds() {
        let shared = InMemoryBroadcast::default();
        tenantry_testkit::broadcast::run_contract(|| {
            let handle = shared.clone();
            async move { handle }
        })
        .await;
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_told_it_lost_messages() {
        let broadcast = InMemoryBroadcast::default();
        let mut slow = broadcast.subscribe().await.expect("subscribe");
        for n in 0..=BACKLOG {
            broadcast.publish(n.to_string().as_bytes()).await.expect("publish");
        }
        assert_eq!(slow.next().await, None, "lost, so the subscriber starts afresh");
    }
}
