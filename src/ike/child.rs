//! A CHILD_SA (carried in IKE_AUTH or CREATE_CHILD_SA) of a conn: ESP or AH proposal with our
//! inbound SPI, TSi/TSr narrowing, USE_TRANSPORT_MODE, and the keys handed to the kernel
//! layer.

use std::net::IpAddr;
use std::sync::Arc;

use rand::CryptoRng;

use super::conn::ConnSpec;
use super::error::IkeError;
use super::event::{ChildDirKeys, ChildSaReady, Event, Role};
use super::payloads::{first_error, has_notify, notify, sa_payload};
use super::proposal::{self, EspSuite};
use super::sa::{Ctx, IkeSa, Queued};
use super::ts;
use crate::crypto::{DhGroup, derive_child_keys};
use crate::kernel::Mode;
use crate::wire::{NotifyType, Payload, TrafficSelector};

/// An installed CHILD_SA.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ChildSa {
    /// The conn it was negotiated for (the IKE SA's, or another one with the same peer).
    pub(crate) conn: Arc<ConnSpec>,
    pub(crate) spi_in: u32,
    pub(crate) spi_out: u32,
    pub(crate) mode: Mode,
    pub(crate) local_ts: Vec<TrafficSelector>,
    pub(crate) remote_ts: Vec<TrafficSelector>,
    pub(crate) suite: EspSuite,
    /// A rekey of this CHILD_SA completed (either side initiated it); it only waits for its
    /// Delete and is not rekeyed again.
    pub(crate) replaced: bool,
}

/// Inputs of a CHILD_SA's key derivation: KEYMAT = prf+(SK_d, [g^ir (new)] | Ni | Nr).
pub(crate) struct Keymat<'a> {
    /// Nonce of the exchange's initiator.
    pub(crate) ni: &'a [u8],
    /// Nonce of the exchange's responder.
    pub(crate) nr: &'a [u8],
    /// PFS shared secret of a CREATE_CHILD_SA exchange.
    pub(crate) dh: Option<&'a [u8]>,
    /// We initiated the exchange that created the child (the first keys are ours outbound).
    pub(crate) initiator: bool,
    /// `(spi_in, spi_out)` of the CHILD_SA this one rekeys.
    pub(crate) rekeyed_from: Option<(u32, u32)>,
}

impl<'a> Keymat<'a> {
    /// The keys of the CHILD_SA carried in IKE_AUTH.
    pub(crate) fn ike_auth(sa: &IkeSa, ni: &'a [u8], nr: &'a [u8]) -> Self {
        Self {
            ni,
            nr,
            dh: None,
            initiator: sa.role == Role::Initiator,
            rekeyed_from: None,
        }
    }
}

fn tsi(payloads: &[Payload]) -> Option<&[TrafficSelector]> {
    payloads.iter().find_map(|p| match p {
        Payload::TsI(t) => Some(t.as_slice()),
        _ => None,
    })
}

fn tsr(payloads: &[Payload]) -> Option<&[TrafficSelector]> {
    payloads.iter().find_map(|p| match p {
        Payload::TsR(t) => Some(t.as_slice()),
        _ => None,
    })
}

/// Our selectors for a new CHILD_SA of `conn` over `sa`: the configured ones; else the
/// virtual IPs the peer assigned us; else, while asking for one (IKE_AUTH with
/// `leftsourceip=%config`), the whole of each family asked for, which the responder narrows
/// to the address it leases; else our address.
fn local_selectors(sa: &IkeSa, conn: &ConnSpec) -> Vec<TrafficSelector> {
    if !conn.local_ts.is_empty() {
        conn.local_ts.clone()
    } else if !sa.rare().virtual_ips.is_empty() {
        sa.rare().virtual_ips.iter().map(|a| ts::host(*a)).collect()
    } else if !conn.request_vips.is_empty() {
        conn.request_vips
            .iter()
            .map(|a| match a {
                IpAddr::V4(_) => TrafficSelector::any_v4(),
                IpAddr::V6(_) => TrafficSelector::any_v6(),
            })
            .collect()
    } else {
        vec![ts::host(sa.local.ip())]
    }
}

