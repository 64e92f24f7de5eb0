//! The XFRM netlink backend.

use std::net::IpAddr;

use netlink_packet_xfrm::{
    self as x, Address, Alg, AlgAead, AlgAuth, EncapTmpl, ReplayEsn, UserPolicyId, UserPolicyInfo,
    UserSaId, UserSaInfo, UserTemplate, XfrmAttrs, XfrmMessage, policy, state,
};

use super::addr::{AddrError, RouteSocket};
use super::error::{KernelError, Target};
use super::ipsec::{Ipsec, XfrmBackend};
use super::netlink::{NlError, NlSocket};
use super::spec::{
    Dir, PolicyAction, PolicyKey, PolicySpec, SHUNT_PRIORITIES, SaId, SaSpec, Selector,
};
use super::types::{
    CBC_NAME, Counters, EspCrypto, FlushReport, GCM_ICV_BITS, GCM_NAME, Integrity, IpsecProto,
    KeyBytes, Lifetime, Mark, Mode, ShuntAction, is_our_reqid,
};

/// Largest replay window the kernel accepts (XFRMA_REPLAY_ESN_MAX bytes of bitmap).
const MAX_REPLAY_WINDOW: u32 = 4096 * 8;
/// Replay windows up to this size fit the legacy `replay_window` byte field.
const LEGACY_REPLAY_WINDOW: u32 = 32;

/// XFRM netlink backend (one request socket).
#[derive(Debug)]
pub struct NetlinkBackend {
    nl: NlSocket,
    /// rtnetlink, opened on the first virtual IP.
    route: Option<RouteSocket>,
}

/// The real kernel, through XFRM netlink.
pub type XfrmKernel = Ipsec<NetlinkBackend>;

impl XfrmKernel {
    /// Opens the netlink socket (needs CAP_NET_ADMIN for anything but reading).
    pub fn open() -> Result<Self, KernelError> {
        let nl = NlSocket::open().map_err(|e| KernelError::io(Target::SaTable, &e))?;
        Ok(Self::with_backend(NetlinkBackend { nl, route: None }))
    }
}

pub(crate) fn family(ip: &IpAddr) -> u16 {
    if ip.is_ipv4() {
        x::AF_INET
    } else {
        x::AF_INET6
    }
}

pub(crate) fn ip_of(addr: &Address, family: u16) -> Option<IpAddr> {
    match family {
        x::AF_INET => Some(IpAddr::V4(addr.to_ipv4())),
        x::AF_INET6 => Some(IpAddr::V6(addr.to_ipv6())),
        _ => None,
    }
}

fn mode_number(mode: Mode) -> u8 {
    match mode {
        Mode::Transport => x::XFRM_MODE_TRANSPORT,
        Mode::Tunnel => x::XFRM_MODE_TUNNEL,
    }
}

fn dir_number(dir: Dir) -> u8 {
    match dir {
        Dir::In => x::XFRM_POLICY_IN,
        Dir::Out => x::XFRM_POLICY_OUT,
        Dir::Fwd => x::XFRM_POLICY_FWD,
    }
}

fn xfrm_selector(sel: &Selector) -> x::Selector {
    let mut s = x::Selector::default();
    s.source_prefix(&sel.src.addr(), sel.src.prefix_len());
    s.destination_prefix(&sel.dst.addr(), sel.dst.prefix_len());
    s.proto = sel.proto;
    s.sport = sel.sport;
    s.sport_mask = sel.sport_mask;
    s.dport = sel.dport;
    s.dport_mask = sel.dport_mask;
    s
}

fn alg_name(name: &str) -> [u8; 64] {
    let mut out = [0u8; 64];
    for (o, b) in out.iter_mut().zip(name.bytes().take(63)) {
        *o = b;
    }
    out
}

fn key_bits(key: &KeyBytes) -> u32 {
    u32::try_from(key.len().saturating_mul(8)).unwrap_or(u32::MAX)
}

