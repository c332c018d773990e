//! The `tenantry` command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Tenantry: the multi-tenant SaaS backend.
///
/// With no command, runs `serve`. Configuration comes from TENANTRY_* environment variables
/// (see the README), optionally mirrored by a TOML file given with --config.
#[derive(Debug, Parser)]
#[command(name = "tenantry", version, propagate_version = true)]
pub struct Cli {
    /// TOML file whose keys mirror the TENANTRY_* variables (`bind = "0.0.0.0:8080"`);
    /// environment variables win over it.
    #[arg(long, global = true, value_name = "FILE", env = "TENANTRY_CONFIG")]
    pub config: Option<PathBuf>,

    /// What to run.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the REST API (applies pending migrations and runs the background worker unless told not to).
    Serve {
        /// Do not apply pending migrations at start-up (run `tenantry migrate` separately).
        #[arg(long)]
        no_migrate: bool,
        /// Do not run background jobs in this process (run `tenantry worker` separately).
        #[arg(long)]
        no_worker: bool,
    },
    /// Run only the background jobs (webhook delivery, mail, sweeps) until SIGTERM.
    Worker,
    /// Apply pending database migrations, then exit.
    Migrate {
        /// Only list pending migrations; apply nothing.
        #[arg(long)]
        status: bool,
    },
    /// Exit 0 when the local server's `/health/ready` answers 200 (for container health
    /// checks: the image has no shell or curl); reads TENANTRY_BIND for the port.
    Healthcheck {
        /// Path to ask instead (`/health/live` for a liveness check).
        #[arg(long, default_value = "/health/ready")]
        path: String,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 5)]
        timeout: u64,
    },
    /// Platform administration.
    Admin {
        /// What to do.
        #[command(subcommand)]
        command: AdminCommand,
    },
}

/// `tenantry admin …`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a platform administrator (verified e-mail, may use the admin routes).
    CreateAdmin {
        /// The administrator's e-mail address.
        #[arg(long)]
        email: String,
        /// The password (visible in the process list: prefer --password-stdin).
        #[arg(long, required_unless_present = "password_stdin", conflicts_with = "password_stdin")]
        password: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Do not apply pending migrations first (when connecting as an application role that
        /// may not change the schema; run `tenantry migrate` as the owner instead).
        #[arg(long)]
        no_migrate: bool,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_subcommand_means_serve_and_flags_parse() {
        let cli = Cli::try_parse_from(["tenantry"]).expect("parses");
        assert!(cli.command.is_none());
        let cli = Cli::try_parse_from(["tenantry", "serve", "--no-migrate", "--no-worker"]).expect("parses");
        assert!(matches!(cli.command, Some(Command::Serve { no_migrate: true, no_worker: true })));
        assert!(Cli::try_parse_from(["tenantry", "serve", "--bogus"]).is_err());
        let cli = Cli::try_parse_from(["tenantry", "admin", "create-admin", "--email", "a@b.io", "--password", "pw"])
            .expect("parses");
        assert!(matches!(cli.command, Some(Command::Admin { command: AdminCommand::CreateAdmin { .. } })));
        assert!(
            Cli::try_parse_from(["tenantry", "admin", "create-admin", "--email", "a@b.io"]).is_err(),
            "a password is required"
        );
    }
}
