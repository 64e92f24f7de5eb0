//! From the typed ipsec.conf/ipsec.secrets ([`crate::config`]) to the engine's
//! [`ConnSpec`]s (with the reqid and rekey settings the engine passes on), plus what the
//! daemon itself needs per conn (auto, rekey, the status summary).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use crate::config::conn::resolve_local_side;
use crate::config::conn::{Action, AuthMethod, Auto, Config, Conn, ConnType, End, Side};
use crate::config::ident::Identity;
use crate::config::proposal::{Proposal, Proposals, Protocol, esn};
use crate::config::secrets::Secrets;
use crate::config::settings::{Count, DaemonSettings};
use crate::config::values::{Host, ProtoPort};
use crate::control::ConnReport;
use crate::crypto::{DhGroup, Encr, Integ, Prf};
use crate::daemon::install::VolumeLimits;
use crate::ike::{
    ConnSpec, EndpointConfig, EspProposal, IkeProposal, IpsecProto, Mode, Psks, RetransmitPolicy,
    UniqueIds,
};
use crate::kernel::{self, Marks, REQID_MAX, REQID_MIN, ShuntAction, ShuntPolicy};
use crate::wire::{IdType, Identification, TrafficSelector, TsType};

/// A conn as the daemon runs it.
#[derive(Debug, Clone)]
pub struct ConnEntry {
    /// What the engine gets.
    pub spec: ConnSpec,
    /// `auto=`.
    pub auto: Auto,
    /// `rekey=`: rekey CHILD_SAs at their soft expire (otherwise they expire).
    pub rekey: bool,
    /// `reauth=`: renew the IKE SA by reauthentication (make-before-break) instead of a rekey.
    pub reauth: bool,
    /// Dead peer detection: `dpddelay` when `dpdaction` is not `none` (strongSwan sends no
    /// liveness checks then).
    pub dpddelay: Option<Duration>,
    /// What to do when the peer stops answering (the retransmissions gave up).
    pub dpdaction: Action,
    /// What to do when the peer deletes the IKE SA.
    pub closeaction: Action,
    /// `keyingtries`: attempts to establish the IKE SA; `None` = `%forever`.
    pub keyingtries: Option<u32>,
    /// `lifebytes`, `lifepackets` and their margins, for the kernel SAs.
    pub volume: VolumeLimits,
    /// `inactivity`: close a CHILD_SA that carried no packet for this long.
    pub inactivity: Option<Duration>,
    /// `mark=`, `mark_in=`, `mark_out=` of the SAs and policies.
    pub marks: Marks,
    /// The local side's `leftupdown=` script.
    pub updown: Option<String>,
    /// The local side's `leftfirewall=yes`.
    pub firewall: bool,
    /// Status summary (without SAs).
    pub report: ConnReport,
}

/// A shunt conn (`type=pass|drop`, `auto=route`): policies only, never negotiated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShuntEntry {
    /// The conn's name.
    pub name: String,
    /// Its policies (the conn's reqid keys them).
    pub policy: ShuntPolicy,
}

/// The marks of a conn: `mark_in`/`mark_out`, each defaulting to `mark`.
fn marks(conn: &Conn) -> Marks {
    let kernel_mark = |m: crate::config::values::Mark| kernel::Mark {
        value: m.value,
        mask: m.mask,
    };
    Marks {
        inbound: conn.mark_in.or(conn.mark).map(kernel_mark),
        outbound: conn.mark_out.or(conn.mark).map(kernel_mark),
    }
}

/// The engine's settings from the daemon's settings file; `export_keys` when a key log is
/// written; our NAT-T port (a command-line option); `uniqueids=` of ipsec.conf's
/// `config setup`.
pub fn endpoint_config(
    s: &DaemonSettings,
    export_keys: bool,
    natt_port: u16,
    unique_ids: UniqueIds,
) -> EndpointConfig {
    EndpointConfig {
        retransmit: RetransmitPolicy {
            timeout: s.retransmit.timeout.duration(),
            base: s.retransmit.base.0,
            tries: s.retransmit.tries.0,
        },
        half_open_timeout: s.responder.half_open_timeout.duration(),
        max_half_open: count(s.responder.max_half_open),
        cookie_threshold: count(s.responder.cookie_threshold),
        cookie_threshold_ip: count(s.responder.cookie_threshold_ip),
        max_half_open_per_ip: count(s.responder.max_half_open_per_ip),
        export_keys,
        natt_port,
        unique_ids,
        dh_reuse: s
            .crypto
            .dh_reuse
            .map_or(Duration::ZERO, crate::config::settings::Seconds::duration),
        ..EndpointConfig::default()
    }
}

