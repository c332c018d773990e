//! The committed OpenAPI document is the public contract: any change to it must be deliberate.
//! Regenerate with `UPDATE_OPENAPI=1 cargo test -p tenantry-tests --test openapi`.

use std::path::PathBuf;

#[test]
fn the_committed_openapi_document_matches_the_code() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
    let generated = tenantry_server::openapi::render() + "\n";
    if std::env::var("UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &generated).expect("write docs/openapi.json");
        return;
    }
    let committed = std::fs::read_to_string(&path).expect("docs/openapi.json exists (UPDATE_OPENAPI=1 creates it)");
    assert!(
        committed == generated,
        "the API contract changed: review the diff and run UPDATE_OPENAPI=1 cargo test -p tenantry-tests --test openapi"
    );
}

#[test]
fn the_document_is_openapi_3_1_with_every_operation_tagged_and_described() {
    let doc: serde_json::Value = serde_json::from_str(&tenantry_server::openapi::render()).expect("json");
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    assert!(!paths.is_empty());
    for (path, item) in paths {
        for (method, operation) in item.as_object().expect("path item") {
            assert!(operation["tags"].as_array().is_some_and(|tags| !tags.is_empty()), "{method} {path} has no tag");
            assert!(
                operation["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path} has no responses"
            );
        }
    }
}
