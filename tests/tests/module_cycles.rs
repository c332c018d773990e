//! Dependencies inside each crate point one way: no module reaches, through `crate::` paths,
//! a module that reaches back. A cycle here is how layers blur inside a crate (the SQL
//! adapter's audit ↔ database ↔ identity, the caches ↔ their invalidations), so the build
//! fails on one. Test code (after `#[cfg(test)]`) is left out; a module and its own
//! sub-modules may refer to each other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const CRATES: &[&str] = &[
    "crates/domain",
    "crates/ports",
    "crates/application",
    "crates/adapters/memory",
    "crates/adapters/redis",
    "crates/adapters/sql",
    "crates/adapters/crypto",
    "crates/adapters/mail",
    "crates/testkit",
    "apps/server",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source folder").filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// `auth/sign_in.rs` → `auth::sign_in`; `auth/mod.rs` → `auth`; `lib.rs` → ``.
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).expect("inside src").with_extension("");
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|last| last == "mod" || last == "lib" || last == "main") {
        parts.pop();
    }
    parts.join("::")
}

/// The `crate::a::b…` paths a piece of code names.
fn crate_paths(code: &str) -> Vec<Vec<String>> {
    paths_after(code, "crate::")
}

/// The paths following each `prefix` that starts a path (not the tail of a longer name).
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().last();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue; // `tenantry_crate::`, `super::super::`, `x::crate::`
        }
        let path: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
        paths.push(path.split("::").filter(|s| !s.is_empty()).map(str::to_owned).collect());
    }
    paths
}

/// The `super::a…` paths a piece of code names (relative to the parent module).
fn super_paths(code: &str) -> Vec<Vec<String>> {
    paths_after(code, "super::")
}

fn is_ancestor_or_self(a: &str, b: &str) -> bool {
    a.is_empty() || a == b || b.starts_with(&format!("{a}::"))
}

fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_owned(), 1);
        stack.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let start = stack.iter().position(|n| n == next).unwrap_or(0);
                    let mut cycle = stack[start..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(cycle) = visit(next, edges, state, stack) {
                        return Some(cycle);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in edges.keys() {
        if state.get(node.as_str()).copied().unwrap_or(0) == 0 {
            let mut stack = Vec::new();
            if let Some(cycle) = visit(node, edges, &mut state, &mut stack) {
                return Some(cycle);
            }
        }
    }
    None
}

#[test]
fn no_crate_has_a_module_cycle() {
    let mut problems = Vec::new();
    for krate in CRATES {
        let src = root().join(krate).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let modules: BTreeSet<String> = files.iter().map(|file| module_of(&src, file)).collect();
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for file in &files {
            let from = module_of(&src, file);
            let text = std::fs::read_to_string(file).expect("readable");
            let code: String = text
                .split("#[cfg(test)]")
                .next()
                .unwrap_or_default()
                .lines()
                .filter(|line| !line.trim_start().starts_with("//"))
                .map(|line| format!("{line}\n"))
                .collect();
            let parent: Vec<String> = from.split("::").filter(|s| !s.is_empty()).map(str::to_owned).collect();
            let parent = &parent[..parent.len().saturating_sub(1)];
            let relative = super_paths(&code).into_iter().map(|path| [parent.to_vec(), path].concat());
            for path in crate_paths(&code).into_iter().chain(relative) {
                // The longest prefix that is a module of this crate.
                let target =
                    (1..=path.len()).rev().map(|n| path[..n].join("::")).find(|candidate| modules.contains(candidate));
                let Some(target) = target else { continue };
                if is_ancestor_or_self(&target, &from) || is_ancestor_or_self(&from, &target) {
                    continue;
                }
                edges.entry(from.clone()).or_default().insert(target);
            }
        }
        if let Some(cycle) = find_cycle(&edges) {
            problems.push(format!("{krate}: {}", cycle.join(" → ")));
        }
    }
    assert!(problems.is_empty(), "module cycles:\n{}", problems.join("\n"));
}

#[test]
fn the_cycle_finder_finds_a_cycle_and_accepts_a_tree() {
    let edges = |pairs: &[(&str, &str)]| {
        let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in pairs {
            map.entry((*a).to_owned()).or_default().insert((*b).to_owned());
        }
        map
    };
    assert!(find_cycle(&edges(&[("a", "b"), ("b", "c"), ("c", "a")])).is_some());
    assert!(find_cycle(&edges(&[("a", "b"), ("b", "c"), ("a", "c")])).is_none());
    assert_eq!(crate_paths("use crate::http::org::{Gate}; tenantry_crate::x"), vec![vec!["http", "org"]]);
}