fn count(c: Count) -> usize {
    usize::try_from(c.0).unwrap_or(usize::MAX)
}

/// Stable reqids per conn name across reloads; conns get the values after `REQID_MIN`.
#[derive(Debug, Default)]
pub struct Reqids {
    by_name: HashMap<String, u32>,
}

impl Reqids {
    /// The reqid of `name`, allocating one on first use; `None` when the range is exhausted.
    pub fn get(&mut self, name: &str) -> Option<u32> {
        if let Some(r) = self.by_name.get(name) {
            return Some(*r);
        }
        let next = REQID_MIN
            .checked_add(u32::try_from(self.by_name.len()).ok()?)?
            .checked_add(1)?;
        if next > REQID_MAX {
            return None;
        }
        self.by_name.insert(name.to_string(), next);
        Some(next)
    }
}

/// Why a conn of a loaded configuration cannot be run (the daemon refuses the configuration).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnError {
    #[error("neither left ({left}) nor right ({right}) is an address of this host")]
    NoLocalSide { left: Host, right: Host },
    #[error("{side} authentication {auth} is not supported (only authby=secret / psk)")]
    UnsupportedAuth {
        side: &'static str,
        auth: AuthMethod,
    },
    #[error("type={0} is not supported")]
    UnsupportedType(ConnType),
    #[error("no PSK in ipsec.secrets for {local} <-> {remote}")]
    NoPsk { local: Identity, remote: Identity },
    #[error("no PSK in ipsec.secrets that a peer {remote} of {local} could use")]
    NoPskForAnyPeer { local: Identity, remote: Identity },
    /// An algorithm the user wrote (`what`: encryption, integrity, PRF, DH group) that
    /// ikev2d does not implement.
    #[error("{what} algorithm {shown} is not supported")]
    UnsupportedAlgorithm { what: &'static str, shown: String },
    #[error("no supported {0:?} proposal")]
    NoSupportedProposal(Protocol),
    #[error("no free reqid")]
    NoFreeReqid,
    #[error("reqid={0} is outside the range ikev2d owns ({min:#x}-{max:#x})", min = REQID_MIN, max = REQID_MAX)]
    ReqidOutOfRange(u32),
}

/// A [`ConnError`] of one conn.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("conn {conn}: {error}")]
pub struct ConnBuildError {
    /// The conn's name.
    pub conn: String,
    /// What is wrong with it.
    pub error: ConnError,
}

/// Every refused conn of a configuration, one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct ConnErrors(pub Vec<ConnBuildError>);

/// Builds every loaded conn (`auto=ignore` conns are not loaded, as in strongSwan). Errors
/// name the conn and the cause; any error refuses the whole configuration. `is_local` tells
/// this host's addresses; `route_source` the source address of the route to a peer, which
/// becomes the local address of a `left=%defaultroute`/`%any` conn with a fixed peer.
pub fn build_conns(
    config: &Config,
    secrets: &Secrets,
    is_local: &dyn Fn(IpAddr) -> bool,
    route_source: &dyn Fn(IpAddr) -> Option<IpAddr>,
    reqids: &mut Reqids,
) -> Result<Vec<ConnEntry>, ConnErrors> {
    let psks = Psks::new(Arc::new(secrets.clone()));
    let loaded = config
        .conns
        .iter()
        .filter(|c| c.auto != Auto::Ignore && !c.conn_type.is_shunt());
    build_each(loaded, |conn| {
        build_conn(conn, secrets, &psks, is_local, route_source, reqids)
    })
}

/// `build` of every conn: all results, or every error naming its conn.
fn build_each<'a, T>(
    conns: impl Iterator<Item = &'a Conn>,
    mut build: impl FnMut(&'a Conn) -> Result<T, ConnError>,
) -> Result<Vec<T>, ConnErrors> {
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    for conn in conns {
        match build(conn) {
            Ok(e) => entries.push(e),
            Err(error) => errors.push(ConnBuildError {
                conn: conn.name.clone(),
                error,
            }),
        }
    }
    if errors.is_empty() {
        Ok(entries)
    } else {
        Err(ConnErrors(errors))
    }
}

