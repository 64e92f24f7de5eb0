//! `leftupdown=` and `leftfirewall=yes`: what runs when a CHILD_SA comes up or goes down.
//!
//! The supervisor decides (an [`Effect::Updown`](super::supervisor::Effect::Updown) per
//! CHILD_SA up and per CHILD_SA down, none for a rekey, as strongSwan does); this module
//! turns a call into strongSwan's `PLUTO_*` environment (one script run per pair of local
//! and remote traffic selectors) and into nftables rules, and [`UpdownRunner`] executes
//! them one after another on a task of its own, each with a timeout, so that a slow or
//! failing script never holds up the daemon. A failure is logged with its exit status and
//! stderr.
//!
//! `leftfirewall=yes` keeps, in the nftables table `inet ikev2d` (chains `forward`, `input`,
//! `output` on their hooks, policy accept), one counting accept rule per direction and
//! selector pair, matching the selectors and the CHILD_SA's reqid (`ipsec in|out reqid N`):
//! in `forward` for a client subnet, in `input`/`output` when our selector is this host
//! (strongSwan's default updown script does the same with iptables). The rules are tagged
//! with a comment naming the conn, reqid and inbound SPI; down deletes the rules with that
//! tag.
//! nftables evaluates every base chain of a hook: an accept here does not override a drop
//! in another table, so a firewall that drops forwarded traffic by default accepts this
//! table's traffic by jumping to or matching on the same `ipsec` expressions itself.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::process::Stdio;
use std::time::Duration;

use ipnet::IpNet;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio::sync::mpsc;

use crate::kernel::IpsecProto;
use crate::wire::{IdType, Identification, TrafficSelector};

/// How long one script (or one `nft` run) may take before it is killed.
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(30);

/// The nftables table of `leftfirewall=yes`.
pub const NFT_TABLE: &str = "inet ikev2d";

/// Up or down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Up,
    Down,
}

/// What a CHILD_SA's updown call needs to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdownInfo {
    /// The conn (`PLUTO_CONNECTION`).
    pub conn: String,
    /// `leftupdown=`: run with `/bin/sh -c`.
    pub script: Option<String>,
    /// `leftfirewall=yes`.
    pub firewall: bool,
    /// The IKE SA's number (`PLUTO_UNIQUEID`).
    pub unique_id: u64,
    /// The CHILD_SA's reqid.
    pub reqid: u32,
    /// The CHILD_SA's inbound SPI (tags its firewall rules).
    pub spi_in: u32,
    /// ESP or AH.
    pub proto: IpsecProto,
    /// Our address and identity.
    pub me: IpAddr,
    pub my_id: String,
    /// The peer's address and identity.
    pub peer: IpAddr,
    pub peer_id: String,
    /// The negotiated traffic selectors.
    pub local_ts: Vec<TrafficSelector>,
    pub remote_ts: Vec<TrafficSelector>,
}

/// One updown event of one CHILD_SA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdownCall {
    pub verb: Verb,
    pub info: UpdownInfo,
}

/// A selector as the script sees it: the largest prefix starting at its first address that
/// stays within it (the whole selector when it is a prefix), protocol and port.
fn client(ts: &TrafficSelector) -> (IpNet, u8, u16) {
    let bits = if ts.start_addr.is_ipv4() { 32 } else { 128 };
    let net = (0..=bits)
        .filter_map(|len| IpNet::new(ts.start_addr, len).ok())
        .find(|n| n.network() == ts.start_addr && n.broadcast() <= ts.end_addr)
        .unwrap_or_else(|| IpNet::from(ts.start_addr));
    let port = if ts.start_port == ts.end_port {
        ts.start_port
    } else {
        0
    };
    (net, ts.ip_protocol, port)
}

impl UpdownCall {
    /// `up-host`/`down-host` when our selector is exactly our own address, else
    /// `up-client`/`down-client` (strongSwan's rule), with `-v6` for IPv6.
    fn verb(&self, local: &IpNet) -> String {
        let host = self.is_host(local);
        let mut v = format!(
            "{}-{}",
            match self.verb {
                Verb::Up => "up",
                Verb::Down => "down",
            },
            if host { "host" } else { "client" }
        );
        if local.addr().is_ipv6() {
            v.push_str("-v6");
        }
        v
    }

