//! IKE_AUTH with PSK: IDi/[IDr]/AUTH, AUTHENTICATION_FAILED, and the first CHILD_SA.
//!
//! AUTH = prf(prf(PSK, "Key Pad for IKEv2"), `<signed octets>`) where the initiator signs its
//! IKE_SA_INIT request | Nr | prf(SK_pi, IDi body) and the responder its IKE_SA_INIT
//! response | Ni | prf(SK_pr, IDr body).

use std::net::IpAddr;

use rand::CryptoRng;
use std::sync::Arc;
use zeroize::Zeroizing;

use super::child::{self, ChildRequest};
use super::conn::ConnSpec;
use super::error::IkeError;
use super::event::Event;
use super::payloads::{delete_ike_payload, first_error, has_notify, notify};
use super::sa::{Ctx, IkeSa, InitExchange, Path, State};
use crate::config::ident::IdMatch;
use crate::crypto::{psk_auth, verify_psk_auth};
use crate::wire::{
    AuthMethod, AuthPayload, CfgType, ConfigAttrType, ConfigAttribute, ConfigPayload, ExchangeType,
    Identification, NotifyType, Payload,
};

/// Initiator state: IKE_AUTH sent.
pub(crate) struct ExpectAuthResponse {
    init: InitExchange,
    child: ChildRequest,
}

/// Responder state: IKE_SA_INIT answered, waiting for IKE_AUTH.
pub(crate) struct ExpectAuthRequest {
    init: InitExchange,
}

/// Which signed octets an AUTH payload covers.
#[derive(Clone, Copy)]
enum Signer {
    Initiator,
    Responder,
}

fn auth_inputs<'a>(
    sa: &'a IkeSa,
    init: &'a InitExchange,
    who: Signer,
) -> Option<(&'a [u8], &'a [u8], &'a [u8])> {
    let auth = sa.keys.as_ref()?.auth.as_deref()?;
    Some(match who {
        Signer::Initiator => (&init.request, &init.nr, &auth.sk_pi),
        Signer::Responder => (&init.response, &init.ni, &auth.sk_pr),
    })
}

fn make_auth(
    sa: &IkeSa,
    init: &InitExchange,
    who: Signer,
    psk: &[u8],
    id: &Identification,
) -> Option<Payload> {
    let prf = sa.keys.as_ref()?.suite.prf;
    let (msg, nonce, sk_p) = auth_inputs(sa, init, who)?;
    Some(Payload::Auth(AuthPayload {
        method: AuthMethod::SHARED_KEY_MIC,
        data: psk_auth(prf, psk, msg, nonce, sk_p, &id.body_bytes()).to_vec(),
    }))
}

fn check_auth(
    sa: &IkeSa,
    init: &InitExchange,
    who: Signer,
    psk: &[u8],
    id: &Identification,
    auth: &AuthPayload,
) -> bool {
    let Some(keys) = sa.keys.as_ref() else {
        return false;
    };
    let Some((msg, nonce, sk_p)) = auth_inputs(sa, init, who) else {
        return false;
    };
    auth.method == AuthMethod::SHARED_KEY_MIC
        && verify_psk_auth(
            keys.suite.prf,
            psk,
            msg,
            nonce,
            sk_p,
            &id.body_bytes(),
            &auth.data,
        )
}

/// The IDi, IDr and AUTH payloads of an IKE_AUTH message.
struct AuthParts<'a> {
    idi: Option<&'a Identification>,
    idr: Option<&'a Identification>,
    auth: Option<&'a AuthPayload>,
}

impl<'a> AuthParts<'a> {
    fn find(payloads: &'a [Payload]) -> Self {
        let mut parts = Self {
            idi: None,
            idr: None,
            auth: None,
        };
        for p in payloads {
            match p {
                Payload::IdI(i) if parts.idi.is_none() => parts.idi = Some(i),
                Payload::IdR(i) if parts.idr.is_none() => parts.idr = Some(i),
                Payload::Auth(a) if parts.auth.is_none() => parts.auth = Some(a),
                _ => {}
            }
        }
        parts
    }
}

