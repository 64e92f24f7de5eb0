//! ikectl: control the ikev2d daemon, or check a configuration without it.

use std::net::{IpAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ikev2d::config::check::check;
use ikev2d::config::conn::HostResolver;

#[derive(Parser, Debug)]
#[command(
    name = "ikectl",
    version,
    about = "Control ikev2d, or check its configuration"
)]
struct Cli {
    /// Control socket of the daemon.
    #[arg(long, global = true, default_value = "/run/ikev2d.ctl")]
    ctl: PathBuf,
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
        #[arg(long)]
        json: bool,
    },
    /// Re-read ipsec.conf and ipsec.secrets.
    Reload,
    /// Check ipsec.conf and ipsec.secrets (no daemon needed); exit 1 on errors.
    Check {
        #[arg(long, default_value = "/etc/ipsec.conf")]
        conf: PathBuf,
        #[arg(long, default_value = "/etc/ipsec.secrets")]
        secrets: PathBuf,
    },
}

/// Resolves `left=`/`right=` DNS names with the system resolver.
struct SystemDns;

impl HostResolver for SystemDns {
    fn resolve(&self, name: &str) -> Result<Vec<IpAddr>, String> {
        (name, 0)
            .to_socket_addrs()
            .map(|addrs| addrs.map(|a| a.ip()).collect())
            .map_err(|e| e.to_string())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { conf, secrets } => {
            let report = check(&conf, &secrets, &SystemDns);
            print!("{report}");
            if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Command::Up { .. } | Command::Down { .. } | Command::Status { .. } | Command::Reload => {
            eprintln!("ikectl: the daemon is not implemented yet");
            ExitCode::from(3)
        }
    }
}