/// The local and the remote end of `conn` on this host.
fn local_and_remote<'a>(
    conn: &'a Conn,
    is_local: &dyn Fn(IpAddr) -> bool,
) -> Result<(&'a End, &'a End), ConnError> {
    match resolve_local_side(conn, is_local) {
        Some(Side::Left) => Ok((&conn.left, &conn.right)),
        Some(Side::Right) => Ok((&conn.right, &conn.left)),
        None => Err(ConnError::NoLocalSide {
            left: conn.left.host.clone(),
            right: conn.right.host.clone(),
        }),
    }
}

/// `reqid=` or the conn's allocated reqid, in the range ikev2d owns.
fn conn_reqid(conn: &Conn, reqids: &mut Reqids) -> Result<u32, ConnError> {
    let reqid = match conn.reqid {
        Some(r) => r,
        None => reqids.get(&conn.name).ok_or(ConnError::NoFreeReqid)?,
    };
    if !crate::kernel::is_our_reqid(reqid) {
        return Err(ConnError::ReqidOutOfRange(reqid));
    }
    Ok(reqid)
}

/// Builds the shunt conns (`type=pass|drop` with `auto=route`; other shunts are not loaded,
/// `ikectl check` reports them). Their reqids come from the same table as the other conns'.
pub fn build_shunts(
    config: &Config,
    is_local: &dyn Fn(IpAddr) -> bool,
    reqids: &mut Reqids,
) -> Result<Vec<ShuntEntry>, ConnErrors> {
    let shunts = config
        .conns
        .iter()
        .filter(|c| c.auto == Auto::Route && c.conn_type.is_shunt());
    build_each(shunts, |conn| build_shunt(conn, is_local, reqids))
}

fn build_shunt(
    conn: &Conn,
    is_local: &dyn Fn(IpAddr) -> bool,
    reqids: &mut Reqids,
) -> Result<ShuntEntry, ConnError> {
    let (l, r) = local_and_remote(conn, is_local)?;
    let action = match conn.conn_type {
        ConnType::Drop => ShuntAction::Drop,
        _ => ShuntAction::Pass,
    };
    let reqid = conn_reqid(conn, reqids)?;
    let ts = |end: &End| -> Vec<kernel::TrafficSelector> {
        selectors(&shunt_nets(end), &end.protoport)
            .iter()
            .map(crate::daemon::install::kernel_ts)
            .collect()
    };
    Ok(ShuntEntry {
        name: conn.name.clone(),
        policy: ShuntPolicy {
            action,
            reqid,
            local_ts: ts(l),
            remote_ts: ts(r),
            marks: marks(conn),
        },
    })
}

/// A shunt's addresses on one side: its subnets, else its host, else (`%any`) everything.
fn shunt_nets(end: &End) -> Vec<IpNet> {
    let nets = end.effective_subnets();
    if !nets.is_empty() {
        return nets;
    }
    vec![
        IpNet::V4(ipnet::Ipv4Net::default()),
        IpNet::V6(ipnet::Ipv6Net::default()),
    ]
}

