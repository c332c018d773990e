//! Runs the embedding flow and prints each step; exits non-zero if any step fails.

use std::io::Write;
use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match embed_in_memory::run(&mut stdout).await {
        Ok(summary) => {
            let _ = writeln!(stdout, "\nall {} steps passed", summary.steps);
            ExitCode::SUCCESS
        }
        Err(err) => {
            let _ = writeln!(stdout, "\nFAILED: {err:#}");
            ExitCode::FAILURE
        }
    }
}