    /// Whether our selector is exactly our own address (a host, not a client subnet).
    fn is_host(&self, local: &IpNet) -> bool {
        local.prefix_len() == local.max_prefix_len() && local.addr() == self.info.me
    }

    /// The selector pairs of the same address family, as (local, remote).
    fn pairs(&self) -> Vec<(&TrafficSelector, &TrafficSelector)> {
        let i = &self.info;
        i.local_ts
            .iter()
            .flat_map(|l| i.remote_ts.iter().map(move |r| (l, r)))
            .filter(|(l, r)| l.start_addr.is_ipv4() == r.start_addr.is_ipv4())
            .collect()
    }

    /// strongSwan's `PLUTO_*` environment, one per selector pair; `interface` is the name of
    /// the interface our address is on.
    pub fn environments(&self, interface: &str) -> Vec<Vec<(&'static str, String)>> {
        let i = &self.info;
        self.pairs()
            .into_iter()
            .map(|(l, r)| {
                let (my_net, my_proto, my_port) = client(l);
                let (peer_net, peer_proto, peer_port) = client(r);
                vec![
                    ("PLUTO_VERSION", "1.1".to_owned()),
                    ("PLUTO_VERB", self.verb(&my_net)),
                    ("PLUTO_CONNECTION", i.conn.clone()),
                    ("PLUTO_INTERFACE", interface.to_owned()),
                    ("PLUTO_REQID", i.reqid.to_string()),
                    (
                        "PLUTO_PROTO",
                        match i.proto {
                            IpsecProto::Esp => "esp",
                            IpsecProto::Ah => "ah",
                        }
                        .to_owned(),
                    ),
                    ("PLUTO_UNIQUEID", i.unique_id.to_string()),
                    ("PLUTO_ME", i.me.to_string()),
                    ("PLUTO_MY_ID", i.my_id.clone()),
                    ("PLUTO_MY_CLIENT", my_net.to_string()),
                    ("PLUTO_MY_CLIENT_NET", my_net.network().to_string()),
                    ("PLUTO_MY_CLIENT_MASK", my_net.netmask().to_string()),
                    ("PLUTO_MY_PORT", my_port.to_string()),
                    ("PLUTO_MY_PROTOCOL", my_proto.to_string()),
                    ("PLUTO_PEER", i.peer.to_string()),
                    ("PLUTO_PEER_ID", i.peer_id.clone()),
                    ("PLUTO_PEER_CLIENT", peer_net.to_string()),
                    ("PLUTO_PEER_CLIENT_NET", peer_net.network().to_string()),
                    ("PLUTO_PEER_CLIENT_MASK", peer_net.netmask().to_string()),
                    ("PLUTO_PEER_PORT", peer_port.to_string()),
                    ("PLUTO_PEER_PROTOCOL", peer_proto.to_string()),
                ]
            })
            .collect()
    }

    /// The comment tagging this CHILD_SA's firewall rules.
    pub fn nft_tag(&self) -> String {
        format!(
            "ikev2d {} reqid {} spi {:08x}",
            self.info.conn, self.info.reqid, self.info.spi_in
        )
    }

    /// `nft -f -` input adding this CHILD_SA's rules (creating the table and its chains when
    /// missing), per selector pair as strongSwan's default updown script does with iptables:
    /// for a client subnet, forwarded traffic to the peer's selector leaving by the CHILD_SA
    /// and from it arriving by the CHILD_SA (chain `forward`); for this host itself, the
    /// same as input and output traffic (chains `input`, `output`).
    pub fn nft_up(&self) -> String {
        let mut s = format!("add table {NFT_TABLE}\n");
        for chain in ["forward", "input", "output"] {
            // ok: writing to a String cannot fail
            let _ = writeln!(
                s,
                "add chain {NFT_TABLE} {chain} {{ type filter hook {chain} priority filter; policy accept; }}"
            );
        }
        let tag = self.nft_tag();
        for (l, r) in self.pairs() {
            let (my_net, _, _) = client(l);
            let (peer_net, _, _) = client(r);
            let ip = if my_net.addr().is_ipv4() { "ip" } else { "ip6" };
            let proto = match (l.ip_protocol, r.ip_protocol) {
                (0, 0) => String::new(),
                (0, p) | (p, _) => format!("meta l4proto {p} "),
            };
            let (chain_out, chain_in) = if self.is_host(&my_net) {
                ("output", "input")
            } else {
                ("forward", "forward")
            };
            for (chain, dir, src, dst) in [
                (chain_out, "out", my_net, peer_net),
                (chain_in, "in", peer_net, my_net),
            ] {
                // ok: writing to a String cannot fail
                let _ = writeln!(
                    s,
                    "add rule {NFT_TABLE} {chain} {ip} saddr {src} {ip} daddr {dst} {proto}ipsec {dir} reqid {} counter accept comment \"{tag}\"",
                    self.info.reqid
                );
            }
        }
        s
    }
}

