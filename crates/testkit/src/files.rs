//! The [`FileRepository`] contract: rows with their audit entries in one transaction, pages of
//! ready files only, pending uploads completed or discarded once, tenants apart, and the two
//! cross-tenant scans the orphan sweeper relies on. SQLite and PostgreSQL run it.

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use tenantry_domain::audit::AuditEvent;
use tenantry_domain::files::FileStatus;
use tenantry_domain::{FileId, OrgId};
use tenantry_ports::{AuditFilter, AuditLog, Completion, FileRecord, FileRepository, OrgRepository, UserRepository};
use uuid::Uuid;

use crate::support::{event, now, stored_org};

/// The stores under test, over one database.
#[derive(Clone)]
pub struct FileStores {
    /// Files' rows.
    pub files: Arc<dyn FileRepository>,
    /// Accounts (owners must exist).
    pub users: Arc<dyn UserRepository>,
    /// Organizations (rows reference them, and go with them).
    pub orgs: Arc<dyn OrgRepository>,
    /// The audit log, to see what was written with each change.
    pub audit: Arc<dyn AuditLog>,
}

/// Runs every case against stores built by `make`. Each case works in organizations of its
/// own, so the cases may share one database.
pub async fn run_contract<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = FileStores>,
{
    a_ready_file_round_trips_with_its_audit_entry(make().await).await;
    lists_page_ready_files_oldest_first_and_hide_pending_ones(make().await).await;
    files_of_another_org_are_invisible(make().await).await;
    a_pending_upload_completes_once(make().await).await;
    delete_returns_the_row_once_with_its_entry_and_leaves_pending_uploads(make().await).await;
    discarding_touches_pending_uploads_only(make().await).await;
    expired_pending_uploads_are_found_across_orgs_oldest_first(make().await).await;
    existing_names_the_ids_that_have_rows_in_any_org(make().await).await;
    a_reused_id_is_a_conflict_and_writes_no_entry(make().await).await;
    rows_go_with_their_org(make().await).await;
}

async fn new_org(stores: &FileStores) -> OrgId {
    stored_org(stores.users.as_ref(), stores.orgs.as_ref(), now()).await.0.id
}

/// A ready file of `org`, as an upload records it.
pub fn ready_file(org: OrgId, name: &str, size: u64) -> FileRecord {
    FileRecord {
        id: FileId::from_uuid(Uuid::now_v7()),
        org_id: org,
        name: name.to_owned(),
        size,
        content_type: "text/plain".to_owned(),
        sha256: Some("ab".repeat(32)),
        status: FileStatus::Ready,
        created_at: now(),
        expires_at: None,
    }
}

fn pending_file(org: OrgId, expires_at: DateTime<Utc>) -> FileRecord {
    FileRecord {
        sha256: None,
        status: FileStatus::Pending,
        expires_at: Some(expires_at),
        content_type: "application/pdf".to_owned(),
        ..ready_file(org, "later.pdf", 2048)
    }
}

async fn entries(stores: &FileStores, org: OrgId, action: &str) -> Vec<Uuid> {
    let filter = AuditFilter { action: Some(action.to_owned()), ..AuditFilter::default() };
    stores.audit.list(org, &filter, 100).await.expect("audit").into_iter().map(|entry| entry.event.id).collect()
}

fn uploaded(org: OrgId) -> AuditEvent {
    event(org, "file.uploaded")
}

async fn a_ready_file_round_trips_with_its_audit_entry(stores: FileStores) {
    let org = new_org(&stores).await;
    let file = ready_file(org, "report.txt", 12);
    let entry = uploaded(org);
    stores.files.create(&file, &entry).await.expect("create");
    assert_eq!(stores.files.get(org, file.id).await.expect("get"), Some(file.clone()));
    assert_eq!(entries(&stores, org, "file.uploaded").await, [entry.id], "the entry commits with the row");
    assert_eq!(stores.files.get(org, FileId::from_uuid(Uuid::now_v7())).await.expect("get"), None);
}

