//! Telling the other replicas, after a change, to drop what they copied in process.
//!
//! [`crate::org_cache::OrgCache`] trusts generation tokens and
//! [`crate::revocations::SessionRevocations`] trusts "not revoked" answers
//! in process for half a second. On its own, a change made on one replica therefore reaches the
//! others within that bound. With a [`Broadcast`], the replica that made the change announces it
//! once the change is in the shared cache. Every other replica drops its copy when the message
//! arrives, so in practice the change holds everywhere within a round trip. Messages are best
//! effort: a lost one only means that replica falls back on the half-second bound.

use std::sync::Arc;

use tenantry_domain::SessionId;
use tenantry_ports::{Broadcast, IdGenerator};

/// The sending side, shared by the caches of one process. Each process tags its messages, so it
/// ignores its own (it changed its copies already).
#[derive(Clone)]
pub struct Invalidations {
    pub(crate) bus: Arc<dyn Broadcast>,
    sender: String,
}

/// A received message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Message {
    Sessions(Vec<SessionId>),
    Token(String),
}

impl Invalidations {
    /// Over `bus`; `ids` names this process.
    pub fn new(bus: Arc<dyn Broadcast>, ids: &dyn IdGenerator) -> Self {
        Self { bus, sender: ids.new_id().simple().to_string() }
    }

    async fn publish(&self, kind: &str, payload: &str) {
        let message = format!("{}\n{kind}\n{payload}", self.sender);
        if let Err(err) = self.bus.publish(message.as_bytes()).await {
            tracing::warn!(error = %err, "announcing an invalidation failed; other replicas catch up within 500 ms");
        }
    }

    /// Announces that `sessions` were revoked.
    pub(crate) async fn sessions_revoked(&self, sessions: &[SessionId]) {
        if sessions.is_empty() {
            return;
        }
        let ids: Vec<String> = sessions.iter().map(ToString::to_string).collect();
        self.publish("sessions", &ids.join(",")).await;
    }

    /// Announces that the generation token at `key` changed.
    pub(crate) async fn token_bumped(&self, key: &str) {
        self.publish("token", key).await;
    }

    /// What another process announced; `None` for this process's own messages and anything
    /// malformed.
    pub(crate) fn decode(&self, bytes: &[u8]) -> Option<Message> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut parts = text.splitn(3, '\n');
        let (sender, kind, payload) = (parts.next()?, parts.next()?, parts.next()?);
        if sender == self.sender {
            return None;
        }
        match kind {
            "sessions" => {
                let ids: Option<Vec<SessionId>> =
                    payload.split(',').map(|id| id.parse::<uuid::Uuid>().ok().map(SessionId::from_uuid)).collect();
                ids.map(Message::Sessions)
            }
            "token" if payload.starts_with("tenancy:gen:") => Some(Message::Token(payload.to_owned())),
            _ => None,
        }
    }
}
