//! The ikev2d daemon: tokio driver around the sans-IO IKE engine, UDP sockets, kernel
//! installation of CHILD_SAs and the control-socket server.
//!
//! Structure: [`run`] loads the configuration, opens the kernel interface, binds the IKE
//! sockets ([`net`]) and the control socket ([`ctl`]), then hands everything to the
//! [`driver::Driver`], the single task that feeds the sans-IO [`supervisor::Supervisor`] (which
//! owns the engine and all daemon policy) and executes its effects. Socket receivers, control
//! connections, the kernel event reader and the kernel worker (the one owner of the kernel
//! interface) are separate small tasks/threads that talk to the driver over channels.

pub mod conns;
pub mod ctl;
pub mod dh_pool;
pub mod driver;
pub mod install;
pub mod keylog;
pub mod log;
pub mod net;
pub mod supervisor;
pub mod updown;

use std::net::{IpAddr, ToSocketAddrs};
use std::path::PathBuf;

use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::config::conn::HostResolver;
use crate::config::diag::Severity;
use crate::config::load::load;
use crate::config::settings::{SettingsError, load_settings};
use crate::ike::{Endpoint, RandomSpis, UniqueIds};
use crate::kernel::{EventSocket, KernelError, KernelIpsec, NoneKernel, SPI_RANGE, XfrmKernel};
use conns::{ConnEntry, Reqids, ShuntEntry, build_conns, build_shunts, endpoint_config};

/// Which kernel interface CHILD_SAs go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelMode {
    /// XFRM netlink (needs CAP_NET_ADMIN).
    Xfrm,
    /// Negotiate and report CHILD_SAs without installing anything (tests, benchmarks).
    None,
}

