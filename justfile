# Convenience recipes; every one is a plain cargo/bash command you can run without `just`.

export CARGO_TARGET_DIR := env_var_or_default("CARGO_TARGET_DIR", "/var/tmp/tenantry-target")

# Run the server on the embedded default.
run:
    cargo run --release

# Every test on the embedded stack.
test:
    cargo test --workspace

# Black-box tests against PostgreSQL + Redis (TENANTRY_TEST_DATABASE_URL / _REDIS_URL must be set).
test-services:
    TENANTRY_TEST_STACK=services cargo test -p tenantry-tests

# The whole CI gate.
ci:
    bash .ci/run

lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Regenerate the committed OpenAPI document after a deliberate contract change.
openapi:
    UPDATE_OPENAPI=1 cargo test -p tenantry-tests --test openapi

bench:
    bash bench/http.sh
