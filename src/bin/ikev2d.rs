//! ikev2d: the IKEv2 daemon (foreground; logs to stderr).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use ikev2d::config::settings::DEFAULT_SETTINGS;
use ikev2d::control::DEFAULT_SOCKET;
use ikev2d::daemon::{KernelMode, Options, run};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Kernel {
    /// Install CHILD_SAs with XFRM netlink.
    Xfrm,
    /// Negotiate and report CHILD_SAs without installing them.
    None,
}

#[derive(Parser, Debug)]
#[command(
    name = "ikev2d",
    version,
    about = "IKEv2 PSK daemon (strongSwan ipsec.conf, XFRM)"
)]
struct Cli {
    /// ipsec.conf to load.
    #[arg(long, default_value = "/etc/ipsec.conf")]
    conf: PathBuf,
    /// ipsec.secrets to load.
    #[arg(long, default_value = "/etc/ipsec.secrets")]
    secrets: PathBuf,
    /// Control socket for ikectl.
    #[arg(long, default_value = DEFAULT_SOCKET)]
    ctl: PathBuf,
    /// IKE port.
    #[arg(long, default_value_t = 500)]
    port: u16,
    /// NAT-T port (IKE behind the non-ESP marker, ESP-in-UDP).
    #[arg(long, default_value_t = 4500)]
    natt_port: u16,
    /// Kernel interface.
    #[arg(long, value_enum, default_value = "xfrm")]
    kernel: Kernel,
    /// Debugging: write every IKE SA's and ESP SA's keys into DIR as Wireshark's
    /// `ikev2_decryption_table` and `esp_sa` (a Wireshark profile folder). Whoever reads them
    /// can decrypt the traffic; off by default.
    #[arg(long, value_name = "DIR")]
    wireshark_keys: Option<PathBuf>,
    /// Daemon settings (retransmissions, responder limits, log levels, key export); a
    /// missing file means the defaults.
    #[arg(long, default_value = DEFAULT_SETTINGS)]
    settings: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let opts = Options {
        conf: cli.conf,
        secrets: cli.secrets,
        ctl: cli.ctl,
        port: cli.port,
        natt_port: cli.natt_port,
        kernel: match cli.kernel {
            Kernel::Xfrm => KernelMode::Xfrm,
            Kernel::None => KernelMode::None,
        },
        wireshark_keys: cli.wireshark_keys,
        settings: cli.settings,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ikev2d: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ikev2d: {e}");
            ExitCode::FAILURE
        }
    }
}