fn established_event<R>(sa: &mut IkeSa, ctx: &mut Ctx<'_, R>, remote_id: &Identification) {
    // IKE_AUTH is done: nothing signs or checks an AUTH payload with these keys again.
    if let Some(keys) = sa.keys.as_mut() {
        keys.auth = None;
    }
    sa.remote_id = Some(remote_id.clone());
    sa.established_at = Some(ctx.now);
    sa.half_open_deadline = None;
    ctx.out.events.push_back(Event::IkeSaEstablished {
        id: sa.id,
        conn: sa.conn.name.clone(),
        role: sa.role,
        local: sa.local,
        remote: sa.remote,
        spi_i: sa.spi_i,
        spi_r: sa.spi_r,
        proposal: sa.keys.as_ref().map(|k| k.suite.name()).unwrap_or_default(),
        nat_detected: sa.nat_detected,
        local_id: sa.conn.local_id_at(sa.local.ip()),
        remote_id: remote_id.clone(),
        exported_keys: sa.keys.as_ref().and_then(|k| k.exported.clone()),
        virtual_ips: sa.rare().virtual_ips.clone(),
        peer_virtual_ips: sa.rare().leases.iter().map(|(_, a)| *a).collect(),
        dns_servers: sa.rare().dns_servers.clone(),
    });
}

/// Initiator: CP(CFG_REQUEST) for the virtual IPs the conn asks for (`leftsourceip=%config`),
/// an empty attribute per family, or the address when a specific one is asked for, and for
/// DNS servers (`leftdns=%config4`), an empty attribute per family.
fn vip_request(conn: &ConnSpec) -> Option<Payload> {
    let addresses = conn.request_vips.iter().map(|a| match a {
        a if !a.is_unspecified() => ConfigAttribute::address(*a),
        IpAddr::V4(_) => ConfigAttribute::request(ConfigAttrType::INTERNAL_IP4_ADDRESS),
        IpAddr::V6(_) => ConfigAttribute::request(ConfigAttrType::INTERNAL_IP6_ADDRESS),
    });
    let dns = conn.request_dns.iter().map(|a| {
        ConfigAttribute::request(match a {
            IpAddr::V4(_) => ConfigAttrType::INTERNAL_IP4_DNS,
            IpAddr::V6(_) => ConfigAttrType::INTERNAL_IP6_DNS,
        })
    });
    let attributes: Vec<ConfigAttribute> = addresses.chain(dns).collect();
    (!attributes.is_empty()).then_some(Payload::Cp(ConfigPayload {
        cfg_type: CfgType::CFG_REQUEST,
        attributes,
    }))
}

/// Initiator: the addresses (`kinds`: the IPv4 and IPv6 attribute types) of the families we
/// asked for (`asked`) in the responder's CFG_REPLY.
fn assigned(payloads: &[Payload], kinds: [ConfigAttrType; 2], asked: &[IpAddr]) -> Vec<IpAddr> {
    payloads
        .iter()
        .filter_map(|p| match p {
            Payload::Cp(cp) if cp.cfg_type == CfgType::CFG_REPLY => Some(cp),
            _ => None,
        })
        .flat_map(|cp| &cp.attributes)
        .filter(|a| kinds.contains(&a.attr_type))
        .filter_map(ConfigAttribute::ip)
        .filter(|a| !a.is_unspecified() && asked.iter().any(|r| r.is_ipv4() == a.is_ipv4()))
        .collect()
}