/// Algorithm names of an SA, for error messages.
fn alg_names(crypto: &EspCrypto) -> String {
    match crypto {
        EspCrypto::AesGcm16 { .. } => GCM_NAME.to_string(),
        EspCrypto::AesCbc { integ, .. } => format!("{CBC_NAME} + {}", integ.alg.kernel_name()),
        EspCrypto::Ah { integ } => integ.alg.kernel_name().to_string(),
    }
}

fn crypto_attrs(crypto: &EspCrypto) -> Vec<XfrmAttrs> {
    match crypto {
        EspCrypto::AesGcm16 { key } => vec![XfrmAttrs::EncryptionAlgAead(AlgAead {
            alg_name: alg_name(GCM_NAME),
            alg_key_len: key_bits(key),
            alg_icv_len: GCM_ICV_BITS,
            alg_key: key.expose().to_vec(),
        })],
        EspCrypto::AesCbc { key, integ } => vec![
            XfrmAttrs::EncryptionAlg(Alg {
                alg_name: alg_name(CBC_NAME),
                alg_key_len: key_bits(key),
                alg_key: key.expose().to_vec(),
            }),
            auth_trunc(integ),
        ],
        EspCrypto::Ah { integ } => vec![auth_trunc(integ)],
    }
}

/// XFRMA_ALG_AUTH_TRUNC: the HMAC with its ICV truncation (RFC 2404, RFC 4868).
fn auth_trunc(integ: &Integrity) -> XfrmAttrs {
    XfrmAttrs::AuthenticationAlgTrunc(AlgAuth {
        alg_name: alg_name(integ.alg.kernel_name()),
        alg_key_len: key_bits(&integ.key),
        alg_trunc_len: integ.alg.trunc_bits(),
        alg_key: integ.key.expose().to_vec(),
    })
}

/// SA flags: an AH header over IPv4 is padded to 32 bits, as RFC 4302 §2.2 asks (and
/// strongSwan does). Linux pads it to 64 bits otherwise: with HMAC-SHA2-256-128's 16-byte ICV
/// it would send and expect a 32-byte header where such a peer uses 28 bytes, and every ICV
/// check fails (seen in the lab). IPv6 keeps the 64-bit alignment RFC 4302 requires there.
fn state_flags(proto: IpsecProto, src: &IpAddr) -> u8 {
    if proto == IpsecProto::Ah && src.is_ipv4() {
        x::XFRM_STATE_ALIGN4
    } else {
        0
    }
}

fn limit(value: u64) -> u64 {
    if value == 0 { x::XFRM_INF } else { value }
}

fn lifetime_cfg(l: &Lifetime) -> x::LifetimeConfig {
    x::LifetimeConfig {
        soft_byte_limit: limit(l.soft_bytes),
        hard_byte_limit: limit(l.hard_bytes),
        soft_packet_limit: limit(l.soft_packets),
        hard_packet_limit: limit(l.hard_packets),
        soft_add_expires_seconds: l.soft_secs,
        hard_add_expires_seconds: l.hard_secs,
        soft_use_expires_seconds: 0,
        hard_use_expires_seconds: 0,
    }
}

fn sa_target(id: SaId) -> Target {
    Target::Sa {
        dst: id.dst,
        spi: id.spi,
    }
}

/// The XFRMA_MARK attribute of `mark`, if any.
fn mark_attr(mark: Option<Mark>) -> Vec<XfrmAttrs> {
    mark.map(|m| {
        XfrmAttrs::Mark(x::Mark {
            value: m.value,
            mask: m.mask,
        })
    })
    .into_iter()
    .collect()
}

