//! Structured logs through `tracing`: pretty on a terminal, one JSON object per line otherwise
//! (or when `TENANTRY_LOG_FORMAT=json`), filtered by `TENANTRY_LOG`.

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, fmt};

use crate::config::LogFormat;

/// Installs the global subscriber; a second call (tests starting several apps) is a no-op.
pub fn init(filter: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let registry = tracing_subscriber::registry().with(filter);
    let result = if json {
        registry.with(fmt::layer().json().flatten_event(true).with_current_span(true).with_span_list(false)).try_init()
    } else {
        registry.with(fmt::layer().with_target(false)).try_init()
    };
    // Already installed (several apps in one test process): keep the first.
    drop(result);
}
