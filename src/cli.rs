//! The `check` and `tail` commands as processes: output on stdout, one-line errors on stderr,
//! and exit statuses a script can act on.

use std::io::Write;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use crate::check::{self, CheckArgs};
use crate::error::Error;
use crate::tail::{self, TailArgs};

/// Exit status when a check fails.
const FAILED: u8 = 1;
/// Exit status when the feed could not be checked or followed at all.
const ERROR: u8 = 2;

pub async fn check_command(args: CheckArgs) -> ExitCode {
    let report = match check::run(&args).await {
        Ok(report) => report,
        Err(e) => return error("check", &e),
    };
    let text = if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(json) => json + "\n",
            Err(e) => return error("check", &Error::Output(e.into())),
        }
    } else {
        report.table()
    };
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return error("check", &Error::Output(e));
        }
    }
    if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(FAILED)
    }
}

/// Runs until Ctrl-C (exit 0), a closed output pipe (exit 0), or an error.
pub async fn tail_command(args: TailArgs, shutdown: CancellationToken) -> ExitCode {
    let mut stdout = std::io::stdout();
    match tail::run(&args, shutdown, &mut stdout).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => error("tail", &e),
    }
}

fn error(command: &str, e: &Error) -> ExitCode {
    eprintln!("feedline {command}: {e}");
    ExitCode::from(ERROR)
}