/// XFRM_MSG_NEWPOLICY (or UPDPOLICY with `replace`) for `spec`.
fn policy_message(spec: &PolicySpec, replace: bool) -> XfrmMessage {
    let (action, templates) = match spec.action {
        PolicyAction::Ipsec(t) => {
            let mut tmpl = UserTemplate::default();
            tmpl.source(&t.src);
            tmpl.destination(&t.dst);
            tmpl.protocol(t.proto.number());
            tmpl.mode(mode_number(t.mode));
            tmpl.reqid(t.reqid);
            (x::XFRM_POLICY_ALLOW, vec![XfrmAttrs::Template(vec![tmpl])])
        }
        PolicyAction::Shunt(ShuntAction::Pass) => (x::XFRM_POLICY_ALLOW, vec![]),
        PolicyAction::Shunt(ShuntAction::Drop) => (x::XFRM_POLICY_BLOCK, vec![]),
    };
    let info = UserPolicyInfo {
        selector: xfrm_selector(&spec.key.sel),
        priority: spec.priority,
        direction: dir_number(spec.key.dir),
        action,
        share: x::XFRM_SHARE_ANY,
        ..UserPolicyInfo::default()
    };
    let mut nlas = templates;
    nlas.extend(mark_attr(spec.key.mark));
    let body = policy::ModifyMessage {
        user_policy_info: info,
        nlas,
    };
    if replace {
        XfrmMessage::UpdatePolicy(body)
    } else {
        XfrmMessage::AddPolicy(body)
    }
}

/// XFRM_MSG_NEWSA for `sa`.
fn sa_message(sa: &SaSpec<'_>) -> Result<XfrmMessage, KernelError> {
    let target = || sa_target(sa.id);
    let mut info = UserSaInfo::default();
    info.source(&sa.src);
    info.destination(&sa.id.dst);
    info.id.spi = sa.id.spi;
    info.id.proto = sa.crypto.proto().number();
    info.flags = state_flags(sa.crypto.proto(), &sa.src);
    info.reqid = sa.reqid;
    info.mode = mode_number(sa.mode);
    info.lifetime_cfg = lifetime_cfg(&sa.lifetime);
    match sa.selector {
        Some(sel) => info.selector = xfrm_selector(&sel),
        None => info.selector.family = family(&sa.src),
    }
    let mut nlas = crypto_attrs(sa.crypto);
    nlas.extend(mark_attr(sa.mark));
    if sa.replay_window > MAX_REPLAY_WINDOW {
        return Err(KernelError::Protocol {
            target: target(),
            reason: format!(
                "replay window {} exceeds the kernel maximum {MAX_REPLAY_WINDOW}",
                sa.replay_window
            ),
        });
    } else if sa.replay_window > LEGACY_REPLAY_WINDOW {
        let words = sa.replay_window.div_ceil(32);
        nlas.push(XfrmAttrs::ReplayStateEsn(ReplayEsn {
            bmp_len: words,
            replay_window: sa.replay_window,
            bmp: vec![0; usize::try_from(words).unwrap_or(0)],
            ..ReplayEsn::default()
        }));
    } else {
        info.replay_window = u8::try_from(sa.replay_window).unwrap_or(u8::MAX);
    }
    if let Some((sport, dport)) = sa.encap {
        nlas.push(XfrmAttrs::EncapsulationTemplate(EncapTmpl {
            encap_type: x::UDP_ENCAP_ESPINUDP,
            encap_sport: sport,
            encap_dport: dport,
            encap_oa: Address::default(),
        }));
    }
    let body = state::ModifyMessage {
        user_sa_info: info,
        nlas,
    };
    Ok(XfrmMessage::AddSa(body))
}

fn sa_id(id: SaId, proto: IpsecProto) -> UserSaId {
    let mut u = UserSaId::default();
    u.destination(&id.dst);
    u.spi = id.spi;
    u.proto = proto.number();
    u
}

impl NetlinkBackend {
    fn call(
        &mut self,
        msg: XfrmMessage,
        target: impl Fn() -> Target,
        algs: Option<String>,
    ) -> Result<Vec<XfrmMessage>, KernelError> {
        self.nl
            .request(msg, false)
            .map_err(|e| nl_error(e, target(), algs))
    }

