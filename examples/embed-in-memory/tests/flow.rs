//! The embedding flow runs end to end over in-memory adapters, and reports every step.

#[tokio::test(flavor = "current_thread")]
async fn the_embedded_flow_passes_every_step_with_no_database_or_network() {
    let mut report = Vec::new();
    let summary = match embed_in_memory::run(&mut report).await {
        Ok(summary) => summary,
        Err(err) => panic!("the flow failed: {err:#}\n{}", String::from_utf8_lossy(&report)),
    };
    let report = String::from_utf8(report).expect("the report is text");
    assert_eq!(report.lines().count(), summary.steps, "one line per step:\n{report}");
    assert!(summary.steps >= 15, "every step ran:\n{report}");
    assert!(report.contains("inviting carol is refused: quota members (2/2)"), "the seat quota refused:\n{report}");
    let mut delivered = summary.delivered.clone();
    delivered.sort();
    assert_eq!(delivered, ["member.added", "member.role_changed"], "the subscribed events were delivered");
    assert!(summary.audit_entries >= 5, "the org's changes are audited: {summary:?}");
}