/// Responder: lease the addresses a CFG_REQUEST asks for, from the first pool of each family
/// the conn has, to the peer's identity; the CP(CFG_REPLY) carrying them and the conn's DNS
/// servers (`rightdns`) of the families asked for, `None` when there is nothing to give (no CP then, the peer keeps its
/// own address), or [`IkeError::PoolExhausted`] (nothing stays leased then).
fn lease_vips<R>(
    sa: &mut IkeSa,
    ctx: &mut Ctx<'_, R>,
    payloads: &[Payload],
    peer: &Identification,
) -> Result<Option<Payload>, IkeError> {
    let Some(request) = payloads.iter().find_map(|p| match p {
        Payload::Cp(cp) if cp.cfg_type == CfgType::CFG_REQUEST => Some(cp),
        _ => None,
    }) else {
        return Ok(None);
    };
    let mut attributes = Vec::new();
    for a in &request.attributes {
        let v6 = match a.attr_type {
            ConfigAttrType::INTERNAL_IP4_ADDRESS => false,
            ConfigAttrType::INTERNAL_IP6_ADDRESS => true,
            _ => continue,
        };
        let Some(pool) = sa
            .conn
            .pools
            .iter()
            .copied()
            .find(|p| p.addr().is_ipv6() == v6)
        else {
            continue;
        };
        if sa.rare().leases.iter().any(|(n, _)| *n == pool) {
            continue;
        }
        match ctx.pools.lease(pool, peer) {
            Some(addr) => {
                sa.rare_mut().leases.push((pool, addr));
                attributes.push(ConfigAttribute::address(addr));
            }
            None => {
                for (net, addr) in sa.rare_mut().leases.drain(..) {
                    ctx.pools.release(net, addr);
                }
                return Err(IkeError::PoolExhausted {
                    pool: pool.to_string(),
                    peer: peer.to_string(),
                });
            }
        }
    }
    // DNS servers of the families asked for.
    let asked = |a: &IpAddr| {
        let kind = match a {
            IpAddr::V4(_) => ConfigAttrType::INTERNAL_IP4_DNS,
            IpAddr::V6(_) => ConfigAttrType::INTERNAL_IP6_DNS,
        };
        request.attributes.iter().any(|r| r.attr_type == kind)
    };
    attributes.extend(
        sa.conn
            .peer_dns
            .iter()
            .filter(|a| asked(a))
            .map(|a| ConfigAttribute {
                attr_type: match a {
                    IpAddr::V4(_) => ConfigAttrType::INTERNAL_IP4_DNS,
                    IpAddr::V6(_) => ConfigAttrType::INTERNAL_IP6_DNS,
                },
                value: match a {
                    IpAddr::V4(v4) => v4.octets().to_vec(),
                    IpAddr::V6(v6) => v6.octets().to_vec(),
                },
            }),
    );
    Ok(
        (!attributes.is_empty()).then_some(Payload::Cp(ConfigPayload {
            cfg_type: CfgType::CFG_REPLY,
            attributes,
        })),
    )
}

/// Initiator: IKE_SA_INIT done; send IKE_AUTH (message ID 1).
pub(crate) fn start<R: CryptoRng>(
    sa: &mut IkeSa,
    ctx: &mut Ctx<'_, R>,
    init: InitExchange,
) -> State {
    let child = match ChildRequest::new(sa, &sa.conn, ctx) {
        Ok(c) => c,
        Err(e) => return sa.fail(ctx, e),
    };
    let local_id = sa.conn.local_id_at(sa.local.ip());
    let psk = match psk_for(sa, &local_id, sa.conn.remote_id.as_ref()) {
        Ok(k) => k,
        Err(e) => return sa.fail(ctx, e),
    };
    let mut payloads = vec![Payload::IdI(local_id.clone())];
    if sa.initial_contact {
        payloads.push(notify(NotifyType::INITIAL_CONTACT, Vec::new()));
    }
    if let Some(r) = sa.conn.idr_to_send() {
        payloads.push(Payload::IdR(r.clone()));
    }
    let Some(auth) = make_auth(sa, &init, Signer::Initiator, &psk, &local_id) else {
        return sa.fail(ctx, IkeError::InvalidMessage("no keys"));
    };
    payloads.push(auth);
    payloads.extend(vip_request(&sa.conn));
    payloads.extend(child.payloads(None));
    if let Err(e) = sa.send_request(ctx, ExchangeType::IKE_AUTH, &payloads) {
        return sa.fail(ctx, e);
    }
    State::ExpectAuthResponse(Box::new(ExpectAuthResponse { init, child }))
}