    fn address(&mut self, add: bool, addr: IpAddr) -> Result<(), KernelError> {
        let target = Target::Address(addr);
        let route = match &mut self.route {
            Some(r) => r,
            None => self
                .route
                .insert(RouteSocket::open().map_err(|e| KernelError::io(target.clone(), &e))?),
        };
        route.address(add, addr).map_err(|e| match e {
            AddrError::Io(io) => KernelError::io(target, &io),
            AddrError::Errno(errno) => KernelError::from_errno(target, errno, None),
        })
    }

    fn dump(&mut self, msg: XfrmMessage, target: Target) -> Result<Vec<XfrmMessage>, KernelError> {
        self.nl
            .request(msg, true)
            .map_err(|e| nl_error(e, target, None))
    }
}

fn nl_error(e: NlError, target: Target, algs: Option<String>) -> KernelError {
    match e {
        NlError::Io(io) => KernelError::io(target, &io),
        NlError::Errno(errno) => KernelError::from_errno(target, errno, algs),
        NlError::Decode(reason) => KernelError::Protocol { target, reason },
    }
}

impl XfrmBackend for NetlinkBackend {
    fn add_address(&mut self, addr: IpAddr) -> Result<(), KernelError> {
        self.address(true, addr)
    }

    fn del_address(&mut self, addr: IpAddr) -> Result<(), KernelError> {
        self.address(false, addr)
    }

    fn add_sa(&mut self, sa: &SaSpec<'_>) -> Result<(), KernelError> {
        let msg = sa_message(sa)?;
        self.call(msg, || sa_target(sa.id), Some(alg_names(sa.crypto)))?;
        Ok(())
    }

    fn del_sa(
        &mut self,
        id: SaId,
        proto: IpsecProto,
        mark: Option<Mark>,
    ) -> Result<(), KernelError> {
        let msg = XfrmMessage::DeleteSa(state::DelGetMessage {
            user_sa_id: sa_id(id, proto),
            nlas: mark_attr(mark),
        });
        self.call(msg, || sa_target(id), None)?;
        Ok(())
    }

    fn sa_counters(
        &mut self,
        id: SaId,
        proto: IpsecProto,
        mark: Option<Mark>,
    ) -> Result<Counters, KernelError> {
        let msg = XfrmMessage::GetSa(state::DelGetMessage {
            user_sa_id: sa_id(id, proto),
            nlas: mark_attr(mark),
        });
        let answers = self.call(msg, || sa_target(id), None)?;
        answers
            .iter()
            .find_map(|a| match a {
                XfrmMessage::AddSa(m) => Some(Counters {
                    bytes: m.user_sa_info.lifetime_cur.bytes,
                    packets: m.user_sa_info.lifetime_cur.packets,
                }),
                _ => None,
            })
            .ok_or_else(|| KernelError::Protocol {
                target: sa_target(id),
                reason: "no SA in the GETSA answer".into(),
            })
    }

    fn put_policy(&mut self, spec: &PolicySpec, replace: bool) -> Result<(), KernelError> {
        self.call(
            policy_message(spec, replace),
            || Target::Policy(Box::new(spec.key)),
            None,
        )?;
        Ok(())
    }

    fn del_policy(&mut self, key: &PolicyKey) -> Result<(), KernelError> {
        let msg = XfrmMessage::DeletePolicy(policy::DelGetMessage {
            user_policy_id: UserPolicyId {
                selector: xfrm_selector(&key.sel),
                index: 0,
                direction: dir_number(key.dir),
            },
            nlas: mark_attr(key.mark),
        });
        self.call(msg, || Target::Policy(Box::new(*key)), None)?;
        Ok(())
    }