fn build_conn(
    conn: &Conn,
    secrets: &Secrets,
    psks: &Psks,
    is_local: &dyn Fn(IpAddr) -> bool,
    route_source: &dyn Fn(IpAddr) -> Option<IpAddr>,
    reqids: &mut Reqids,
) -> Result<ConnEntry, ConnError> {
    let (l, r) = local_and_remote(conn, is_local)?;
    for (end, side) in [(l, "local"), (r, "remote")] {
        if end.auth != AuthMethod::Psk {
            return Err(ConnError::UnsupportedAuth {
                side,
                auth: end.auth,
            });
        }
    }
    let mode = match conn.conn_type {
        ConnType::Tunnel => Mode::Tunnel,
        ConnType::Transport => Mode::Transport,
        other => return Err(ConnError::UnsupportedType(other)),
    };
    let local_addr = l.addr().or_else(|| r.addr().and_then(route_source));
    // Without leftid, our ID is our address: the routed one when known, else the one each
    // request arrives on (`%any`: local_id None).
    let local_identity = match (&l.id, local_addr) {
        (None, Some(a)) => Identity::from_addr(a),
        _ => l.effective_id(),
    };
    let local_id = identification(&local_identity);
    let remote_identity = r.effective_id();
    let remote_id = identification(&remote_identity);
    check_psk(secrets, &local_identity, &remote_identity)?;
    let ike_proposals = proposals(&conn.ike, Protocol::Ike, ike_proposal)?;
    let esp_proposals = match &conn.ah {
        Some(ah) => proposals(ah, Protocol::Ah, ah_proposal)?,
        None => proposals(&conn.esp, Protocol::Esp, esp_proposal)?,
    };
    // `leftsourceip=%config`: ask for an address of each family; our selectors are then
    // dynamic (the engine proposes the whole family, the peer narrows it to the address).
    let request_vips: Vec<IpAddr> = l
        .requested_vips()
        .map(|v6| match v6 {
            false => IpAddr::from(std::net::Ipv4Addr::UNSPECIFIED),
            true => IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED),
        })
        .collect();
    // `rightsourceip=POOL`: the peer's selectors become the address it is leased.
    let pools: Vec<IpNet> = r.pools().collect();
    let (local_ts, remote_ts) = match mode {
        // Transport mode protects the hosts themselves; the engine fills in the addresses
        // when a side has none configured (%any).
        Mode::Transport => (
            selectors(&host_nets(l), &l.protoport),
            selectors(&host_nets(r), &r.protoport),
        ),
        Mode::Tunnel => (
            if request_vips.is_empty() || !l.subnets.is_empty() {
                selectors(&l.effective_subnets(), &l.protoport)
            } else {
                Vec::new()
            },
            if pools.is_empty() || !r.subnets.is_empty() {
                selectors(&r.effective_subnets(), &r.protoport)
            } else {
                Vec::new()
            },
        ),
    };
    let reqid = conn_reqid(conn, reqids)?;
    let report = ConnReport {
        name: conn.name.clone(),
        local: l.host.to_string(),
        remote: r.host.to_string(),
        local_id: local_identity.to_string(),
        remote_id: remote_identity.to_string(),
        mode: mode.to_string(),
        auto: conn.auto.to_string(),
        local_ts: fmt_conn_ts(&local_ts),
        remote_ts: fmt_conn_ts(&remote_ts),
        ike_sas: Vec::new(),
    };
    let spec = ConnSpec {
        name: conn.name.clone(),
        local_addr,
        remote_addr: r.addr(),
        local_port: l.ikeport,
        remote_port: r.ikeport,
        local_id,
        remote_id,
        psk: psks.clone(),
        ike_proposals,
        esp_proposals,
        mode,
        local_ts,
        remote_ts,
        lifetime: conn.lifetime,
        reqid,
        rekey_margin: conn.rekeymargin,
        rekey_fuzz_percent: conn.rekeyfuzz_percent,
        ike_lifetime: conn.ikelifetime,
        force_encaps: conn.forceencaps,
        request_vips,
        pools,
        request_dns: l
            .requested_dns()
            .map(|v6| match v6 {
                false => IpAddr::from(std::net::Ipv4Addr::UNSPECIFIED),
                true => IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED),
            })
            .collect(),
        peer_dns: r.dns_servers().collect(),
    };
    Ok(ConnEntry {
        spec,
        auto: conn.auto,
        rekey: conn.rekey,
        reauth: conn.reauth,
        dpddelay: (conn.dpdaction != Action::None && !conn.dpddelay.is_zero())
            .then_some(conn.dpddelay),
        dpdaction: conn.dpdaction,
        closeaction: conn.closeaction,
        keyingtries: conn.keyingtries,
        volume: VolumeLimits {
            bytes: conn.lifebytes,
            packets: conn.lifepackets,
            margin_bytes: conn.marginbytes,
            margin_packets: conn.marginpackets,
        },
        inactivity: conn.inactivity.filter(|d| !d.is_zero()),
        marks: marks(conn),
        updown: l.updown.clone(),
        firewall: l.firewall,
        report,
    })
}

/// A conn between two known identities needs its PSK; one whose peer (or own identity, with
/// `left=%any`) is only known at IKE_AUTH needs at least one entry such a peer could be given.
fn check_psk(secrets: &Secrets, local: &Identity, remote: &Identity) -> Result<(), ConnError> {
    let found = if local.is_pattern() || remote.is_pattern() {
        secrets.candidates(local, remote).next().is_some()
    } else {
        secrets.lookup(local, remote).is_some()
    };
    match found {
        true => Ok(()),
        false if local.is_pattern() || remote.is_pattern() => Err(ConnError::NoPskForAnyPeer {
            local: local.clone(),
            remote: remote.clone(),
        }),
        false => Err(ConnError::NoPsk {
            local: local.clone(),
            remote: remote.clone(),
        }),
    }
}

fn host_nets(end: &End) -> Vec<IpNet> {
    end.addr().map(IpNet::from).into_iter().collect()
}

