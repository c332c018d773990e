//! `tenantry`: serve the API, run the worker, or migrate the database.

use std::process::ExitCode;

use clap::Parser;
use std::sync::Arc;

use tenantry_server::cli::{AdminCommand, Cli, Command};
use tenantry_server::config::{Settings, Sources};
use tenantry_server::startup::{Application, ServeOptions, Services};

/// Exit code for configuration errors (sysexits' EX_CONFIG).
const EXIT_CONFIG: u8 = 78;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let sources = Sources::from_process(cli.config.as_deref());
    let settings = match Settings::load(&sources) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("tenantry: {err}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("tenantry: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    // The span exporter is a task on this runtime, so telemetry starts inside it.
    let telemetry = {
        let _entered = runtime.enter();
        // A health probe runs every few seconds and serves no traffic: it exports nothing.
        let probing = matches!(cli.command, Some(Command::Healthcheck { .. }));
        let export = settings.otlp_export().filter(|_| !probing);
        match tenantry_server::telemetry::init(&settings.log_filter, settings.log_format, export.as_ref()) {
            Ok(telemetry) => telemetry,
            Err(err) => {
                eprintln!("tenantry: {err}");
                return ExitCode::from(EXIT_CONFIG);
            }
        }
    };
    for name in &sources.unknown {
        tracing::warn!(variable = %name, "unknown TENANTRY_* variable ignored (a typo?)");
    }
    if telemetry.exporting()
        && let Some(export) = settings.otlp_export()
    {
        // Scheme, host and path only: credentials belong in OTEL_EXPORTER_OTLP_HEADERS, but
        // a URL may carry some too.
        let endpoint = url::Url::parse(&export.endpoint).map_or_else(
            |_| String::new(),
            |url| {
                let port = url.port().map(|port| format!(":{port}")).unwrap_or_default();
                format!("{}://{}{port}{}", url.scheme(), url.host_str().unwrap_or(""), url.path())
            },
        );
        tracing::info!(%endpoint, protocol = export.protocol.as_str(), "exporting traces over OTLP");
    }
    let result = runtime.block_on(run(cli.command, settings));
    // After the server and the worker stopped: the last spans (the shutdown's own included)
    // leave before the runtime goes. This thread is not a runtime worker, so the blocking
    // flush cannot starve the exporter task.
    telemetry.shutdown();
    drop(runtime);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!(error = %message, "tenantry failed");
            eprintln!("tenantry: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Option<Command>, settings: Settings) -> Result<(), String> {
    match command.unwrap_or(Command::Serve { no_migrate: false, no_worker: false }) {
        Command::Serve { no_migrate, no_worker } => {
            let options = ServeOptions { migrate: !no_migrate, worker: !no_worker, handle_signals: true };
            let app = Application::build(settings, options).await.map_err(|err| err.to_string())?;
            app.run_until_stopped().await.map_err(|err| format!("server: {err}"))
        }
        Command::Worker => {
            let services = Services::build(&settings).await.map_err(|err| err.to_string())?;
            let worker = services.worker();
            // Its own metrics (webhook attempts, the queue) are scrapeable only when it serves
            // them: it has no other address.
            let metrics = match settings.metrics_bind {
                Some(bind) => Some(
                    tenantry_server::startup::metrics_server(bind, services.metrics.clone(), false)
                        .map_err(|err| err.to_string())?,
                ),
                None => None,
            };
            tracing::info!(jobs = ?worker.job_names(), "worker starting");
            let running = worker.start();
            shutdown_signal().await;
            running.shutdown().await;
            if let Some((metrics, _)) = metrics {
                metrics.stop(true).await;
            }
            services.database.close().await;
            Ok(())
        }
        Command::Healthcheck { path, timeout } => {
            let target = tenantry_server::healthcheck::local_target(settings.bind);
            match tenantry_server::healthcheck::probe(target, &path, std::time::Duration::from_secs(timeout)) {
                Ok(200) => Ok(()),
                Ok(status) => Err(format!("{path} answered {status}")),
                Err(message) => Err(message),
            }
        }
        Command::Admin { command: AdminCommand::CreateAdmin { email, password, password_stdin, no_migrate } } => {
            let password = match (password, password_stdin) {
                (Some(password), false) => password,
                (_, true) => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line).map_err(|err| format!("reading the password: {err}"))?;
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
                (None, false) => return Err("--password or --password-stdin is required".to_owned()),
            };
            let services = Services::build(&settings).await.map_err(|err| err.to_string())?;
            if !no_migrate {
                services.database.migrate().await.map_err(|err| err.to_string())?;
            }
            let auth = services.auth(Arc::new(services.two_factor()));
            let result = auth.create_admin(&email, &password).await;
            services.database.close().await;
            match result {
                Ok(user) => {
                    report(&format!("created platform administrator {} ({})", user.email, user.id));
                    Ok(())
                }
                Err(tenantry_application::AuthError::EmailTaken) => {
                    Err(format!("an account with {email} already exists"))
                }
                Err(tenantry_application::AuthError::WeakPassword(weak)) => Err(format!("password refused: {weak}")),
                Err(tenantry_application::AuthError::Invalid { field, message }) => Err(format!("{field}: {message}")),
                Err(other) => Err(format!("{other}: {:?}", std::error::Error::source(&other))),
            }
        }
        Command::Migrate { status } => {
            let services = Services::build(&settings).await.map_err(|err| err.to_string())?;
            let pending = services.database.pending_migrations().await.map_err(|err| err.to_string())?;
            if status {
                tracing::info!(pending = ?pending, "{} migration(s) pending", pending.len());
            } else {
                services.database.migrate().await.map_err(|err| err.to_string())?;
                tracing::info!(applied = ?pending, "{} migration(s) applied", pending.len());
            }
            services.database.close().await;
            Ok(())
        }
    }
}

/// A result line for the operator on standard output (logs go through tracing).
#[allow(clippy::print_stdout)]
fn report(line: &str) {
    println!("{line}");
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
