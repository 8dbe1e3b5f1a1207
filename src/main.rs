//! The `intercept` command: its arguments (clap), and each command handed
//! to what does it (`cli::commands`).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;
use cli::settings::Settings;
use cli::{commands, supervise};

#[derive(Parser)]
#[command(
    name = "intercept",
    version,
    about = "Run a program with its HTTP connections to chosen hosts answered in-process",
    after_help = "Routes come from an env file (INTERCEPT_ROUTE_<NAME>=URL -> APP), from INTERCEPT_* variables, and from --route.\nWith no --env-file, $INTERCEPT_ENV_FILE or else ./intercept.env is used when present."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Validate the configuration, then run CMD with the shim preloaded; the exit status is CMD's
    Run {
        #[command(flatten)]
        settings: Settings,
        /// The program to run and its arguments
        #[arg(required = true, last = true, value_name = "CMD")]
        command: Vec<OsString>,
    },
    /// Validate the configuration and print the route table (exit 0, or 2 with FILE:LINE: why)
    Check {
        #[command(flatten)]
        settings: Settings,
    },
    /// Print KEY=VALUE lines (LD_PRELOAD, INTERCEPT_ENV_FILE, ...) for `>> "$GITHUB_ENV"` or `export`
    Env {
        #[command(flatten)]
        settings: Settings,
    },
    /// Check a journal: expected requests made, none unmatched, every stub used (exit 0, or 1 with a report)
    Verify {
        /// The journal to read (INTERCEPT_JOURNAL, --journal of run)
        #[arg(long, value_name = "FILE")]
        journal: PathBuf,
        /// A request that must be in it: 'METHOD URL[ xCOUNT]' (URL exact or a pattern; METHOD may be ANY) (repeatable)
        #[arg(long = "expect", value_name = "'METHOD URL[ xN]'")]
        expect: Vec<String>,
        /// Fail on any request no route or no stub matched
        #[arg(long)]
        no_unmatched: bool,
        /// Fail on any stub of this stubs directory that no request used
        #[arg(long, value_name = "DIR")]
        unused_stubs: Option<PathBuf>,
    },
    /// Write a WireMock stubs directory (DIR/mappings) answering as the HAR file's entries do
    Har2stubs {
        /// The HAR file to read
        #[arg(value_name = "FILE.har")]
        har: PathBuf,
        /// The stubs directory to make (its mappings/ must not hold mappings yet)
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Put the run's shared state back to its start: scenarios, mappings made at run time, requests asked, recorded answer order
    Reset {
        /// The run's directory (default: $INTERCEPT_RUN_DIR, set in every process of a run)
        #[arg(long, value_name = "DIR")]
        run_dir: Option<PathBuf>,
    },
    /// Print where the local CA for https routes, the trust bundle and truststore are (made if missing), and what points at them
    Ca {
        #[command(flatten)]
        settings: Settings,
    },
}

fn main() -> ExitCode {
    let mut args = std::env::args_os();
    if args.nth(1).is_some_and(|a| a == supervise::launch::SUBCOMMAND) {
        return supervise::launch::launch(args.collect());
    }
    match Cli::parse().command {
        Cmd::Check { settings } => commands::check(&settings),
        Cmd::Env { settings } => commands::env(&settings),
        Cmd::Ca { settings } => commands::ca(&settings),
        Cmd::Verify { journal, expect, no_unmatched, unused_stubs } => {
            commands::verify(&journal, &expect, no_unmatched, unused_stubs.as_deref())
        }
        Cmd::Har2stubs { har, dir } => commands::har2stubs(&har, &dir),
        Cmd::Reset { run_dir } => commands::reset(run_dir),
        Cmd::Run { settings, command } => commands::run(&settings, &command),
    }
}