/// Command-line settings of the daemon.
#[derive(Debug, Clone)]
pub struct Options {
    /// ipsec.conf.
    pub conf: PathBuf,
    /// ipsec.secrets.
    pub secrets: PathBuf,
    /// Control socket.
    pub ctl: PathBuf,
    /// IKE port.
    pub port: u16,
    /// NAT-T port.
    pub natt_port: u16,
    /// Kernel interface.
    pub kernel: KernelMode,
    /// Write every IKE SA's and ESP SA's keys to this folder in Wireshark's table formats
    /// ([`keylog`]); `None` (the default) writes nothing.
    pub wireshark_keys: Option<PathBuf>,
    /// The daemon settings file (TOML, [`crate::config::settings`]); missing = defaults.
    pub settings: PathBuf,
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration has errors.
    #[error("configuration refused:\n{0}")]
    Config(String),
    #[error("settings refused: {0}")]
    Settings(#[from] SettingsError),
    /// The kernel interface could not be opened or prepared.
    #[error("kernel: {0}")]
    Kernel(#[from] KernelError),
    /// A socket could not be bound.
    #[error(transparent)]
    Net(#[from] net::NetError),
    /// The control socket could not be created.
    #[error(transparent)]
    Ctl(#[from] ctl::CtlError),
    /// Signal handlers could not be installed.
    #[error("signal handler: {0}")]
    Signal(std::io::Error),
    /// The kernel worker thread could not be started.
    #[error("kernel worker thread: {0}")]
    Thread(std::io::Error),
    /// The Wireshark key log could not be created.
    #[error(transparent)]
    KeyLog(#[from] keylog::KeyLogError),
}

/// Resolves `left=`/`right=` DNS names with the system resolver.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemDns;

impl HostResolver for SystemDns {
    fn resolve(&self, name: &str) -> std::io::Result<Vec<IpAddr>> {
        (name, 0)
            .to_socket_addrs()
            .map(|addrs| addrs.map(|a| a.ip()).collect())
    }
}

/// Loads (and re-loads) ipsec.conf + ipsec.secrets into conns, and the settings file.
#[derive(Debug)]
pub struct Reloader {
    conf: PathBuf,
    secrets: PathBuf,
    settings: PathBuf,
    reqids: Reqids,
}

impl Reloader {
    /// For the three files.
    pub fn new(conf: PathBuf, secrets: PathBuf, settings: PathBuf) -> Self {
        Self {
            conf,
            secrets,
            settings,
            reqids: Reqids::default(),
        }
    }

    /// Loads both files: `Err` with all diagnostics when there is any error. Warnings are
    /// logged. Also returns the shunt conns and `config setup`'s `uniqueids=`.
    pub fn load_with_setup(
        &mut self,
    ) -> Result<(Vec<ConnEntry>, Vec<ShuntEntry>, UniqueIds), String> {
        let loaded = load(&self.conf, &self.secrets, &SystemDns);
        let mut errors = Vec::new();
        for d in &loaded.diagnostics.items {
            match d.severity {
                Severity::Error => errors.push(d.to_string()),
                _ => tracing::warn!(target: "cfg", "{d}"),
            }
        }
        if !errors.is_empty() {
            return Err(errors.join("\n"));
        }
        let conns = build_conns(
            &loaded.config,
            &loaded.secrets,
            &net::is_local_address,
            &|peer| net::route_source(std::net::SocketAddr::new(peer, 500)),
            &mut self.reqids,
        );
        let shunts = build_shunts(&loaded.config, &net::is_local_address, &mut self.reqids);
        let (conns, shunts) = match (conns, shunts) {
            (Ok(c), Ok(s)) => (c, s),
            (c, s) => {
                let errors = [c.err(), s.err()]
                    .into_iter()
                    .flatten()
                    .map(|e| e.to_string());
                return Err(errors.collect::<Vec<_>>().join("\n"));
            }
        };
        for c in &conns {
            tracing::info!(target: "cfg", "loaded conn {} ({}...{}, {}, auto={})",
                c.report.name, c.report.local, c.report.remote, c.report.mode, c.report.auto);
        }
        for s in &shunts {
            tracing::info!(target: "cfg", "loaded shunt {} (type={}, auto=route)", s.name, s.policy.action);
        }
        Ok((conns, shunts, loaded.config.setup.uniqueids))
    }

    /// Loads the three files (see [`Reloader::load_with_setup`]).
    pub fn load(&mut self) -> Result<supervisor::Reloaded, String> {
        let settings = load_settings(&self.settings).map_err(|e| e.to_string())?;
        let (conns, shunts, unique_ids) = self.load_with_setup()?;
        Ok(supervisor::Reloaded {
            conns,
            shunts,
            settings,
            unique_ids,
        })
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn open_kernel(mode: KernelMode) -> Result<Box<dyn KernelIpsec + Send>, KernelError> {
    let mut k: Box<dyn KernelIpsec + Send> = match mode {
        KernelMode::Xfrm => Box::new(XfrmKernel::open()?),
        KernelMode::None => Box::new(NoneKernel::new()),
    };
    let flushed = k.flush_ours()?;
    if flushed.sas + flushed.policies > 0 {
        tracing::info!(target: "kernel", "removed {} SAs and {} policies left by a previous run", flushed.sas, flushed.policies);
    }
    Ok(k)
}

/// Forwards kernel events from a blocking reader thread.
fn spawn_kernel_events(tx: mpsc::Sender<crate::kernel::KernelEvent>) -> Result<(), KernelError> {
    let mut events = EventSocket::open()?;
    std::thread::Builder::new()
        .name("xfrm-events".into())
        .spawn(move || {
            loop {
                match events.recv_event() {
                    Ok(ev) => {
                        if tx.blocking_send(ev).is_err() {
                            return;
                        }
                    }
                    Err(KernelError::EventsLost) => {
                        tracing::warn!(target: "kernel", "kernel events were lost (socket buffer overrun)");
                    }
                    Err(e) => {
                        tracing::error!(target: "kernel", "kernel event socket: {e}");
                        return;
                    }
                }
            }
        })
        .map_err(|e| KernelError::io(crate::kernel::Target::Events, &e))?;
    Ok(())
}

/// Runs the daemon until SIGTERM/SIGINT. Must be called inside a tokio runtime with IO and
/// time enabled; logging is initialised here (charondebug needs the configuration).
pub async fn run(opts: Options) -> Result<(), DaemonError> {
    let mut reloader = Reloader::new(
        opts.conf.clone(),
        opts.secrets.clone(),
        opts.settings.clone(),
    );
    let daemon_settings = load_settings(&opts.settings)?;
    // Parse once silently for charondebug, then set up logging before reporting anything.
    // The settings file's [log] table replaces charondebug.
    let charondebug = daemon_settings.charondebug().or_else(|| {
        load(&opts.conf, &opts.secrets, &SystemDns)
            .config
            .setup
            .charondebug
    });
    log::init(charondebug.as_deref());
    let (conns, shunts, unique_ids) = reloader.load_with_setup().map_err(DaemonError::Config)?;

    let kernel = open_kernel(opts.kernel)?;
    let xfrm = opts.kernel == KernelMode::Xfrm;
    let (dgram_tx, dgram_rx) = mpsc::channel(256);
    let wildcard = conns.iter().any(|c| c.spec.local_addr.is_none());
    let mut net = net::Net::new(opts.port, opts.natt_port, wildcard, xfrm, dgram_tx)?;
    for addr in conns.iter().filter_map(|c| c.spec.local_addr) {
        net.add_address(addr)?;
    }
    let (kev_tx, kev_rx) = mpsc::channel(64);
    if xfrm {
        spawn_kernel_events(kev_tx)?;
    }
    let key_log = opts
        .wireshark_keys
        .as_deref()
        .or(daemon_settings.key_export.as_deref())
        .map(keylog::KeyLog::create)
        .transpose()?;
    if let Some(k) = &key_log {
        tracing::warn!(target: "cfg",
            "writing the IKE and ESP keys of every SA to {} (Wireshark decryption tables): \
             anyone who can read them can decrypt this host's IPsec traffic; for debugging only",
            k.dir().display());
    }
    let config = endpoint_config(
        &daemon_settings,
        key_log.is_some(),
        opts.natt_port,
        unique_ids,
    );
    // Every RNG below is seeded once from the OS; the engine and the supervisor only see
    // their own generator.
    let seed = || ChaCha20Rng::from_rng(&mut rand::rng());
    let spis = Box::new(RandomSpis::new(seed(), SPI_RANGE));
    let mut endpoint = Endpoint::new(config, seed(), spis);
    let workers = daemon_settings.crypto.workers();
    if workers > 0 {
        let pool = dh_pool::DhPool::spawn(workers).map_err(DaemonError::Thread)?;
        tracing::info!(target: "cfg", "Diffie-Hellman work (key pairs ahead of time, responders' shared secrets) on worker threads: {}", pool.workers());
        endpoint.set_dh_offload(Box::new(pool));
    }
    let kernel_name = if xfrm { "xfrm" } else { "none" };
    let settings = supervisor::Settings {
        kernel_name,
        kernel_installs: xfrm,
        natt_port: opts.natt_port,
        key_log: key_log.is_some(),
        nat_keepalive: daemon_settings.nat.interval(),
    };
    let mut sup = supervisor::Supervisor::new(endpoint, settings, conns, seed());
    sup.set_shunts(shunts);
    let worker = if xfrm {
        driver::KernelWorker::spawn(kernel).map_err(DaemonError::Thread)?
    } else {
        driver::KernelWorker::Inline(kernel)
    };

    let (ctl_tx, ctl_rx) = mpsc::channel(16);
    let _ctl = ctl::CtlSocket::bind(&opts.ctl, ctl_tx, ctl::CtlLimits::default())?;
    let sig = |k: SignalKind| signal(k).map_err(DaemonError::Signal);
    let inputs = driver::Inputs {
        datagrams: dgram_rx,
        ctl: ctl_rx,
        kernel: kev_rx,
        sigterm: sig(SignalKind::terminate())?,
        sigint: sig(SignalKind::interrupt())?,
        sighup: sig(SignalKind::hangup())?,
    };
    let mut driver = driver::Driver::new(sup, net, reloader, worker, key_log);
    driver.start().await;
    // The line tests and scripts wait for (independent of log levels).
    eprintln!(
        "ikev2d ready: control socket {}, IKE port {}, NAT-T port {}, kernel {kernel_name}",
        opts.ctl.display(),
        opts.port,
        opts.natt_port
    );
    driver.run(inputs).await;
    Ok(())
}