async fn lists_page_ready_files_oldest_first_and_hide_pending_ones(stores: FileStores) {
    let org = new_org(&stores).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let file = ready_file(org, &format!("f{n}.txt"), n);
        stores.files.create(&file, &uploaded(org)).await.expect("create");
        ids.push(file.id);
        let pending = pending_file(org, now() + Duration::minutes(15));
        stores.files.create_pending(&pending).await.expect("create pending");
    }
    let first = stores.files.list(org, None, 3).await.expect("list");
    let second = stores.files.list(org, first.last().map(|f| f.id), 3).await.expect("list");
    let listed: Vec<FileId> = first.iter().chain(&second).map(|f| f.id).collect();
    assert_eq!(listed, ids, "ready files only, oldest first, no gap");
    assert!(first.iter().chain(&second).all(|f| f.status == FileStatus::Ready));
}

async fn files_of_another_org_are_invisible(stores: FileStores) {
    let (a, b) = (new_org(&stores).await, new_org(&stores).await);
    let file = ready_file(a, "a.txt", 1);
    stores.files.create(&file, &uploaded(a)).await.expect("create");
    assert_eq!(stores.files.get(b, file.id).await.expect("get"), None);
    assert!(stores.files.list(b, None, 10).await.expect("list").is_empty());
    assert_eq!(stores.files.delete(b, file.id, &event(b, "file.deleted")).await.expect("delete"), None);
    assert!(entries(&stores, b, "file.deleted").await.is_empty(), "no entry for a refused delete");
    let completion = Completion { size: 1, content_type: "text/plain".into(), sha256: "cd".repeat(32) };
    assert_eq!(stores.files.complete(b, file.id, &completion, &uploaded(b)).await.expect("complete"), None);
    assert_eq!(stores.files.discard_pending(b, file.id).await.expect("discard"), None);
    assert_eq!(stores.files.get(a, file.id).await.expect("get"), Some(file), "untouched");
}

async fn a_pending_upload_completes_once(stores: FileStores) {
    let org = new_org(&stores).await;
    let pending = pending_file(org, now() + Duration::minutes(15));
    stores.files.create_pending(&pending).await.expect("create pending");
    assert!(entries(&stores, org, "file.uploaded").await.is_empty(), "a presigned upload is not an upload yet");
    let completion = Completion { size: 2048, content_type: "application/pdf".into(), sha256: "ef".repeat(32) };
    let entry = uploaded(org);
    let ready = stores.files.complete(org, pending.id, &completion, &entry).await.expect("complete").expect("pending");
    assert_eq!(
        (ready.status, ready.expires_at, ready.sha256.as_deref()),
        (FileStatus::Ready, None, Some(&*completion.sha256))
    );
    assert_eq!(stores.files.get(org, pending.id).await.expect("get"), Some(ready.clone()));
    assert_eq!(stores.files.list(org, None, 10).await.expect("list"), [ready]);
    let again = stores.files.complete(org, pending.id, &completion, &uploaded(org)).await.expect("complete");
    assert_eq!(again, None, "a second completion finds nothing pending");
    assert_eq!(entries(&stores, org, "file.uploaded").await, [entry.id], "one entry, the first completion's");
}

async fn delete_returns_the_row_once_with_its_entry_and_leaves_pending_uploads(stores: FileStores) {
    let org = new_org(&stores).await;
    let file = ready_file(org, "gone.txt", 7);
    stores.files.create(&file, &uploaded(org)).await.expect("create");
    let entry = event(org, "file.deleted");
    assert_eq!(stores.files.delete(org, file.id, &entry).await.expect("delete"), Some(file.clone()));
    assert_eq!(stores.files.get(org, file.id).await.expect("get"), None);
    assert_eq!(stores.files.delete(org, file.id, &event(org, "file.deleted")).await.expect("delete"), None);
    assert_eq!(entries(&stores, org, "file.deleted").await, [entry.id], "only the deletion that happened");
    let pending = pending_file(org, now() + Duration::minutes(15));
    stores.files.create_pending(&pending).await.expect("create pending");
    assert_eq!(stores.files.delete(org, pending.id, &event(org, "file.deleted")).await.expect("delete"), None);
    assert!(stores.files.get(org, pending.id).await.expect("get").is_some(), "a pending upload is not a file");
}

