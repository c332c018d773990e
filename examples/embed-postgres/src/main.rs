//! A caller's own service that embeds Tenantry: its own `#[tokio::main]` runtime, its own
//! PostgreSQL pool (shared with Tenantry's SQL adapters), Redis for the cache, rate limits and
//! the API-call counter, and its own small actix-web routes calling Tenantry's auth, org,
//! quota and webhook use cases.
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379 \
//!     cargo run -p embed-postgres              # serve on BIND (127.0.0.1:8090)
//! cargo run -p embed-postgres -- --self-test   # random loopback port, drive the routes, exit 0/1
//! ```
//!
//! See `README.md` next to this file.

mod routes;
mod self_test;
mod wiring;

use std::net::TcpListener;
use std::process::ExitCode;

use anyhow::Context as _;

/// Where the service finds its dependencies, from the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `DATABASE_URL`: the PostgreSQL database both the caller and Tenantry use.
    pub database_url: String,
    /// `REDIS_URL`.
    pub redis_url: String,
    /// `EMBED_DATA_DIR`: where the signing and sealing keys are generated on first start.
    pub data_dir: std::path::PathBuf,
    /// `BIND`: the listen address (ignored by `--self-test`, which takes a random port).
    pub bind: String,
}

impl Settings {
    /// The environment's values, defaulting to the local loopback servers.
    fn from_env() -> Self {
        let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
        Self {
            database_url: var("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
            redis_url: var("REDIS_URL", "redis://127.0.0.1:6379"),
            data_dir: var("EMBED_DATA_DIR", "data/embed-postgres").into(),
            bind: var("BIND", "127.0.0.1:8090"),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    // The HTTP clients (the webhook sender, the self-test's) use rustls with ring; the
    // process picks the provider once. An `Err` means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let self_test = std::env::args().skip(1).any(|arg| arg == "--self-test");
    match run(Settings::from_env(), self_test).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("embed-postgres: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(settings: Settings, self_test: bool) -> anyhow::Result<()> {
    let state = wiring::build(&settings).await?;
    let address = if self_test { "127.0.0.1:0" } else { settings.bind.as_str() };
    let listener = TcpListener::bind(address).with_context(|| format!("cannot listen on {address}"))?;
    let bound = listener.local_addr()?;
    let server = routes::serve(listener, state)?;
    let handle = server.handle();
    let serving = tokio::spawn(server);
    eprintln!("embed-postgres: listening on http://{bound}");
    let outcome = if self_test {
        let outcome = self_test::drive(&format!("http://{bound}")).await;
        if outcome.is_ok() {
            eprintln!("embed-postgres: self-test passed");
        }
        outcome
    } else {
        tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")
    };
    handle.stop(true).await;
    serving.await.context("the server task")?.context("the server")?;
    outcome
}