/// An identity as strongSwan writes it in `PLUTO_MY_ID`/`PLUTO_PEER_ID`: a FQDN without
/// ipsec.conf's `@` (`moon.strongswan.org`), the others as ikev2d shows them.
pub fn pluto_id(id: &Identification) -> String {
    match id.id_type {
        IdType::FQDN => String::from_utf8_lossy(&id.data).into_owned(),
        _ => id.to_string(),
    }
}

/// The chains and handles of the rules tagged `tag` in `nft -a list table` output.
pub fn nft_handles(listing: &str, tag: &str) -> Vec<(String, u64)> {
    let quoted = format!("comment \"{tag}\"");
    let mut chain = String::new();
    let mut out = Vec::new();
    for line in listing.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("chain ") {
            chain = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
        } else if line.contains(&quoted)
            && let Some(h) = line
                .rsplit_once("# handle ")
                .and_then(|(_, h)| h.trim().parse().ok())
        {
            out.push((chain.clone(), h));
        }
    }
    out
}

/// Executes updown calls in order on a task of its own.
#[derive(Debug)]
pub struct UpdownRunner {
    tx: mpsc::UnboundedSender<UpdownCall>,
    task: tokio::task::JoinHandle<()>,
}

impl UpdownRunner {
    /// Spawns the task (on the current tokio runtime).
    pub fn spawn() -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<UpdownCall>();
        let task = tokio::spawn(async move {
            while let Some(call) = rx.recv().await {
                run(&call).await;
            }
        });
        Self { tx, task }
    }

    /// Waits for the calls queued so far (at exit).
    pub async fn finish(self) {
        drop(self.tx);
        if self.task.await.is_err() {
            tracing::error!(target: "dmn", "the updown task failed");
        }
    }

    /// Queues a call.
    pub fn call(&self, call: UpdownCall) {
        if self.tx.send(call).is_err() {
            tracing::error!(target: "dmn", "the updown task is gone");
        }
    }
}

async fn run(call: &UpdownCall) {
    let interface = interface_of(call.info.me)
        .await
        .unwrap_or_else(|| "unknown".to_owned());
    if call.info.firewall {
        let conn = &call.info.conn;
        match firewall(call).await {
            Ok(n) => tracing::info!(target: "dmn", "leftfirewall {conn}: {n} nftables rule(s) {}",
                if call.verb == Verb::Up { "added" } else { "deleted" }),
            Err(e) => tracing::warn!(target: "dmn", "leftfirewall {conn}: nft: {e}"),
        }
    }
    let Some(script) = &call.info.script else {
        return;
    };
    for env in call.environments(&interface) {
        let verb = env
            .iter()
            .find(|(k, _)| *k == "PLUTO_VERB")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let what = format!("updown {script} {verb} for {}", call.info.conn);
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg(script).envs(env);
        match execute(cmd, None).await {
            Ok(()) => tracing::info!(target: "dmn", "{what}: done"),
            Err(e) => tracing::warn!(target: "dmn", "{what}: {e}"),
        }
    }
}

/// Applies `call` to the nftables table of `leftfirewall=yes`: up adds the CHILD_SA's rules,
/// down deletes the rules tagged with its [`UpdownCall::nft_tag`]. Returns how many rules.
pub async fn firewall(call: &UpdownCall) -> Result<usize, RunError> {
    let script = match call.verb {
        Verb::Up => call.nft_up(),
        Verb::Down => {
            let listing = output(&["-a", "list", "table", "inet", "ikev2d"]).await?;
            nft_handles(&listing, &call.nft_tag())
                .iter()
                .map(|(chain, h)| format!("delete rule {NFT_TABLE} {chain} handle {h}\n"))
                .collect()
        }
    };
    let rules = script
        .lines()
        .filter(|l| l.starts_with("add rule") || l.starts_with("delete rule"))
        .count();
    if rules > 0 {
        let mut cmd = Command::new("nft");
        cmd.args(["-f", "-"]);
        execute(cmd, Some(script)).await?;
    }
    Ok(rules)
}