/// The wire identity for a configured one (`None` for `%any`).
pub fn identification(id: &Identity) -> Option<Identification> {
    id.id_type().map(|t| Identification {
        id_type: IdType(t),
        data: id.data(),
    })
}

/// Text form of a wire identity, as in ipsec.conf.
pub fn fmt_identification(id: &Identification) -> String {
    id.to_string()
}

fn selectors(nets: &[IpNet], pp: &ProtoPort) -> Vec<TrafficSelector> {
    let (start_port, end_port) = pp.ports.unwrap_or((0, u16::MAX));
    nets.iter()
        .map(|n| TrafficSelector {
            ts_type: match n {
                IpNet::V4(_) => TsType::IPV4_ADDR_RANGE,
                IpNet::V6(_) => TsType::IPV6_ADDR_RANGE,
            },
            ip_protocol: pp.proto.unwrap_or(0),
            start_port,
            end_port,
            start_addr: n.network(),
            end_addr: n.broadcast(),
        })
        .collect()
}

/// A conn's configured selectors; none (the address of the IKE SA, or a virtual IP) is
/// `dynamic`, as strongSwan shows it.
fn fmt_conn_ts(ts: &[TrafficSelector]) -> Vec<String> {
    if ts.is_empty() {
        vec!["dynamic".to_string()]
    } else {
        ts.iter().map(fmt_ts).collect()
    }
}

/// `10.1.0.0/24`, `10.1.0.1/32`, `10.0.0.1-10.0.0.9`, with `[proto/ports]` when restricted.
pub fn fmt_ts(ts: &TrafficSelector) -> String {
    let cidr = (0..=128u8).rev().find_map(|len| {
        let net = IpNet::new(ts.start_addr, len).ok()?.trunc();
        (net.network() == ts.start_addr && net.broadcast() == ts.end_addr).then_some(net)
    });
    let mut s = match cidr {
        Some(net) => net.to_string(),
        None => format!("{}-{}", ts.start_addr, ts.end_addr),
    };
    if ts.ip_protocol != 0 || ts.start_port != 0 || ts.end_port != u16::MAX {
        let ports = if ts.start_port == ts.end_port {
            ts.start_port.to_string()
        } else {
            format!("{}-{}", ts.start_port, ts.end_port)
        };
        s.push_str(&format!("[{}/{ports}]", ts.ip_protocol));
    }
    s
}

/// Converts configured proposals. Algorithms the user wrote must all be supported (else a
/// clear error naming them); strongSwan's default proposals, appended when not strict, are
/// filtered down to what is supported.
fn proposals<T>(
    configured: &Proposals,
    proto: Protocol,
    convert: fn(&Proposal, bool) -> Result<Option<T>, ConnError>,
) -> Result<Vec<T>, ConnError> {
    let mut out = Vec::new();
    if configured.configured {
        for p in &configured.list {
            if let Some(t) = convert(p, true)? {
                out.push(t);
            }
        }
    }
    if !configured.configured || !configured.strict {
        for p in &Proposals::default_for(proto).list {
            if let Some(t) = convert(p, false)? {
                out.push(t);
            }
        }
    }
    if out.is_empty() {
        return Err(ConnError::NoSupportedProposal(proto));
    }
    Ok(out)
}

/// Maps IANA numbers with `from`; with `strict` an unknown one is an error, else skipped.
fn map_ids<I: Copy, T>(
    ids: &[I],
    strict: bool,
    what: &'static str,
    from: impl Fn(I) -> Option<T>,
    show: impl Fn(I) -> String,
) -> Result<Vec<T>, ConnError> {
    let mut out = Vec::new();
    for id in ids {
        match from(*id) {
            Some(t) => out.push(t),
            None if strict => {
                return Err(ConnError::UnsupportedAlgorithm {
                    what,
                    shown: show(*id),
                });
            }
            None => {}
        }
    }
    Ok(out)
}

fn encrs(p: &Proposal, strict: bool) -> Result<Vec<Encr>, ConnError> {
    map_ids(
        &p.encr,
        strict,
        "encryption",
        |(id, bits)| Encr::from_id(id, bits),
        |(id, bits)| match bits {
            Some(b) => format!("ENCR {id} ({b}-bit key)"),
            None => format!("ENCR {id}"),
        },
    )
}

fn integs(p: &Proposal, strict: bool) -> Result<Vec<Integ>, ConnError> {
    map_ids(&p.integ, strict, "integrity", Integ::from_id, |id| {
        format!("INTEG {id}")
    })
}

