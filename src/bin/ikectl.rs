//! ikectl: control the ikev2d daemon, or check a configuration without it.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ikev2d::config::check::check;
use ikev2d::config::settings::load_settings;
use ikev2d::control::{
    Client, ControlError, DEFAULT_SOCKET, Limits, Page, Reply, Request, StatusReport,
};
use ikev2d::daemon::SystemDns;

#[derive(Parser, Debug)]
#[command(
    name = "ikectl",
    version,
    about = "Control ikev2d, or check its configuration"
)]
struct Cli {
    /// Control socket of the daemon.
    #[arg(long, global = true, default_value = DEFAULT_SOCKET)]
    ctl: PathBuf,
    /// Give up when the daemon sends nothing for this many seconds (default: 200 for up and
    /// down, which stream progress while retransmitting; 30 for the rest).
    #[arg(long, global = true, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: Option<u64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Initiate the IKE_SA and CHILD_SA of a conn.
    Up { name: String },
    /// Delete the SAs of a conn.
    Down { name: String },
    /// Show conns and SAs.
    Status {
        /// Machine-readable output (the same content as JSON).
        #[arg(long)]
        json: bool,
        /// Only this many IKE SAs (a page, in id order; the report then says which).
        #[arg(long)]
        limit: Option<usize>,
        /// Skip this many IKE SAs first (with --limit; default 0).
        #[arg(long, requires = "limit")]
        offset: Option<usize>,
    },
    /// Re-read ipsec.conf, ipsec.secrets and the daemon settings file.
    Reload,
    /// Check ipsec.conf and ipsec.secrets (no daemon needed); exit 1 on errors.
    Check {
        #[arg(long, default_value = "/etc/ipsec.conf")]
        conf: PathBuf,
        #[arg(long, default_value = "/etc/ipsec.secrets")]
        secrets: PathBuf,
        /// Also check this daemon settings file (TOML) and show the effective settings.
        #[arg(long)]
        settings: Option<PathBuf>,
    },
}

/// Exit code when the daemon is not running.
const NOT_RUNNING: u8 = 3;

/// Sends `request`, prints progress lines as they arrive (status as text or JSON), and maps
/// the outcome to the exit code.
fn call(ctl: &std::path::Path, timeout: Option<u64>, request: &Request, json: bool) -> ExitCode {
    let mut limits = Limits::for_request(request);
    if let Some(secs) = timeout {
        limits.idle = std::time::Duration::from_secs(secs);
    }
    let result = Client::connect(ctl).and_then(|c| {
        c.call(request, limits, |reply| match reply {
            Reply::Progress(p) => println!("{p}"),
            Reply::Status(s) if json => print_json(s),
            Reply::Status(s) => print!("{s}"),
            Reply::Done(_) => {}
        })
    });
    match result {
        Ok(done) if done.ok => ExitCode::SUCCESS,
        Ok(done) => {
            eprintln!(
                "ikectl: {}",
                done.error.as_deref().unwrap_or("failed (no cause given)")
            );
            ExitCode::FAILURE
        }
        Err(e @ ControlError::NotRunning { .. }) => {
            eprintln!("ikectl: {e}");
            ExitCode::from(NOT_RUNNING)
        }
        Err(e) => {
            eprintln!("ikectl: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Writes `report` as pretty JSON to stdout as it is produced (no copy of the whole text).
fn print_json(report: &StatusReport) {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = serde_json::to_writer_pretty(&mut out, report)
        .map_err(std::io::Error::from)
        .and_then(|()| writeln!(out))
        .and_then(|()| out.flush());
    if let Err(e) = written {
        eprintln!("ikectl: {e}");
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check {
            conf,
            secrets,
            settings,
        } => {
            let report = check(&conf, &secrets, &SystemDns);
            print!("{report}");
            let settings_ok = settings.is_none_or(|path| match load_settings(&path) {
                Ok(s) => {
                    println!("settings from {}:\n{s}", path.display());
                    true
                }
                Err(e) => {
                    println!("{e}");
                    false
                }
            });
            if report.ok() && settings_ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Command::Up { name } => call(&cli.ctl, cli.timeout, &Request::Up { name }, false),
        Command::Down { name } => call(&cli.ctl, cli.timeout, &Request::Down { name }, false),
        Command::Status {
            json,
            limit,
            offset,
        } => {
            let page = limit.map(|limit| Page {
                offset: offset.unwrap_or(0),
                limit,
            });
            call(&cli.ctl, cli.timeout, &Request::Status { page }, json)
        }
        Command::Reload => call(&cli.ctl, cli.timeout, &Request::Reload, false),
    }
}
