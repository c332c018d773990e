//! The catalog of event types: what webhook subscribers can listen for. Every event is also an
//! audit entry with the same dotted name, written in the transaction of the change it records,
//! so the audit log doubles as the transactional outbox the dispatcher reads.

/// One event type: what a subscriber may filter on, published with a description and an
/// example so receivers can be written without triggering each event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventType {
    /// The dotted name (`member.added`), equal to the audit action.
    pub name: &'static str,
    /// When it happens.
    pub description: &'static str,
    /// An example of its `data`, as JSON text.
    pub example: &'static str,
}

/// Every event type, grouped by resource: the one catalog endpoint filters are validated
/// against and the API publishes.
pub const EVENT_TYPES: &[EventType] = &[
    EventType {
        name: "org.updated",
        description: "The organization's name or slug changed.",
        example: r#"{"name":"Acme","slug":"acme"}"#,
    },
    EventType {
        name: "member.added",
        description: "Someone became a member (an invitation was accepted).",
        example: r#"{"role":"member","invitation_id":"0190…","invited_by":"0190…"}"#,
    },
    EventType { name: "member.removed", description: "A member left or was removed.", example: r#"{"role":"member"}"# },
    EventType {
        name: "member.role_changed",
        description: "A member's role changed.",
        example: r#"{"from":"member","to":"admin"}"#,
    },
    EventType {
        name: "invitation.created",
        description: "An invitation was sent.",
        example: r#"{"email":"ada@example.com","role":"member"}"#,
    },
    EventType {
        name: "invitation.accepted",
        description: "An invitation was accepted.",
        example: r#"{"user_id":"0190…","role":"member"}"#,
    },
    EventType {
        name: "api_key.created",
        description: "An API key was created.",
        example: r#"{"name":"ci","permissions":["org:read"]}"#,
    },
    EventType { name: "api_key.revoked", description: "An API key was revoked.", example: r#"{}"# },
    EventType {
        name: "file.uploaded",
        description: "A file was stored.",
        example: r#"{"name":"report.pdf","size":1024}"#,
    },
    EventType { name: "file.deleted", description: "A file was deleted.", example: r#"{"name":"report.pdf"}"# },
    EventType {
        name: "quota.threshold_reached",
        description: "The organization used 80 % or 100 % of a quota, for the first time in the period.",
        example: r#"{"quota":"api_calls","percent":80,"limit":100000,"used":80000,"period_start":"2026-12-01T00:00:00Z","period_end":"2027-01-01T00:00:00Z"}"#,
    },
    EventType {
        name: "quota.exceeded",
        description: "A request was refused by a quota, for the first time in the period.",
        example: r#"{"quota":"members","limit":5,"used":5,"period_start":"1970-01-01T00:00:00Z","period_end":null}"#,
    },
    EventType { name: "webhook.test", description: "Sent on request to test an endpoint.", example: r#"{}"# },
];

/// The event type named `name`; `None` for an action that is audited but not published as a
/// webhook event (the outbox skips those).
pub fn event_type(name: &str) -> Option<&'static EventType> {
    EVENT_TYPES.iter().find(|event| event.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_dotted_and_examples_are_json_objects() {
        let mut names: Vec<&str> = EVENT_TYPES.iter().map(|e| e.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), EVENT_TYPES.len(), "duplicate event type");
        for event in EVENT_TYPES {
            assert!(event.name.contains('.'), "{}", event.name);
            let example: serde_json::Value = serde_json::from_str(event.example).expect("example is JSON");
            assert!(example.is_object(), "{}", event.name);
        }
        assert!(event_type("quota.threshold_reached").is_some() && event_type("quota.exceeded").is_some());
        assert!(event_type("member.teleported").is_none());
    }
}