fn dh_groups(p: &Proposal, strict: bool) -> Result<Vec<DhGroup>, ConnError> {
    map_ids(&p.dh, strict, "DH group", DhGroup::from_id, |id| {
        format!("DH group {id}")
    })
}

fn ike_proposal(p: &Proposal, strict: bool) -> Result<Option<IkeProposal>, ConnError> {
    let encr = encrs(p, strict)?;
    let integ = integs(p, strict)?;
    let prf = map_ids(&p.prf, strict, "PRF", Prf::from_id, |id| {
        format!("PRF {id}")
    })?;
    let dh = dh_groups(p, strict)?;
    let aead = encr.iter().all(|e| e.is_aead());
    let complete =
        !encr.is_empty() && !prf.is_empty() && !dh.is_empty() && (aead || !integ.is_empty());
    Ok(complete.then_some(IkeProposal {
        encr,
        integ,
        prf,
        dh,
    }))
}

fn esp_proposal(p: &Proposal, strict: bool) -> Result<Option<EspProposal>, ConnError> {
    let encr = encrs(p, strict)?;
    let integ = integs(p, strict)?;
    let dh = dh_groups(p, strict)?;
    let aead = encr.iter().all(|e| e.is_aead());
    let complete = !encr.is_empty() && (aead || !integ.is_empty());
    let esn = p.esn.contains(&esn::ESN) && !p.esn.contains(&esn::NO_ESN);
    Ok(complete.then_some(EspProposal {
        protocol: IpsecProto::Esp,
        encr,
        integ,
        esn,
        dh,
    }))
}