impl ExpectAuthResponse {
    /// Handle the (decrypted) IKE_AUTH response.
    pub(crate) fn process<R: CryptoRng>(
        self,
        sa: &mut IkeSa,
        ctx: &mut Ctx<'_, R>,
        payloads: &[Payload],
    ) -> State {
        let parts = AuthParts::find(payloads);
        let (Some(idr), Some(auth)) = (parts.idr, parts.auth) else {
            let e = match first_error(payloads) {
                Some(n) => IkeError::from_peer_notify(n.notify_type, &n.data),
                None => IkeError::InvalidMessage("IKE_AUTH response lacks IDr or AUTH"),
            };
            return sa.fail(ctx, e);
        };
        let id_ok = sa.conn.remote_id_match(idr) != IdMatch::None;
        let local_id = sa.conn.local_id_at(sa.local.ip());
        let psk = match psk_for(sa, &local_id, Some(idr)) {
            Ok(k) => k,
            Err(e) => return sa.fail(ctx, e),
        };
        if !id_ok || !check_auth(sa, &self.init, Signer::Responder, &psk, idr, auth) {
            // Best effort: tell the responder, which considers the SA established.
            let del = delete_ike_payload();
            sa.send_unreliable(ctx, ExchangeType::INFORMATIONAL, &[del]);
            return sa.fail(ctx, IkeError::AuthenticationFailed { local_side: true });
        }
        let virtual_ips = assigned(
            payloads,
            [
                ConfigAttrType::INTERNAL_IP4_ADDRESS,
                ConfigAttrType::INTERNAL_IP6_ADDRESS,
            ],
            &sa.conn.request_vips,
        );
        let dns_servers = assigned(
            payloads,
            [
                ConfigAttrType::INTERNAL_IP4_DNS,
                ConfigAttrType::INTERNAL_IP6_DNS,
            ],
            &sa.conn.request_dns,
        );
        if !virtual_ips.is_empty() || !dns_servers.is_empty() {
            let rare = sa.rare_mut();
            rare.virtual_ips = virtual_ips;
            rare.dns_servers = dns_servers;
        }
        established_event(sa, ctx, idr);
        let Self { init, child } = self;
        let km = child::Keymat::ike_auth(sa, &init.ni, &init.nr);
        child.complete(sa, ctx, payloads, &km);
        State::Established
    }
}

impl ExpectAuthRequest {
    pub(crate) fn new(init: InitExchange) -> Self {
        Self { init }
    }

    /// Handle the (decrypted) IKE_AUTH request `mid`.
    pub(crate) fn process<R: CryptoRng>(
        self,
        sa: &mut IkeSa,
        ctx: &mut Ctx<'_, R>,
        path: Path,
        mid: u32,
        payloads: &[Payload],
    ) -> State {
        let parts = AuthParts::find(payloads);
        let (Some(idi), Some(auth)) = (parts.idi, parts.auth) else {
            let n = notify(NotifyType::INVALID_SYNTAX, Vec::new());
            let _ = sa.send_response(ctx, path, ExchangeType::IKE_AUTH, mid, &[n]);
            return sa.fail(
                ctx,
                IkeError::InvalidMessage("IKE_AUTH request lacks IDi or AUTH"),
            );
        };
        let conn = select_conn(ctx.conns, sa, path, idi, parts.idr, payloads).cloned();
        let local_id = conn.as_ref().map(|c| c.local_id_at(path.local.ip()));
        let psk = match (&conn, &local_id) {
            (Some(c), Some(l)) => c.psk.get(l, Some(idi)).ok_or_else(|| no_psk(l, Some(idi))),
            _ => Err(IkeError::PeerNotAuthenticated {
                peer: idi.to_string(),
            }),
        };
        let verified = psk
            .as_ref()
            .is_ok_and(|k| check_auth(sa, &self.init, Signer::Initiator, k, idi, auth));
        let (Some(conn), Some(local_id), Ok(psk), true) = (conn, local_id, psk.clone(), verified)
        else {
            let n = notify(NotifyType::AUTHENTICATION_FAILED, Vec::new());
            let _ = sa.send_response(ctx, path, ExchangeType::IKE_AUTH, mid, &[n]);
            let e = psk.err().unwrap_or_else(|| IkeError::PeerNotAuthenticated {
                peer: idi.to_string(),
            });
            return sa.fail(ctx, e);
        };
        sa.conn = conn;
        sa.initial_contact = has_notify(payloads, NotifyType::INITIAL_CONTACT);
        sa.authenticated = true;
        let Some(auth) = make_auth(sa, &self.init, Signer::Responder, &psk, &local_id) else {
            return sa.fail(ctx, IkeError::InvalidMessage("no keys"));
        };
        let mut out = vec![Payload::IdR(local_id), auth];
        let lease = lease_vips(sa, ctx, payloads, idi);
        if let Ok(Some(cp)) = &lease {
            out.push(cp.clone());
        }
        established_event(sa, ctx, idi);
        match lease {
            Ok(_) => out.extend(child::respond(
                sa,
                ctx,
                payloads,
                &self.init.ni,
                &self.init.nr,
            )),
            // RFC 7296 §3.15.4: the IKE SA is created, its first CHILD_SA is not.
            Err(error) => {
                out.push(notify(NotifyType::INTERNAL_ADDRESS_FAILURE, Vec::new()));
                ctx.out.events.push_back(Event::ChildSaFailed {
                    id: sa.id,
                    conn: sa.conn.name.clone(),
                    error,
                });
            }
        }
        if let Err(e) = sa.send_response(ctx, path, ExchangeType::IKE_AUTH, mid, &out) {
            return sa.fail(ctx, e);
        }
        State::Established
    }
}