/// Initiator: the CHILD_SA we asked for in IKE_AUTH.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ChildRequest {
    conn: Arc<ConnSpec>,
    spi_in: u32,
    ts_i: Vec<TrafficSelector>,
    ts_r: Vec<TrafficSelector>,
}

impl ChildRequest {
    /// A request for inbound SPI `spi_in` with these selectors (a rekey keeps the old ones).
    pub(crate) fn with(
        conn: Arc<ConnSpec>,
        spi_in: u32,
        ts_i: Vec<TrafficSelector>,
        ts_r: Vec<TrafficSelector>,
    ) -> Self {
        Self {
            conn,
            spi_in,
            ts_i,
            ts_r,
        }
    }

    /// Our inbound SPI.
    pub(crate) fn spi_in(&self) -> u32 {
        self.spi_in
    }

    /// A CHILD_SA of `conn` over `sa`: allocate our inbound SPI and fix the selectors we
    /// propose.
    pub(crate) fn new<R>(
        sa: &IkeSa,
        conn: &Arc<ConnSpec>,
        ctx: &mut Ctx<'_, R>,
    ) -> Result<Self, IkeError> {
        let (l, r) = (sa.local.ip(), sa.remote.ip());
        Ok(Self {
            conn: conn.clone(),
            spi_in: ctx.spis.allocate_esp_spi(l, r)?,
            ts_i: local_selectors(sa, conn),
            ts_r: ts::configured_or_host(&conn.remote_ts, r),
        })
    }

    /// The conn this child is for.
    pub(crate) fn conn(&self) -> &Arc<ConnSpec> {
        &self.conn
    }

    /// `[N(USE_TRANSPORT_MODE)], SA, TSi, TSr` for the IKE_AUTH or CREATE_CHILD_SA request;
    /// `pfs`: the ESP proposals list this DH group (CREATE_CHILD_SA with KEi).
    pub(crate) fn payloads(&self, pfs: Option<DhGroup>) -> Vec<Payload> {
        let mut v = Vec::new();
        if self.conn.mode == Mode::Transport {
            v.push(notify(NotifyType::USE_TRANSPORT_MODE, Vec::new()));
        }
        let proposals = match pfs {
            Some(g) => proposal::esp_offer_pfs(&self.conn.esp_proposals, self.spi_in, g),
            None => proposal::esp_offer(&self.conn.esp_proposals, self.spi_in),
        };
        v.push(Payload::Sa(crate::wire::SaPayload { proposals }));
        v.push(Payload::TsI(self.ts_i.clone()));
        v.push(Payload::TsR(self.ts_r.clone()));
        v
    }

    /// Process the child part of the IKE_AUTH or CREATE_CHILD_SA response (the IKE SA is
    /// already established). Returns whether the child was installed.
    pub(crate) fn complete<R: CryptoRng>(
        self,
        sa: &mut IkeSa,
        ctx: &mut Ctx<'_, R>,
        payloads: &[Payload],
        km: &Keymat<'_>,
    ) -> bool {
        match self.accept(payloads) {
            Ok(child) => install(sa, ctx, child, km),
            Err(error) => {
                ctx.out.events.push_back(Event::ChildSaFailed {
                    id: sa.id,
                    conn: self.conn.name.clone(),
                    error: error.clone(),
                });
                // A child the peer did install but we refuse must not linger there.
                if self.answer(payloads).is_ok() {
                    sa.queue.push_back(Queued::DeleteChild(self.spi_in));
                }
                false
            }
        }
    }

    fn answer(&self, payloads: &[Payload]) -> Result<(u32, EspSuite), IkeError> {
        if let Some(n) = first_error(payloads) {
            return Err(IkeError::from_peer_notify(n.notify_type, &n.data));
        }
        let offered = sa_payload(payloads).ok_or(IkeError::InvalidMessage("no SA payload"))?;
        proposal::accept_esp(offered, &self.conn.esp_proposals).ok_or(IkeError::NoProposalChosen)
    }

