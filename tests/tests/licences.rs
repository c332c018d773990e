//! The dependency policy of `deny.toml`, checked offline from `cargo metadata` (cargo-deny's
//! advisory check needs the RustSec database from GitHub, which CI cannot reach): every crate in
//! the lock file, for every platform, is under a licence expression the allow list satisfies, and
//! comes from crates.io or this workspace.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

/// The `allow = [...]` list of `deny.toml`'s `[licenses]` section.
fn allowed() -> BTreeSet<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let policy = std::fs::read_to_string(root.join("deny.toml")).expect("deny.toml at the workspace root");
    let section = policy.split("[licenses]").nth(1).expect("a [licenses] section");
    let list = section.split("allow = [").nth(1).and_then(|rest| rest.split(']').next()).expect("an allow list");
    list.lines()
        .map(|line| line.split('#').next().unwrap_or_default().trim().trim_end_matches(',').trim_matches('"'))
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Whether the SPDX `expression` is satisfied by licences in `allowed` (`OR`: any side; `AND`:
/// both; `WITH`: the licence with its exception as one id; the legacy `/` means `OR`).
fn satisfied(expression: &str, allowed: &BTreeSet<String>) -> bool {
    let spaced = expression.replace('(', " ( ").replace(')', " ) ").replace('/', " OR ");
    let tokens: Vec<&str> = spaced.split_whitespace().collect();
    let mut at = 0;
    let result = or(&tokens, &mut at, allowed);
    result && at == tokens.len()
}

fn or(tokens: &[&str], at: &mut usize, allowed: &BTreeSet<String>) -> bool {
    let mut any = and(tokens, at, allowed);
    while tokens.get(*at) == Some(&"OR") {
        *at += 1;
        any |= and(tokens, at, allowed);
    }
    any
}

fn and(tokens: &[&str], at: &mut usize, allowed: &BTreeSet<String>) -> bool {
    let mut all = term(tokens, at, allowed);
    while tokens.get(*at) == Some(&"AND") {
        *at += 1;
        all &= term(tokens, at, allowed);
    }
    all
}

fn term(tokens: &[&str], at: &mut usize, allowed: &BTreeSet<String>) -> bool {
    match tokens.get(*at) {
        Some(&"(") => {
            *at += 1;
            let inner = or(tokens, at, allowed);
            if tokens.get(*at) == Some(&")") {
                *at += 1;
                inner
            } else {
                false
            }
        }
        Some(id) => {
            *at += 1;
            let mut id = (*id).to_owned();
            if tokens.get(*at) == Some(&"WITH") {
                id = format!("{id} WITH {}", tokens.get(*at + 1).copied().unwrap_or_default());
                *at += 2;
            }
            allowed.contains(&id)
        }
        None => false,
    }
}

#[test]
fn the_expression_reader_follows_spdx() {
    let allowed: BTreeSet<String> = ["MIT", "Apache-2.0", "Apache-2.0 WITH LLVM-exception"].map(String::from).into();
    assert!(satisfied("MIT OR GPL-3.0", &allowed));
    assert!(satisfied("MIT/Apache-2.0", &allowed));
    assert!(satisfied("(MIT OR GPL-3.0) AND Apache-2.0", &allowed));
    assert!(satisfied("Apache-2.0 WITH LLVM-exception", &allowed));
    assert!(!satisfied("MIT AND GPL-3.0", &allowed));
    assert!(!satisfied("GPL-3.0 WITH LLVM-exception OR AGPL-3.0", &allowed));
    assert!(!satisfied("(MIT", &allowed));
    assert!(!satisfied("", &allowed));
}

#[test]
fn every_dependency_is_permissively_licensed_and_comes_from_crates_io() {
    let allowed = allowed();
    assert!(allowed.contains("MIT") && allowed.contains("Apache-2.0"), "allow list read: {allowed:?}");
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(output.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&output.stderr));
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("metadata is JSON");
    let mut refused = Vec::new();
    let mut foreign = Vec::new();
    let packages = metadata["packages"].as_array().expect("packages");
    for package in packages {
        let name =
            format!("{} {}", package["name"].as_str().unwrap_or("?"), package["version"].as_str().unwrap_or("?"));
        match package["license"].as_str() {
            Some(expression) if satisfied(expression, &allowed) => {}
            other => refused.push(format!("{name}: {other:?}")),
        }
        match package["source"].as_str() {
            None => {}
            Some("registry+https://github.com/rust-lang/crates.io-index") => {}
            Some(source) => foreign.push(format!("{name}: {source}")),
        }
    }
    assert!(packages.len() > 100, "the whole lock file was read ({} packages)", packages.len());
    assert!(refused.is_empty(), "licences outside deny.toml's allow list: {refused:#?}");
    assert!(foreign.is_empty(), "crates from outside crates.io: {foreign:#?}");
}