async fn discarding_touches_pending_uploads_only(stores: FileStores) {
    let org = new_org(&stores).await;
    let pending = pending_file(org, now() + Duration::minutes(15));
    stores.files.create_pending(&pending).await.expect("create pending");
    let file = ready_file(org, "kept.txt", 3);
    stores.files.create(&file, &uploaded(org)).await.expect("create");
    assert_eq!(stores.files.discard_pending(org, file.id).await.expect("discard"), None);
    assert_eq!(stores.files.discard_pending(org, pending.id).await.expect("discard"), Some(pending.clone()));
    assert_eq!(stores.files.discard_pending(org, pending.id).await.expect("discard"), None);
    assert_eq!(stores.files.get(org, pending.id).await.expect("get"), None);
    assert!(stores.files.get(org, file.id).await.expect("get").is_some());
}

async fn expired_pending_uploads_are_found_across_orgs_oldest_first(stores: FileStores) {
    let (a, b) = (new_org(&stores).await, new_org(&stores).await);
    // Far in the past, so pending uploads of other cases (expiring in the future) never show.
    let base = now() - Duration::days(3650);
    let older = pending_file(b, base - Duration::minutes(2));
    let old = pending_file(a, base - Duration::minutes(1));
    let live = pending_file(a, now() + Duration::minutes(15));
    for file in [&old, &older, &live] {
        stores.files.create_pending(file).await.expect("create pending");
    }
    let ready = ready_file(a, "ready.txt", 1);
    stores.files.create(&ready, &uploaded(a)).await.expect("create");
    let found = stores.files.expired_pending(base, 10).await.expect("expired");
    let ids: Vec<FileId> = found.iter().map(|f| f.id).collect();
    assert_eq!(ids, [older.id, old.id], "both orgs, oldest expiry first, nothing live or ready");
    assert_eq!(stores.files.expired_pending(base, 1).await.expect("expired").len(), 1, "at most the limit");
    for file in found {
        stores.files.discard_pending(file.org_id, file.id).await.expect("discard");
    }
    assert!(stores.files.expired_pending(base, 10).await.expect("expired").is_empty());
}

async fn existing_names_the_ids_that_have_rows_in_any_org(stores: FileStores) {
    let (a, b) = (new_org(&stores).await, new_org(&stores).await);
    let ready = ready_file(a, "a.txt", 1);
    stores.files.create(&ready, &uploaded(a)).await.expect("create");
    let pending = pending_file(b, now() + Duration::minutes(15));
    stores.files.create_pending(&pending).await.expect("create pending");
    let orphan = FileId::from_uuid(Uuid::now_v7());
    let mut found = stores.files.existing(&[ready.id, orphan, pending.id]).await.expect("existing");
    found.sort();
    let mut expected = vec![ready.id, pending.id];
    expected.sort();
    assert_eq!(found, expected);
    assert!(stores.files.existing(&[]).await.expect("existing").is_empty());
}

async fn a_reused_id_is_a_conflict_and_writes_no_entry(stores: FileStores) {
    let org = new_org(&stores).await;
    let file = ready_file(org, "one.txt", 1);
    stores.files.create(&file, &uploaded(org)).await.expect("create");
    let result = stores.files.create(&file, &uploaded(org)).await;
    assert!(
        matches!(result, Err(tenantry_ports::StoreError::Conflict(tenantry_ports::Conflict::Duplicate))),
        "{result:?}"
    );
    assert_eq!(entries(&stores, org, "file.uploaded").await.len(), 1, "the refused insert's entry rolled back");
}

async fn rows_go_with_their_org(stores: FileStores) {
    let org = new_org(&stores).await;
    let file = ready_file(org, "a.txt", 1);
    stores.files.create(&file, &uploaded(org)).await.expect("create");
    stores.orgs.delete(org, &event(org, "org.deleted")).await.expect("delete org");
    assert!(stores.files.existing(&[file.id]).await.expect("existing").is_empty(), "the row went with its org");
}