    fn accept(&self, payloads: &[Payload]) -> Result<ChildSa, IkeError> {
        let (spi_out, suite) = self.answer(payloads)?;
        let (Some(ts_i), Some(ts_r)) = (tsi(payloads), tsr(payloads)) else {
            return Err(IkeError::InvalidMessage("no TS payloads"));
        };
        if !ts::acceptable_answer(ts_i, &self.ts_i) || !ts::acceptable_answer(ts_r, &self.ts_r) {
            return Err(IkeError::TsUnacceptable);
        }
        let transport = has_notify(payloads, NotifyType::USE_TRANSPORT_MODE);
        let mode = match (self.conn.mode, transport) {
            (Mode::Transport, true) => Mode::Transport,
            (Mode::Transport, false) => return Err(IkeError::ModeMismatch),
            (Mode::Tunnel, _) => Mode::Tunnel,
        };
        Ok(ChildSa {
            conn: self.conn.clone(),
            spi_in: self.spi_in,
            spi_out,
            mode,
            local_ts: ts_i.to_vec(),
            remote_ts: ts_r.to_vec(),
            suite,
            replaced: false,
        })
    }
}

/// Responder: negotiate the child of an IKE_AUTH request and return the payloads for the
/// response (SA, TSi, TSr, [USE_TRANSPORT_MODE]) or the error notify. The IKE SA survives
/// either way.
pub(crate) fn respond<R: CryptoRng>(
    sa: &mut IkeSa,
    ctx: &mut Ctx<'_, R>,
    payloads: &[Payload],
    ni: &[u8],
    nr: &[u8],
) -> Vec<Payload> {
    match negotiate(sa, &sa.conn, ctx, payloads) {
        Ok((child, number)) => {
            let mut v = Vec::new();
            if child.mode == Mode::Transport {
                v.push(notify(NotifyType::USE_TRANSPORT_MODE, Vec::new()));
            }
            v.push(Payload::Sa(crate::wire::SaPayload {
                proposals: vec![child.suite.to_proposal(number, child.spi_in)],
            }));
            v.push(Payload::TsI(child.remote_ts.clone()));
            v.push(Payload::TsR(child.local_ts.clone()));
            let km = Keymat::ike_auth(sa, ni, nr);
            install(sa, ctx, child, &km);
            v
        }
        Err(error) => {
            let n = error.notify().unwrap_or(NotifyType::NO_PROPOSAL_CHOSEN);
            ctx.out.events.push_back(Event::ChildSaFailed {
                id: sa.id,
                conn: sa.conn.name.clone(),
                error,
            });
            vec![notify(n, Vec::new())]
        }
    }
}

/// Responder: select the ESP proposal of `conn`, narrow the selectors, allocate our
/// inbound SPI. Returns the child and the number of the chosen proposal.
pub(crate) fn negotiate<R>(
    sa: &IkeSa,
    conn: &Arc<ConnSpec>,
    ctx: &mut Ctx<'_, R>,
    payloads: &[Payload],
) -> Result<(ChildSa, u8), IkeError> {
    let offered = sa_payload(payloads).ok_or(IkeError::NoProposalChosen)?;
    let (number, spi_out, suite) =
        proposal::select_esp(offered, &conn.esp_proposals).ok_or(IkeError::NoProposalChosen)?;
    let (l, r) = (sa.local.ip(), sa.remote.ip());
    let peer_vips: Vec<IpAddr> = sa.rare().leases.iter().map(|(_, a)| *a).collect();
    let (remote_ts, local_ts) = narrowed(conn, sa.nat_detected, &peer_vips, payloads, l, r)?;
    let transport =
        conn.mode == Mode::Transport && has_notify(payloads, NotifyType::USE_TRANSPORT_MODE);
    let spi_in = ctx.spis.allocate_esp_spi(l, r)?;
    Ok((
        ChildSa {
            conn: conn.clone(),
            spi_in,
            spi_out,
            mode: if transport {
                Mode::Transport
            } else {
                Mode::Tunnel
            },
            local_ts,
            remote_ts,
            suite,
            replaced: false,
        },
        number,
    ))
}