/// Why a script or command failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot start: {0}")]
    Spawn(std::io::Error),
    #[error("killed after {} ms", .0.as_millis())]
    Timeout(Duration),
    #[error("waiting for it: {0}")]
    Wait(std::io::Error),
    #[error("exited with {status}; stderr: {stderr}")]
    Failed {
        status: std::process::ExitStatus,
        stderr: String,
    },
}

/// Runs `cmd` (stdout discarded, stderr kept, `input` on stdin) with [`SCRIPT_TIMEOUT`].
async fn execute(cmd: Command, input: Option<String>) -> Result<(), RunError> {
    run_capture(cmd, input).await.map(|_| ())
}

/// `nft ARGS...`'s stdout.
async fn output(args: &[&str]) -> Result<String, RunError> {
    let mut cmd = Command::new("nft");
    cmd.args(args);
    run_capture(cmd, None).await
}

async fn run_capture(cmd: Command, input: Option<String>) -> Result<String, RunError> {
    run_within(cmd, input, SCRIPT_TIMEOUT).await
}

/// Runs `cmd` with `input` on stdin; its stdout, or why it failed. Killed after `limit`.
async fn run_within(
    mut cmd: Command,
    input: Option<String>,
    limit: Duration,
) -> Result<String, RunError> {
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(RunError::Spawn)?;
    let stdin = child.stdin.take();
    let work = async move {
        if let (Some(mut stdin), Some(input)) = (stdin, input) {
            stdin
                .write_all(input.as_bytes())
                .await
                .map_err(RunError::Wait)?;
        }
        let out = child.wait_with_output().await.map_err(RunError::Wait)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(RunError::Failed {
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            })
        }
    };
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| RunError::Timeout(limit))?
}

/// The interface `addr` is on (`ip -o addr show`), for `PLUTO_INTERFACE`.
async fn interface_of(addr: IpAddr) -> Option<String> {
    let mut cmd = Command::new("ip");
    cmd.args(["-o", "addr", "show"]);
    let listing = run_capture(cmd, None).await.ok()?;
    interface_in(&listing, addr)
}