    fn flush_ours(&mut self) -> Result<FlushReport, KernelError> {
        let mut report = FlushReport::default();
        let mut errors = Vec::new();
        let policies = self.dump(
            XfrmMessage::GetPolicy(policy::DelGetMessage::default()),
            Target::PolicyTable,
        )?;
        for p in policies {
            let XfrmMessage::AddPolicy(m) = p else {
                continue;
            };
            let info = &m.user_policy_info;
            let mut templates = m.nlas.iter().filter_map(|a| match a {
                XfrmAttrs::Template(ts) => Some(ts),
                _ => None,
            });
            let ours = match templates.next() {
                Some(ts) => ts.iter().any(|t| is_our_reqid(t.reqid)),
                // A shunt: no template, a priority in our band.
                None => SHUNT_PRIORITIES.contains(&info.priority),
            };
            // Per-socket policies (direction >= XFRM_POLICY_MAX) have no templates.
            if !ours || info.direction > x::XFRM_POLICY_FWD {
                continue;
            }
            let mark = m.nlas.iter().find_map(|a| match a {
                XfrmAttrs::Mark(mark) => Some(XfrmAttrs::Mark(*mark)),
                _ => None,
            });
            let msg = XfrmMessage::DeletePolicy(policy::DelGetMessage {
                user_policy_id: UserPolicyId {
                    selector: info.selector,
                    index: info.index,
                    direction: info.direction,
                },
                nlas: mark.into_iter().collect(),
            });
            match self.call(msg, || Target::PolicyTable, None) {
                Ok(_) => report.policies += 1,
                Err(e) if e.is_not_found() => {}
                Err(e) => errors.push(e),
            }
        }
        let sas = self.dump(
            XfrmMessage::GetDumpSa(state::GetDumpMessage::default()),
            Target::SaTable,
        )?;
        for s in sas {
            let XfrmMessage::AddSa(m) = s else {
                continue;
            };
            let info = &m.user_sa_info;
            // Acquire states (SPI 0, made by the kernel for a trap hit) cannot be addressed
            // by DELSA; they vanish when the SA is installed or after xfrm_acq_expires (30 s).
            if !is_our_reqid(info.reqid) || info.id.spi == 0 {
                continue;
            }
            let Some(dst) = ip_of(&info.id.daddr, info.family) else {
                continue;
            };
            let id = SaId {
                dst,
                spi: info.id.spi,
            };
            // The dump's own protocol number (ESP, AH or another tool's).
            let mut user_id = sa_id(id, IpsecProto::Esp);
            user_id.proto = info.id.proto;
            let msg = XfrmMessage::DeleteSa(state::DelGetMessage {
                user_sa_id: user_id,
                nlas: vec![],
            });
            match self.call(msg, || sa_target(id), None) {
                Ok(_) => report.sas += 1,
                Err(e) if e.is_not_found() => {}
                Err(e) => errors.push(e),
            }
        }
        KernelError::collect(Target::SaTable, errors).map(|()| report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::IntegAlg;

    #[test]
    fn ah_sa_is_proto_51_with_a_truncated_hmac_only() {
        for (alg, name, trunc) in [
            (IntegAlg::HmacSha1_96, "hmac(sha1)", 96),
            (IntegAlg::HmacSha256_128, "hmac(sha256)", 128),
            (IntegAlg::HmacSha384_192, "hmac(sha384)", 192),
            (IntegAlg::HmacSha512_256, "hmac(sha512)", 256),
        ] {
            let crypto = EspCrypto::Ah {
                integ: Integrity {
                    alg,
                    key: KeyBytes::new(vec![7; alg.key_len()]),
                },
            };
            let attrs = crypto_attrs(&crypto);
            let [XfrmAttrs::AuthenticationAlgTrunc(a)] = attrs.as_slice() else {
                panic!("AH carries exactly one AUTH_TRUNC attribute");
            };
            assert_eq!(a.alg_name, alg_name(name));
            let key_bits = u32::try_from(alg.key_len() * 8).unwrap();
            assert_eq!((a.alg_trunc_len, a.alg_key_len), (trunc, key_bits));
            assert_eq!(crypto.proto().number(), 51);
        }
        let id = SaId {
            dst: "10.0.0.1".parse().unwrap(),
            spi: 0xc000_0001,
        };
        assert_eq!(sa_id(id, IpsecProto::Ah).proto, 51);
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(state_flags(IpsecProto::Ah, &v4), x::XFRM_STATE_ALIGN4);
        assert_eq!(state_flags(IpsecProto::Ah, &v6), 0);
        assert_eq!(state_flags(IpsecProto::Esp, &v4), 0);
        assert_eq!(sa_id(id, IpsecProto::Esp).proto, 50);
    }

    fn marks_of(nlas: &[XfrmAttrs]) -> Vec<(u32, u32)> {
        nlas.iter()
            .filter_map(|a| match a {
                XfrmAttrs::Mark(m) => Some((m.value, m.mask)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn policy_and_sa_messages_carry_the_mark_and_the_shunt_action() {
        use crate::kernel::spec::Template;
        let sel = Selector::hosts("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let mark = Mark {
            value: 0x2a,
            mask: 0xff,
        };
        let tmpl = Template {
            src: "10.0.0.1".parse().unwrap(),
            dst: "10.0.0.2".parse().unwrap(),
            reqid: crate::kernel::REQID_MIN + 1,
            mode: Mode::Tunnel,
            proto: IpsecProto::Esp,
        };
        let ipsec = PolicySpec {
            key: PolicyKey {
                dir: Dir::Out,
                sel,
                mark: Some(mark),
            },
            priority: 199_000,
            action: PolicyAction::Ipsec(tmpl),
        };
        let XfrmMessage::AddPolicy(m) = policy_message(&ipsec, false) else {
            panic!("NEWPOLICY expected");
        };
        assert_eq!(marks_of(&m.nlas), [(0x2a, 0xff)]);
        assert_eq!(m.user_policy_info.action, x::XFRM_POLICY_ALLOW);
        assert!(m.nlas.iter().any(|a| matches!(a, XfrmAttrs::Template(_))));
        let unmarked = PolicySpec {
            key: PolicyKey {
                mark: None,
                ..ipsec.key
            },
            ..ipsec
        };
        let XfrmMessage::UpdatePolicy(m) = policy_message(&unmarked, true) else {
            panic!("UPDPOLICY expected");
        };
        assert!(marks_of(&m.nlas).is_empty());
        for (action, number) in [
            (ShuntAction::Pass, x::XFRM_POLICY_ALLOW),
            (ShuntAction::Drop, x::XFRM_POLICY_BLOCK),
        ] {
            let shunt = PolicySpec {
                priority: *SHUNT_PRIORITIES.end(),
                action: PolicyAction::Shunt(action),
                ..ipsec
            };
            let XfrmMessage::AddPolicy(m) = policy_message(&shunt, false) else {
                panic!("NEWPOLICY expected");
            };
            assert_eq!(m.user_policy_info.action, number);
            assert!(!m.nlas.iter().any(|a| matches!(a, XfrmAttrs::Template(_))));
            assert_eq!(marks_of(&m.nlas), [(0x2a, 0xff)]);
        }
        let crypto = EspCrypto::AesGcm16 {
            key: KeyBytes::new(vec![1; 20]),
        };
        let sa = SaSpec {
            id: SaId {
                dst: tmpl.dst,
                spi: 0xc000_0001,
            },
            src: tmpl.src,
            reqid: tmpl.reqid,
            mode: Mode::Tunnel,
            crypto: &crypto,
            replay_window: 32,
            lifetime: Lifetime::default(),
            encap: None,
            selector: None,
            mark: Some(mark),
        };
        let XfrmMessage::AddSa(m) = sa_message(&sa).unwrap() else {
            panic!("NEWSA expected");
        };
        assert_eq!(marks_of(&m.nlas), [(0x2a, 0xff)]);
        let XfrmMessage::AddSa(m) = sa_message(&SaSpec { mark: None, ..sa }).unwrap() else {
            panic!("NEWSA expected");
        };
        assert!(marks_of(&m.nlas).is_empty());
    }
}