/// The selectors `conn` gives the child that a request's TSi/TSr ask for between `local`
/// and `remote`: (remote, local), each narrowed to the conn's, or TS_UNACCEPTABLE. A peer
/// given virtual IPs (`peer_vips`) by a conn without configured peer selectors is narrowed
/// to those addresses.
fn narrowed(
    conn: &ConnSpec,
    nat_detected: bool,
    peer_vips: &[IpAddr],
    payloads: &[Payload],
    local: IpAddr,
    remote: IpAddr,
) -> Result<(Vec<TrafficSelector>, Vec<TrafficSelector>), IkeError> {
    let (Some(ts_i), Some(ts_r)) = (tsi(payloads), tsr(payloads)) else {
        return Err(IkeError::TsUnacceptable);
    };
    let remote_cfg = if conn.remote_ts.is_empty() && !peer_vips.is_empty() {
        peer_vips.iter().map(|a| ts::host(*a)).collect()
    } else if conn.remote_ts.is_empty() && nat_detected {
        // The dynamic selector of a peer behind a NAT is its own (private) address, as it
        // proposes it, not the translated one we see.
        ts_i.iter()
            .filter(|t| t.start_addr == t.end_addr)
            .cloned()
            .collect()
    } else {
        ts::configured_or_host(&conn.remote_ts, remote)
    };
    let remote_ts = ts::narrow(ts_i, &remote_cfg);
    let local_ts = ts::narrow(ts_r, &ts::configured_or_host(&conn.local_ts, local));
    if remote_ts.is_empty() || local_ts.is_empty() {
        return Err(IkeError::TsUnacceptable);
    }
    Ok((remote_ts, local_ts))
}

/// Whether `conn` can give the child an IKE_AUTH request asks for (an ESP proposal it
/// accepts, selectors that narrow to its own): the responder prefers such a conn among
/// those that authenticate the peer.
pub(crate) fn conn_fits_request(
    conn: &ConnSpec,
    nat_detected: bool,
    payloads: &[Payload],
    local: IpAddr,
    remote: IpAddr,
) -> bool {
    sa_payload(payloads)
        .and_then(|offered| proposal::select_esp(offered, &conn.esp_proposals))
        .is_some()
        && narrowed(conn, nat_detected, &[], payloads, local, remote).is_ok()
}

/// Derive the CHILD_SA keys, record the child and emit [`Event::ChildSaReady`]. Returns
/// whether it was installed ([`Event::ChildSaFailed`] otherwise).
pub(crate) fn install<R>(
    sa: &mut IkeSa,
    ctx: &mut Ctx<'_, R>,
    child: ChildSa,
    km: &Keymat<'_>,
) -> bool {
    let Some(keys) = sa.keys.as_ref() else {
        return false;
    };
    let derived = derive_child_keys(
        keys.suite.prf,
        &keys.sk_d,
        km.ni,
        km.nr,
        child.suite.encr,
        child.suite.integ,
        km.dh,
    );
    let k = match derived {
        Ok(k) => k,
        Err(e) => {
            ctx.out.events.push_back(Event::ChildSaFailed {
                id: sa.id,
                conn: child.conn.name.clone(),
                error: e.into(),
            });
            return false;
        }
    };
    let i = ChildDirKeys {
        encr: k.encr_i.clone(),
        integ: k.integ_i.clone(),
    };
    let r = ChildDirKeys {
        encr: k.encr_r.clone(),
        integ: k.integ_r.clone(),
    };
    let (keys_in, keys_out) = if km.initiator { (r, i) } else { (i, r) };
    ctx.out.events.push_back(Event::ChildSaReady(ChildSaReady {
        ike_sa: sa.id,
        conn: child.conn.name.clone(),
        local: sa.local.ip(),
        remote: sa.remote.ip(),
        mode: child.mode,
        spi_in: child.spi_in,
        spi_out: child.spi_out,
        local_ts: child.local_ts.clone(),
        remote_ts: child.remote_ts.clone(),
        protocol: child.suite.protocol,
        encr: child.suite.encr,
        integ: child.suite.integ,
        esn: child.suite.esn,
        keys_in,
        keys_out,
        replay_window: ctx.config.replay_window,
        lifetime: child.conn.lifetime,
        reqid: child.conn.reqid,
        rekey_margin: child.conn.rekey_margin,
        rekey_fuzz_percent: child.conn.rekey_fuzz_percent,
        natt_remote_port: sa.nat_detected.then(|| sa.remote.port()),
        rekeyed_from: km.rekeyed_from,
        initiator: km.initiator,
    }));
    // Usually the only one: no room for four.
    sa.children.reserve_exact(1);
    sa.children.push(child);
    true
}