fn no_psk(local: &Identification, peer: Option<&Identification>) -> IkeError {
    IkeError::NoPsk {
        local: local.to_string(),
        peer: peer.map_or_else(|| "%any".to_owned(), ToString::to_string),
    }
}

/// The key for (our identity, the peer's), or [`IkeError::NoPsk`] naming both.
fn psk_for(
    sa: &IkeSa,
    local: &Identification,
    peer: Option<&Identification>,
) -> Result<Zeroizing<Vec<u8>>, IkeError> {
    sa.conn
        .psk
        .get(local, peer)
        .ok_or_else(|| no_psk(local, peer))
}

/// The conn that authenticates this peer: reachable at `path`, allowing the negotiated IKE
/// suite, owning IDr if the initiator named one, and accepting IDi. Conns naming the peer's
/// identity exactly win over wildcard ones (`*@example.org`), which win over `%any` ones;
/// among those, one that can give the requested CHILD_SA (`payloads`: its ESP proposals and
/// selectors) wins, so that several conns to one peer (host-to-host and net-to-net, or
/// different ESP proposals) each answer their own requests; then the first configured.
fn select_conn<'a>(
    conns: &'a [Arc<ConnSpec>],
    sa: &IkeSa,
    path: Path,
    idi: &Identification,
    idr: Option<&Identification>,
    payloads: &[Payload],
) -> Option<&'a Arc<ConnSpec>> {
    let suite = sa.keys.as_ref()?.suite;
    let fits = |c: &&Arc<ConnSpec>| {
        c.local_addr.is_none_or(|a| a == path.local.ip())
            && c.remote_addr.is_none_or(|a| a == path.remote.ip())
            && suite.allowed(&c.ike_proposals)
            && idr.is_none_or(|r| *r == c.local_id_at(path.local.ip()))
    };
    let mut candidates: Vec<(&Arc<ConnSpec>, IdMatch)> = conns
        .iter()
        .filter(fits)
        .map(|c| (c, c.remote_id_match(idi)))
        .filter(|(_, m)| *m != IdMatch::None)
        .collect();
    // Stable: equally good conns keep their configured order.
    candidates.sort_by_key(|(_, m)| std::cmp::Reverse(*m));
    let (local, remote) = (path.local.ip(), path.remote.ip());
    candidates
        .iter()
        .map(|(c, _)| *c)
        .find(|c| child::conn_fits_request(c, sa.nat_detected, payloads, local, remote))
        .or(candidates.first().map(|(c, _)| *c))
}