/// The interface whose line in `ip -o addr show` output carries `addr`.
fn interface_in(listing: &str, addr: IpAddr) -> Option<String> {
    listing.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let name = fields.nth(1)?;
        let _family = fields.next()?;
        let (a, _) = fields.next()?.split_once('/')?;
        (a.parse::<IpAddr>().ok()? == addr).then(|| name.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::TsType;

    fn ts(net: &str) -> TrafficSelector {
        let n: IpNet = net.parse().unwrap();
        TrafficSelector {
            ts_type: if n.addr().is_ipv4() {
                TsType::IPV4_ADDR_RANGE
            } else {
                TsType::IPV6_ADDR_RANGE
            },
            ip_protocol: 0,
            start_port: 0,
            end_port: u16::MAX,
            start_addr: n.network(),
            end_addr: n.broadcast(),
        }
    }

    fn call(verb: Verb, local: Vec<TrafficSelector>, remote: Vec<TrafficSelector>) -> UpdownCall {
        UpdownCall {
            verb,
            info: UpdownInfo {
                conn: "net-net".into(),
                script: Some("/bin/true".into()),
                firewall: true,
                unique_id: 7,
                reqid: 0x4b32_0001,
                spi_in: 0xc123_4567,
                proto: IpsecProto::Esp,
                me: "10.1.0.1".parse().unwrap(),
                my_id: "10.1.0.1".into(),
                peer: "10.1.0.2".parse().unwrap(),
                peer_id: "@bob".into(),
                local_ts: local,
                remote_ts: remote,
            },
        }
    }

    fn get<'a>(env: &'a [(&'static str, String)], key: &str) -> &'a str {
        env.iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
            .unwrap()
    }

    #[test]
    fn tunnel_environment_is_strongswans() {
        let c = call(Verb::Up, vec![ts("10.1.1.0/24")], vec![ts("10.1.2.0/24")]);
        let envs = c.environments("eth0");
        assert_eq!(envs.len(), 1);
        let e = &envs[0];
        assert_eq!(e.len(), 21);
        for (k, v) in [
            ("PLUTO_VERSION", "1.1"),
            ("PLUTO_VERB", "up-client"),
            ("PLUTO_CONNECTION", "net-net"),
            ("PLUTO_INTERFACE", "eth0"),
            ("PLUTO_REQID", "1261568001"),
            ("PLUTO_PROTO", "esp"),
            ("PLUTO_UNIQUEID", "7"),
            ("PLUTO_ME", "10.1.0.1"),
            ("PLUTO_MY_ID", "10.1.0.1"),
            ("PLUTO_MY_CLIENT", "10.1.1.0/24"),
            ("PLUTO_MY_CLIENT_NET", "10.1.1.0"),
            ("PLUTO_MY_CLIENT_MASK", "255.255.255.0"),
            ("PLUTO_MY_PORT", "0"),
            ("PLUTO_MY_PROTOCOL", "0"),
            ("PLUTO_PEER", "10.1.0.2"),
            ("PLUTO_PEER_ID", "@bob"),
            ("PLUTO_PEER_CLIENT", "10.1.2.0/24"),
            ("PLUTO_PEER_CLIENT_NET", "10.1.2.0"),
            ("PLUTO_PEER_CLIENT_MASK", "255.255.255.0"),
            ("PLUTO_PEER_PORT", "0"),
            ("PLUTO_PEER_PROTOCOL", "0"),
        ] {
            assert_eq!(get(e, k), v, "{k}");
        }
        let down = call(
            Verb::Down,
            c.info.local_ts.clone(),
            c.info.remote_ts.clone(),
        );
        assert_eq!(
            get(&down.environments("eth0")[0], "PLUTO_VERB"),
            "down-client"
        );
    }

    #[test]
    fn host_verbs_ports_and_pairs() {
        let mut tcp = ts("10.1.0.2/32");
        tcp.ip_protocol = 6;
        tcp.start_port = 80;
        tcp.end_port = 80;
        let mut c = call(Verb::Up, vec![ts("10.1.0.1/32")], vec![tcp]);
        c.info.proto = IpsecProto::Ah;
        let e = &c.environments("eth0")[0];
        assert_eq!(get(e, "PLUTO_VERB"), "up-host");
        assert_eq!(get(e, "PLUTO_PROTO"), "ah");
        assert_eq!(get(e, "PLUTO_MY_CLIENT_MASK"), "255.255.255.255");
        assert_eq!(
            (get(e, "PLUTO_PEER_PORT"), get(e, "PLUTO_PEER_PROTOCOL")),
            ("80", "6")
        );
        // One call per same-family pair; IPv6 verbs carry -v6.
        let c = call(
            Verb::Down,
            vec![ts("10.1.1.0/24"), ts("fd00:1::/64")],
            vec![ts("10.1.2.0/24"), ts("fd00:2::/64")],
        );
        let envs = c.environments("eth0");
        assert_eq!(envs.len(), 2);
        assert_eq!(get(&envs[1], "PLUTO_VERB"), "down-client-v6");
        assert_eq!(
            get(&envs[1], "PLUTO_MY_CLIENT_MASK"),
            "ffff:ffff:ffff:ffff::"
        );
        // A range that is no prefix: its first prefix.
        let mut range = ts("10.1.1.0/24");
        range.end_addr = "10.1.1.5".parse().unwrap();
        let c = call(Verb::Up, vec![range], vec![ts("10.1.2.0/24")]);
        assert_eq!(
            get(&c.environments("eth0")[0], "PLUTO_MY_CLIENT"),
            "10.1.1.0/30"
        );
    }

    #[test]
    fn nft_rules_and_their_removal() {
        let c = call(Verb::Up, vec![ts("10.1.1.0/24")], vec![ts("10.1.2.0/24")]);
        let up = c.nft_up();
        assert!(up.starts_with("add table inet ikev2d\nadd chain inet ikev2d forward { type filter hook forward priority filter; policy accept; }\nadd chain inet ikev2d input { type filter hook input priority filter; policy accept; }\n"), "{up}");
        let tag = "ikev2d net-net reqid 1261568001 spi c1234567";
        assert_eq!(c.nft_tag(), tag);
        assert!(up.contains(&format!("add rule inet ikev2d forward ip saddr 10.1.1.0/24 ip daddr 10.1.2.0/24 ipsec out reqid 1261568001 counter accept comment \"{tag}\"\n")), "{up}");
        assert!(up.contains(&format!("add rule inet ikev2d forward ip saddr 10.1.2.0/24 ip daddr 10.1.1.0/24 ipsec in reqid 1261568001 counter accept comment \"{tag}\"\n")), "{up}");
        let listing = format!(
            "table inet ikev2d {{ # handle 9\n\tchain forward {{ # handle 1\n\t\tip saddr 10.1.1.0/24 ip daddr 10.1.2.0/24 ipsec out reqid 1261568001 counter packets 3 bytes 252 accept comment \"{tag}\" # handle 2\n\t\tip saddr 10.9.0.0/24 accept comment \"ikev2d other reqid 1 spi 00000001\" # handle 3\n\t\tip saddr 10.1.2.0/24 counter packets 0 bytes 0 accept comment \"{tag}\" # handle 4\n\t}}\n\tchain input {{ # handle 5\n\t\ttype filter hook input priority filter; policy accept;\n\t\tip saddr 10.1.0.2 counter accept comment \"{tag}\" # handle 6\n\t}}\n}}\n"
        );
        let chain = |c: &str, h| (c.to_owned(), h);
        assert_eq!(
            nft_handles(&listing, tag),
            [chain("forward", 2), chain("forward", 4), chain("input", 6)]
        );
        // This host as the selector: input and output, as strongSwan's up-host rules.
        let host = call(Verb::Up, vec![ts("10.1.0.1/32")], vec![ts("10.1.0.2/32")]);
        let up = host.nft_up();
        assert!(up.contains("add rule inet ikev2d output ip saddr 10.1.0.1/32 ip daddr 10.1.0.2/32 ipsec out reqid"), "{up}");
        assert!(up.contains("add rule inet ikev2d input ip saddr 10.1.0.2/32 ip daddr 10.1.0.1/32 ipsec in reqid"), "{up}");
        assert!(!up.contains("add rule inet ikev2d forward"), "{up}");
    }

    #[test]
    fn ids_as_strongswan_writes_them() {
        let fqdn = Identification {
            id_type: IdType::FQDN,
            data: b"moon.strongswan.org".to_vec(),
        };
        assert_eq!(pluto_id(&fqdn), "moon.strongswan.org");
        let mail = Identification {
            id_type: IdType::RFC822_ADDR,
            data: b"carol@example.org".to_vec(),
        };
        assert_eq!(pluto_id(&mail), "carol@example.org");
        let ip = Identification::from_ip("10.1.0.1".parse().unwrap());
        assert_eq!(pluto_id(&ip), "10.1.0.1");
    }

    #[test]
    fn interface_lookup() {
        let listing = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n2: eth0    inet 10.1.0.1/24 brd 10.1.0.255 scope global eth0\\       valid_lft forever\n2: eth0    inet6 fe80::1/64 scope link \\       valid_lft forever\n";
        assert_eq!(
            interface_in(listing, "10.1.0.1".parse().unwrap()).as_deref(),
            Some("eth0")
        );
        assert_eq!(
            interface_in(listing, "fe80::1".parse().unwrap()).as_deref(),
            Some("eth0")
        );
        assert_eq!(interface_in(listing, "10.9.9.9".parse().unwrap()), None);
    }

    #[tokio::test]
    async fn failures_report_status_and_stderr() {
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "echo oops >&2; exit 3"]);
        let e = execute(cmd, None).await.unwrap_err();
        assert_eq!(e.to_string(), "exited with exit status: 3; stderr: oops");
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "cat"]);
        assert_eq!(run_capture(cmd, Some("in".into())).await.unwrap(), "in");
        let mut slow = Command::new("/bin/sh");
        slow.args(["-c", "sleep 20"]);
        let started = std::time::Instant::now();
        let e = run_within(slow, None, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "killed after 200 ms");
        assert!(started.elapsed() < Duration::from_secs(10));
        let missing = Command::new("/nonexistent/updown");
        assert!(matches!(
            execute(missing, None).await,
            Err(RunError::Spawn(_))
        ));
    }
}
