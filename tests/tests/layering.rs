//! The hexagonal layering, enforced from `cargo metadata`: the pure crates never depend (even
//! transitively) on a web framework, database, Redis, HTTP client, mailer, object store or
//! async runtime, and the in-memory embedding example on none of them but the runtime.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

const PURE: &[&str] = &["tenantry-domain", "tenantry-ports", "tenantry-application"];

const FORBIDDEN: &[&str] = &[
    "actix-web",
    "actix-http",
    "actix-server",
    "actix-rt",
    "axum",
    "hyper",
    "sea-orm",
    "sea-query",
    "sqlx",
    "sqlx-core",
    "rusqlite",
    "libsqlite3-sys",
    "tokio-postgres",
    "redis",
    "deadpool-redis",
    "reqwest",
    "lettre",
    "object_store",
    "tokio",
];

/// The example that embeds Tenantry over in-memory adapters: it runs on the caller's tokio
/// runtime, and on nothing that reaches a database, a web framework or the network.
const EMBEDDED: &str = "embed-in-memory";

/// `package name → names of its normal (non-dev) dependencies`, from a `cargo metadata` resolve.
fn graph(metadata: &Value) -> (BTreeMap<String, String>, BTreeMap<String, Vec<String>>) {
    let names: BTreeMap<String, String> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| (p["id"].as_str().unwrap_or_default().to_owned(), p["name"].as_str().unwrap_or_default().to_owned()))
        .collect();
    let edges = metadata["resolve"]["nodes"]
        .as_array()
        .expect("resolve nodes")
        .iter()
        .map(|node| {
            let deps = node["deps"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|dep| {
                    dep["dep_kinds"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|kind| kind["kind"].is_null() || kind["kind"] == "build")
                })
                .map(|dep| dep["pkg"].as_str().unwrap_or_default().to_owned())
                .collect();
            (node["id"].as_str().unwrap_or_default().to_owned(), deps)
        })
        .collect();
    (names, edges)
}

/// Every forbidden crate reachable from `root`, with the path that reaches it.
fn violations(metadata: &Value, root: &str) -> Vec<String> {
    violations_of(metadata, root, FORBIDDEN)
}

/// Every crate of `forbidden` reachable from `root`, with the path that reaches it.
fn violations_of(metadata: &Value, root: &str, forbidden: &[&str]) -> Vec<String> {
    let (names, edges) = graph(metadata);
    let Some(root_id) = names.iter().find(|(_, name)| name.as_str() == root).map(|(id, _)| id.clone()) else {
        return vec![format!("{root} is not in the workspace")];
    };
    let mut found = Vec::new();
    let mut seen = BTreeSet::new();
    let mut stack = vec![(root_id, vec![root.to_owned()])];
    while let Some((id, path)) = stack.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        for dep in edges.get(&id).into_iter().flatten() {
            let name = names.get(dep).cloned().unwrap_or_default();
            let mut next = path.clone();
            next.push(name.clone());
            if forbidden.contains(&name.as_str()) {
                found.push(next.join(" → "));
            } else {
                stack.push((dep.clone(), next));
            }
        }
    }
    found
}

fn workspace_metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(output.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("metadata is JSON")
}

#[test]
fn domain_ports_and_application_stay_free_of_infrastructure_crates() {
    let metadata = workspace_metadata();
    let mut all = Vec::new();
    for root in PURE {
        all.extend(violations(&metadata, root));
    }
    assert!(all.is_empty(), "forbidden dependencies of the pure layers:\n{}", all.join("\n"));
}

#[test]
fn the_in_memory_embedding_example_pulls_no_database_web_framework_or_network_client() {
    let metadata = workspace_metadata();
    let forbidden: Vec<&str> = FORBIDDEN.iter().copied().filter(|name| *name != "tokio").collect();
    let found = violations_of(&metadata, EMBEDDED, &forbidden);
    assert!(found.is_empty(), "{EMBEDDED} reaches infrastructure crates:\n{}", found.join("\n"));
    // The check covers the adapters it embeds: they are its direct dependencies.
    let (names, edges) = graph(&metadata);
    let direct: Vec<&str> = names
        .iter()
        .filter(|(_, name)| name.as_str() == EMBEDDED)
        .flat_map(|(id, _)| edges.get(id).into_iter().flatten())
        .map(|dep| names[dep].as_str())
        .collect();
    for adapter in ["tenantry-adapter-memory", "tenantry-adapter-crypto", "tenantry-application"] {
        assert!(direct.contains(&adapter), "{EMBEDDED} embeds {adapter}: {direct:?}");
    }
}

#[test]
fn adapters_do_not_depend_on_the_application_layer_or_on_each_other() {
    let metadata = workspace_metadata();
    let (names, edges) = graph(&metadata);
    let adapters: Vec<&String> = names.values().filter(|name| name.starts_with("tenantry-adapter-")).collect();
    assert!(adapters.len() >= 3, "expected the memory, redis and sql adapters: {adapters:?}");
    for (id, name) in &names {
        if !name.starts_with("tenantry-adapter-") {
            continue;
        }
        for dep in edges.get(id).into_iter().flatten() {
            let dep_name = &names[dep];
            assert!(
                dep_name != "tenantry-application" && !dep_name.starts_with("tenantry-adapter-"),
                "{name} depends on {dep_name}"
            );
        }
    }
}

/// The checker itself must be able to fail: a synthetic graph where the domain reaches sqlx
/// through an innocent-looking crate is caught, with the path named.
#[test]
fn the_checker_reports_a_transitive_forbidden_dependency() {
    let metadata = serde_json::json!({
        "packages": [
            {"id": "d", "name": "tenantry-domain"},
            {"id": "h", "name": "helpful-utils"},
            {"id": "s", "name": "sqlx"},
            {"id": "m", "name": "mockall"},
            {"id": "t", "name": "tokio"}
        ],
        "resolve": {"nodes": [
            {"id": "d", "deps": [
                {"pkg": "h", "dep_kinds": [{"kind": null}]},
                {"pkg": "t", "dep_kinds": [{"kind": "dev"}]}
            ]},
            {"id": "h", "deps": [{"pkg": "s", "dep_kinds": [{"kind": null}]}]},
            {"id": "s", "deps": []},
            {"id": "m", "deps": []},
            {"id": "t", "deps": []}
        ]}
    });
    assert_eq!(violations(&metadata, "tenantry-domain"), vec!["tenantry-domain → helpful-utils → sqlx".to_owned()]);
}
