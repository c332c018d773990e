//! There is no container engine on the build machines, so the deployment files are checked as
//! text: the compose file parses and wires the stack, the image is multi-stage and non-root,
//! and every variable they (and the docs) name is one the server actually reads.

use std::path::PathBuf;

use tenantry_server::config::KNOWN_VARIABLES;
use yaml_rust2::{Yaml, YamlLoader};

fn read(relative: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// Every `TENANTRY_…` word in `text`.
fn tenantry_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("TENANTRY_") && word.len() > "TENANTRY_".len())
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

fn is_server_variable(name: &str) -> bool {
    KNOWN_VARIABLES.contains(&name) || name.starts_with("TENANTRY_TEST_") || name.starts_with("TENANTRY_CI_")
}

#[test]
fn the_compose_file_parses_and_wires_the_whole_stack() {
    let docs = YamlLoader::load_from_str(&read("deploy/docker-compose.yml")).expect("valid YAML");
    let compose = &docs[0];
    let services = compose["services"].as_hash().expect("a services map");
    for name in ["postgres", "redis", "minio", "mailpit", "tenantry"] {
        assert!(services.contains_key(&Yaml::String(name.to_owned())), "service {name} is missing");
    }
    let app = &compose["services"]["tenantry"];
    let depends = &app["depends_on"];
    for dependency in ["postgres", "redis"] {
        assert!(!depends[dependency].is_badvalue(), "tenantry must wait for {dependency}");
    }
    let environment = app["environment"].as_hash().expect("tenantry has an environment map");
    let names: Vec<&str> = environment.keys().filter_map(Yaml::as_str).collect();
    for required in ["TENANTRY_DATABASE_URL", "TENANTRY_REDIS_URL", "TENANTRY_STORAGE_URL", "TENANTRY_SMTP_URL"] {
        assert!(names.contains(&required), "{required} is not set for tenantry");
    }
    let database = environment[&Yaml::String("TENANTRY_DATABASE_URL".into())].as_str().expect("string");
    assert!(database.starts_with("postgres://"), "{database}");
}

#[test]
fn deployment_files_only_name_variables_the_server_reads() {
    for file in ["deploy/docker-compose.yml", "deploy/Dockerfile", "README.md", "docs/configuration.md"] {
        for name in tenantry_names(&read(file)) {
            assert!(is_server_variable(&name), "{file} names {name}, which the server does not read");
        }
    }
}

#[test]
fn every_variable_the_server_reads_is_documented() {
    let docs = read("docs/configuration.md");
    for name in KNOWN_VARIABLES {
        assert!(docs.contains(name), "docs/configuration.md does not document {name}");
    }
    let spec_table = [
        "TENANTRY_BIND",
        "TENANTRY_DATABASE_URL",
        "TENANTRY_REDIS_URL",
        "TENANTRY_STORAGE_URL",
        "TENANTRY_SMTP_URL",
        "TENANTRY_PUBLIC_URL",
        "TENANTRY_JWT_PRIVATE_KEY",
        "TENANTRY_ENV",
        "TENANTRY_WEBHOOK_ALLOW_PRIVATE",
        "TENANTRY_WEBHOOK_RETRY_SCHEDULE",
        "TENANTRY_MAX_UPLOAD_BYTES",
        "TENANTRY_REQUIRE_VERIFIED_EMAIL",
        "TENANTRY_LOGIN_MAX_FAILURES",
        "TENANTRY_LOG",
        "TENANTRY_MAIL_DIR",
        "TENANTRY_S3_ENDPOINT",
        "TENANTRY_JWT_PRIVATE_KEY_FILE",
    ];
    for name in spec_table {
        assert!(KNOWN_VARIABLES.contains(&name), "API.md's {name} is not read by the server");
    }
}

#[test]
fn the_image_is_multi_stage_and_runs_as_a_non_root_user() {
    let dockerfile = read("deploy/Dockerfile");
    let stages = dockerfile.lines().filter(|line| line.trim_start().to_ascii_uppercase().starts_with("FROM ")).count();
    assert!(stages >= 2, "expected a builder and a runtime stage");
    let user = dockerfile
        .lines()
        .rev()
        .find_map(|line| line.trim().strip_prefix("USER "))
        .expect("the runtime stage sets USER");
    assert!(!user.starts_with("root") && !user.starts_with('0'), "runs as {user}");
    assert!(dockerfile.contains("tenantry"), "the image runs the tenantry binary");
}
