# Convenience recipes. Each is a thin alias of a command that works without `just` (shown on
# the recipe's line); none sets a build directory: cargo's own default, or your
# CARGO_TARGET_DIR, applies, as for the README's commands.

# Run the server on the embedded default (SQLite, in-process cache, local files, mail folder).
run:
    cargo run --release

# Every test on the embedded stack.
test:
    cargo test --workspace

# The black-box and adapter tests against PostgreSQL + Redis
# (TENANTRY_TEST_DATABASE_URL and TENANTRY_TEST_REDIS_URL must be set).
test-services:
    cargo test -p tenantry-adapter-sql -p tenantry-adapter-redis
    TENANTRY_TEST_STACK=services cargo test -p tenantry-tests

# Formatting and lints, as CI checks them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# The benchmarks (each prints its figures and a ratio against a baseline of the same run).
bench:
    bash bench/http.sh
    bash bench/tenancy.sh
    bash bench/limits.sh

# API docs of every crate, warnings as errors (as CI builds them).
docs:
    RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

# Apply pending migrations to the configured database (TENANTRY_DATABASE_URL or the default).
migrate:
    cargo run --release -- migrate

# A new, registered migration file: `just new-migration add_widgets`.
new-migration NAME:
    bash scripts/new-migration.sh {{NAME}}

# Regenerate the committed OpenAPI document after a deliberate contract change.
openapi:
    UPDATE_OPENAPI=1 cargo test -p tenantry-tests --test openapi

# The whole CI gate.
ci:
    bash .ci/run