fn ah_proposal(p: &Proposal, strict: bool) -> Result<Option<EspProposal>, ConnError> {
    let integ = integs(p, strict)?;
    let dh = dh_groups(p, strict)?;
    let esn = p.esn.contains(&esn::ESN) && !p.esn.contains(&esn::NO_ESN);
    Ok((!integ.is_empty()).then_some(EspProposal {
        protocol: IpsecProto::Ah,
        encr: Vec::new(),
        integ,
        esn,
        dh,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::conn::NoDns;
    use crate::config::load::load_str;
    use crate::config::source::{MemResolver, SourceFile};

    fn load(conf: &str, secrets: &str) -> (Config, Secrets) {
        let src = |name: &str, text: &str| SourceFile {
            name: name.into(),
            text: text.into(),
            mode: Some(0o600),
        };
        let l = load_str(
            &src("ipsec.conf", conf),
            &src("ipsec.secrets", secrets),
            &MemResolver::default(),
            &NoDns,
        );
        assert!(!l.diagnostics.has_errors(), "{:?}", l.diagnostics);
        (l.config, l.secrets)
    }

    const CONF: &str = "conn hh\n\tleft=10.9.0.1\n\tright=10.9.0.2\n\tauthby=secret\n\ttype=transport\n\tike=aes128-sha256-x25519!\n\tesp=aes128gcm16!\n\tauto=add\n";
    const SECRETS: &str = "10.9.0.1 10.9.0.2 : PSK \"k3y\"\n";

    #[test]
    fn local_side_is_the_local_address() {
        let (cfg, sec) = load(CONF, SECRETS);
        let mut reqids = Reqids::default();
        let is_bob = |a: IpAddr| a == "10.9.0.2".parse::<IpAddr>().unwrap();
        let conns = build_conns(&cfg, &sec, &is_bob, &|_| None, &mut reqids).unwrap();
        let c = &conns[0];
        assert_eq!(c.spec.local_addr, Some("10.9.0.2".parse().unwrap()));
        assert_eq!(c.spec.remote_addr, Some("10.9.0.1".parse().unwrap()));
        let local_id = c.spec.local_id.clone().unwrap();
        assert_eq!(fmt_identification(&local_id), "10.9.0.2");
        let peer = Identification::from_ip("10.9.0.1".parse().unwrap());
        assert_eq!(&c.spec.psk.get(&local_id, Some(&peer)).unwrap()[..], b"k3y");
        assert_eq!(c.spec.mode, Mode::Transport);
        assert_eq!(c.report.local_ts, vec!["10.9.0.2/32".to_string()]);
        assert_eq!(c.spec.reqid, REQID_MIN + 1);
        assert_eq!(c.spec.ike_proposals.len(), 1);
        assert!(c.spec.esp_proposals[0].integ.is_empty());
        assert!(!format!("{:?}", c.spec).contains("k3y"));
    }

    #[test]
    fn ah_conn_gets_ah_proposals_only() {
        let (cfg, sec) = load(&CONF.replace("esp=aes128gcm16!", "ah=sha1!"), SECRETS);
        let is_alice = |a: IpAddr| a == "10.9.0.1".parse::<IpAddr>().unwrap();
        let conns = build_conns(&cfg, &sec, &is_alice, &|_| None, &mut Reqids::default()).unwrap();
        let p = &conns[0].spec.esp_proposals;
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].protocol, IpsecProto::Ah);
        assert_eq!(
            (p[0].encr.as_slice(), p[0].integ.as_slice()),
            (&[][..], &[Integ::HmacSha1_96][..])
        );
        assert_eq!(conns[0].spec.child_protocol(), IpsecProto::Ah);
        // Without `!` strongSwan's default AH proposal follows.
        let (cfg, sec) = load(&CONF.replace("esp=aes128gcm16!", "ah=sha256"), SECRETS);
        let conns = build_conns(&cfg, &sec, &is_alice, &|_| None, &mut Reqids::default()).unwrap();
        let p = &conns[0].spec.esp_proposals;
        assert_eq!(p.len(), 2);
        assert!(
            p.iter()
                .all(|p| p.protocol == IpsecProto::Ah && p.encr.is_empty())
        );
    }

    #[test]
    fn foreign_conn_and_missing_psk_are_errors() {
        let (cfg, sec) = load(CONF, SECRETS);
        let mut reqids = Reqids::default();
        let errs = build_conns(&cfg, &sec, &|_| false, &|_| None, &mut reqids).unwrap_err();
        assert_eq!(
            errs.0[0].to_string(),
            "conn hh: neither left (10.9.0.1) nor right (10.9.0.2) is an address of this host"
        );
        let (cfg, sec) = load(CONF, "1.2.3.4 : PSK \"x\"\n");
        let errs = build_conns(&cfg, &sec, &|_| true, &|_| None, &mut reqids).unwrap_err();
        assert!(
            matches!(errs.0[0].error, ConnError::NoPsk { .. }),
            "{errs:?}"
        );
        assert_eq!(
            errs.0[0].to_string(),
            "conn hh: no PSK in ipsec.secrets for 10.9.0.1 <-> 10.9.0.2"
        );
    }

    const RW_CONF: &str = "conn rw\n\tleft=%defaultroute\n\tleftsubnet=10.1.0.0/16\n\tright=%any\n\tauthby=secret\n\tauto=add\n";

    #[test]
    fn road_warrior_keys_are_looked_up_by_the_peer_identity() {
        let secrets = "carol@example.org : PSK \"carol-key\"\n192.0.2.100 : PSK \"dave-key\"\n";
        let (cfg, sec) = load(RW_CONF, secrets);
        let conns = build_conns(&cfg, &sec, &|_| false, &|_| None, &mut Reqids::default()).unwrap();
        let spec = &conns[0].spec;
        // left=%defaultroute without leftid: the identity is the IKE SA's local address
        assert_eq!(spec.local_id, None);
        assert_eq!(spec.remote_id, None);
        let gw = Identification::from_ip("10.1.0.1".parse().unwrap());
        let key = |peer: Identification| {
            spec.psk
                .get(&gw, Some(&peer))
                .map(|k| String::from_utf8(k.to_vec()).unwrap())
        };
        assert_eq!(
            key(Identification::rfc822("carol@example.org")).unwrap(),
            "carol-key"
        );
        let dave = Identification::from_ip("192.0.2.100".parse().unwrap());
        assert_eq!(key(dave).unwrap(), "dave-key");
        // a client without an entry gets no key, not another client's
        assert_eq!(key(Identification::rfc822("eve@example.org")), None);
        assert_eq!(
            key(Identification {
                id_type: IdType(9),
                data: vec![1]
            }),
            None
        );
    }

    #[test]
    fn defaultroute_client_takes_the_route_source_to_its_peer() {
        let conf = "conn home\n\tleft=%defaultroute\n\tleftid=carol@example.org\n\tright=192.0.2.1\n\tauthby=secret\n\tauto=add\n";
        let (cfg, sec) = load(conf, "carol@example.org : PSK \"k\"\n");
        let route = |peer: IpAddr| {
            (peer == IpAddr::from([192, 0, 2, 1])).then(|| IpAddr::from([10, 0, 0, 5]))
        };
        let conns = build_conns(&cfg, &sec, &|_| false, &route, &mut Reqids::default()).unwrap();
        assert_eq!(conns[0].spec.local_addr, Some(IpAddr::from([10, 0, 0, 5])));
        assert_eq!(
            conns[0].spec.local_id,
            Some(Identification::rfc822("carol@example.org"))
        );
        // Without leftid the ID is that address, and the PSK must exist for it.
        let conf2 = conf.replace("\tleftid=carol@example.org\n", "");
        let (cfg, sec) = load(&conf2, "10.0.0.6 : PSK \"k\"\n");
        let errs = build_conns(&cfg, &sec, &|_| false, &route, &mut Reqids::default());
        assert_eq!(
            errs.unwrap_err().0[0].to_string(),
            "conn home: no PSK in ipsec.secrets for 10.0.0.5 <-> 192.0.2.1"
        );
        // A gateway answering anyone keeps %any: its address is where each request arrives.
        let (cfg, sec) = load(RW_CONF, "carol@example.org : PSK \"k\"\n");
        let conns = build_conns(&cfg, &sec, &|_| false, &route, &mut Reqids::default()).unwrap();
        assert_eq!(conns[0].spec.local_addr, None);
    }

    #[test]
    fn any_peer_conn_needs_a_usable_secret() {
        let (cfg, sec) = load(RW_CONF, "");
        let errs =
            build_conns(&cfg, &sec, &|_| false, &|_| None, &mut Reqids::default()).unwrap_err();
        assert_eq!(
            errs.0[0].to_string(),
            "conn rw: no PSK in ipsec.secrets that a peer %any of %any could use"
        );
        let conf = RW_CONF.replace(
            "right=%any",
            "right=%any\n\trightid=*@example.org\n\tleftid=@gw",
        );
        let (cfg, sec) = load(&conf, "carol@example.com : PSK \"x\"\n");
        assert!(build_conns(&cfg, &sec, &|_| false, &|_| None, &mut Reqids::default()).is_err());
        let (cfg, sec) = load(&conf, "carol@example.org : PSK \"x\"\n");
        let conns = build_conns(&cfg, &sec, &|_| false, &|_| None, &mut Reqids::default()).unwrap();
        assert_eq!(
            conns[0].spec.remote_id,
            Some(Identification::rfc822("*@example.org"))
        );
    }

    #[test]
    fn every_refused_conn_is_reported_on_its_own_line() {
        let conf = format!("{CONF}{}", CONF.replace("conn hh", "conn hh2"));
        let (cfg, sec) = load(&conf, SECRETS);
        let errs =
            build_conns(&cfg, &sec, &|_| false, &|_| None, &mut Reqids::default()).unwrap_err();
        let why = "neither left (10.9.0.1) nor right (10.9.0.2) is an address of this host";
        assert_eq!(errs.to_string(), format!("conn hh: {why}\nconn hh2: {why}"));
    }

    #[test]
    fn reqid_outside_our_range_is_refused() {
        let conf = CONF.replace("auto=add", "auto=add\n\treqid=7");
        let (cfg, sec) = load(&conf, SECRETS);
        let errs =
            build_conns(&cfg, &sec, &|_| true, &|_| None, &mut Reqids::default()).unwrap_err();
        assert_eq!(
            errs.0[0].to_string(),
            "conn hh: reqid=7 is outside the range ikev2d owns (0x4b320000-0x4b32ffff)"
        );
    }

    #[test]
    fn unsupported_algorithm_is_named() {
        let conf = CONF.replace("esp=aes128gcm16!", "esp=aes128ccm16!");
        let (cfg, sec) = load(&conf, SECRETS);
        let errs =
            build_conns(&cfg, &sec, &|_| true, &|_| None, &mut Reqids::default()).unwrap_err();
        assert_eq!(
            errs.0[0].error,
            ConnError::UnsupportedAlgorithm {
                what: "encryption",
                shown: "ENCR 16 (128-bit key)".into()
            }
        );
        assert_eq!(
            errs.0[0].to_string(),
            "conn hh: encryption algorithm ENCR 16 (128-bit key) is not supported"
        );
    }

    #[test]
    fn ts_formatting() {
        let sel = selectors(&["10.1.1.0/24".parse().unwrap()], &ProtoPort::default());
        assert_eq!(fmt_ts(&sel[0]), "10.1.1.0/24");
        let mut t = sel[0];
        t.end_addr = "10.1.1.9".parse().unwrap();
        t.ip_protocol = 6;
        t.start_port = 80;
        t.end_port = 80;
        assert_eq!(fmt_ts(&t), "10.1.1.0-10.1.1.9[6/80]");
    }
}
