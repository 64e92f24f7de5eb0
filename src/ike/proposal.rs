//! Proposal encoding and selection. The responder walks the initiator's proposals in order
//! and takes the first one that fits one of its configured proposals (only configured
//! algorithms are ever accepted); inside a proposal it takes the initiator's first acceptable
//! transform of each type.

use super::conn::{EspProposal, IkeProposal};
use crate::crypto::{DhGroup, Encr, Integ, Prf};
use crate::kernel::IpsecProto;
use crate::wire::{Proposal, ProtocolId, Transform, TransformId, TransformType};

/// Negotiated IKE SA algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IkeSuite {
    pub(crate) encr: Encr,
    pub(crate) integ: Option<Integ>,
    pub(crate) prf: Prf,
    pub(crate) dh: DhGroup,
}

impl IkeSuite {
    /// strongSwan-style name, e.g. `AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE_25519`.
    pub(crate) fn name(&self) -> String {
        let mut parts = vec![self.encr.name().to_string()];
        if let Some(i) = self.integ {
            parts.push(i.name().to_string());
        }
        parts.push(self.prf.name().to_string());
        parts.push(self.dh.name().to_string());
        parts.join("/")
    }

    /// This suite as a one-proposal answer.
    pub(crate) fn to_proposal(self, number: u8) -> Proposal {
        let mut transforms = vec![encr_transform(self.encr)];
        transforms.extend(self.integ.map(integ_transform));
        transforms.push(prf_transform(self.prf));
        transforms.push(dh_transform(self.dh));
        proposal(number, ProtocolId::IKE, Vec::new(), transforms)
    }

    fn allowed_by(&self, p: &IkeProposal) -> bool {
        p.encr.contains(&self.encr)
            && p.prf.contains(&self.prf)
            && p.dh.contains(&self.dh)
            && match self.integ {
                Some(i) => p.integ.contains(&i),
                None => self.encr.is_aead(),
            }
    }

    /// Some configured proposal allows exactly this combination.
    pub(crate) fn allowed(&self, ours: &[IkeProposal]) -> bool {
        ours.iter().any(|p| self.allowed_by(p))
    }
}

/// Negotiated CHILD_SA algorithms (ESP, or AH without encryption).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EspSuite {
    pub(crate) protocol: IpsecProto,
    /// `None` for AH.
    pub(crate) encr: Option<Encr>,
    pub(crate) integ: Option<Integ>,
    pub(crate) esn: bool,
}

/// The SA payload's protocol ID of a CHILD_SA protocol.
pub(crate) fn protocol_id(p: IpsecProto) -> ProtocolId {
    match p {
        IpsecProto::Esp => ProtocolId::ESP,
        IpsecProto::Ah => ProtocolId::AH,
    }
}

/// The CHILD_SA protocol of an SA payload's (or Delete's, or notify's) protocol ID.
pub(crate) fn child_protocol(id: ProtocolId) -> Option<IpsecProto> {
    match id {
        ProtocolId::ESP => Some(IpsecProto::Esp),
        ProtocolId::AH => Some(IpsecProto::Ah),
        _ => None,
    }
}

impl EspSuite {
    /// e.g. `AES_CBC_128/HMAC_SHA2_256_128`, `AES_GCM_16_256` or (AH) `HMAC_SHA1_96`.
    pub(crate) fn name(&self) -> String {
        let parts: Vec<&str> = self
            .encr
            .map(Encr::name)
            .into_iter()
            .chain(self.integ.map(Integ::name))
            .collect();
        parts.join("/")
    }

    /// This suite as a one-proposal answer carrying our inbound SPI.
    pub(crate) fn to_proposal(self, number: u8, spi: u32) -> Proposal {
        let mut transforms: Vec<Transform> = self.encr.map(encr_transform).into_iter().collect();
        transforms.extend(self.integ.map(integ_transform));
        transforms.push(esn_transform(self.esn));
        proposal(
            number,
            protocol_id(self.protocol),
            spi.to_be_bytes().to_vec(),
            transforms,
        )
    }

    fn allowed_by(&self, p: &EspProposal) -> bool {
        p.protocol == self.protocol
            && match self.encr {
                Some(e) => p.encr.contains(&e),
                None => p.encr.is_empty(),
            }
            && p.esn == self.esn
            && match self.integ {
                Some(i) => p.integ.contains(&i),
                None => self.encr.is_some_and(Encr::is_aead),
            }
    }

    /// Some configured proposal allows exactly this combination.
    pub(crate) fn allowed(&self, ours: &[EspProposal]) -> bool {
        ours.iter().any(|p| self.allowed_by(p))
    }
}

fn proposal(
    number: u8,
    protocol: ProtocolId,
    spi: Vec<u8>,
    transforms: Vec<Transform>,
) -> Proposal {
    Proposal {
        number,
        protocol,
        spi,
        transforms,
    }
}

fn transform(kind: TransformType, id: u16, key_length: Option<u16>) -> Transform {
    match key_length {
        Some(bits) => Transform::with_key_length(kind, TransformId(id), bits),
        None => Transform::new(kind, TransformId(id)),
    }
}

fn encr_transform(e: Encr) -> Transform {
    transform(TransformType::ENCR, e.id(), Some(e.key_bits()))
}

fn integ_transform(i: Integ) -> Transform {
    transform(TransformType::INTEG, i.id(), None)
}

fn prf_transform(p: Prf) -> Transform {
    transform(TransformType::PRF, p.id(), None)
}

fn dh_transform(d: DhGroup) -> Transform {
    transform(TransformType::DH, d.id(), None)
}

fn esn_transform(esn: bool) -> Transform {
    transform(TransformType::ESN, u16::from(esn), None)
}

/// Our IKE proposals for the SA payload, numbered from 1.
pub(crate) fn ike_offer(ours: &[IkeProposal]) -> Vec<Proposal> {
    ours.iter()
        .zip(1u8..)
        .map(|(p, n)| {
            let mut t: Vec<Transform> = p.encr.iter().copied().map(encr_transform).collect();
            t.extend(p.integ.iter().copied().map(integ_transform));
            t.extend(p.prf.iter().copied().map(prf_transform));
            t.extend(p.dh.iter().copied().map(dh_transform));
            proposal(n, ProtocolId::IKE, Vec::new(), t)
        })
        .collect()
}

/// Our ESP/AH proposals for the SA payload, numbered from 1, carrying our inbound SPI.
pub(crate) fn esp_offer(ours: &[EspProposal], spi: u32) -> Vec<Proposal> {
    ours.iter()
        .zip(1u8..)
        .map(|(p, n)| {
            let mut t: Vec<Transform> = p.encr.iter().copied().map(encr_transform).collect();
            t.extend(p.integ.iter().copied().map(integ_transform));
            t.push(esn_transform(p.esn));
            proposal(n, protocol_id(p.protocol), spi.to_be_bytes().to_vec(), t)
        })
        .collect()
}

/// Our ESP proposals for a CREATE_CHILD_SA with KEi of group `ke`: each lists its own PFS
/// groups, `ke` first.
pub(crate) fn esp_offer_pfs(ours: &[EspProposal], spi: u32, ke: DhGroup) -> Vec<Proposal> {
    let mut offer = esp_offer(ours, spi);
    for (p, q) in offer.iter_mut().zip(ours) {
        let rest = q.dh.iter().copied().filter(|g| *g != ke);
        let groups = q.dh.contains(&ke).then_some(ke).into_iter().chain(rest);
        p.transforms.extend(groups.map(dh_transform));
    }
    offer
}

/// Whether `g` is one of the PFS groups of our ESP proposals.
pub(crate) fn esp_offers_group(ours: &[EspProposal], g: DhGroup) -> bool {
    ours.iter().any(|p| p.dh.contains(&g))
}

/// The transforms of one type in a received proposal, in order.
fn of_type(p: &Proposal, kind: TransformType) -> impl Iterator<Item = &Transform> {
    p.transforms.iter().filter(move |t| t.kind == kind)
}

fn encrs(p: &Proposal) -> impl Iterator<Item = Encr> + '_ {
    of_type(p, TransformType::ENCR).filter_map(|t| Encr::from_id(t.id.0, t.key_length))
}

fn integs(p: &Proposal) -> impl Iterator<Item = Integ> + '_ {
    of_type(p, TransformType::INTEG).filter_map(|t| Integ::from_id(t.id.0))
}

fn prfs(p: &Proposal) -> impl Iterator<Item = Prf> + '_ {
    of_type(p, TransformType::PRF).filter_map(|t| Prf::from_id(t.id.0))
}

fn dhs(p: &Proposal) -> impl Iterator<Item = DhGroup> + '_ {
    of_type(p, TransformType::DH).filter_map(|t| DhGroup::from_id(t.id.0))
}

/// ESN values offered; a proposal without an ESN transform means "no ESN".
fn esns(p: &Proposal) -> Vec<bool> {
    let v: Vec<bool> = of_type(p, TransformType::ESN)
        .filter_map(|t| match t.id.0 {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        })
        .collect();
    if of_type(p, TransformType::ESN).next().is_none() {
        vec![false]
    } else {
        v
    }
}

/// Integrity choice: AEAD takes none, otherwise the first offered one we allow.
fn pick_integ(p: &Proposal, encr: Encr, allowed: &[Integ]) -> Option<Option<Integ>> {
    if encr.is_aead() {
        Some(None)
    } else {
        integs(p).find(|i| allowed.contains(i)).map(Some)
    }
}

fn select_one_ike(p: &Proposal, q: &IkeProposal, group: Option<DhGroup>) -> Option<IkeSuite> {
    let prf = prfs(p).find(|x| q.prf.contains(x))?;
    let dh = match group {
        Some(g) => dhs(p).find(|x| *x == g && q.dh.contains(x))?,
        None => dhs(p).find(|x| q.dh.contains(x))?,
    };
    encrs(p).filter(|e| q.encr.contains(e)).find_map(|encr| {
        pick_integ(p, encr, &q.integ).map(|integ| IkeSuite {
            encr,
            integ,
            prf,
            dh,
        })
    })
}

/// Responder: choose from the initiator's IKE proposals; `group` restricts the DH group
/// (the one of the received KE payload). Returns the proposal number and the suite.
pub(crate) fn select_ike(
    offered: &[Proposal],
    ours: &[IkeProposal],
    group: Option<DhGroup>,
) -> Option<(u8, IkeSuite)> {
    offered
        .iter()
        .filter(|p| p.protocol == ProtocolId::IKE && p.spi.is_empty())
        .find_map(|p| {
            ours.iter()
                .find_map(|q| select_one_ike(p, q, group))
                .map(|s| (p.number, s))
        })
}

fn select_one_esp(p: &Proposal, q: &EspProposal) -> Option<EspSuite> {
    if p.protocol != protocol_id(q.protocol) || !esns(p).contains(&q.esn) {
        return None;
    }
    if q.protocol == IpsecProto::Ah {
        // AH carries integrity only: an encryption transform makes the proposal unusable.
        if of_type(p, TransformType::ENCR).next().is_some() {
            return None;
        }
        return integs(p).find(|i| q.integ.contains(i)).map(|i| EspSuite {
            protocol: IpsecProto::Ah,
            encr: None,
            integ: Some(i),
            esn: q.esn,
        });
    }
    encrs(p).filter(|e| q.encr.contains(e)).find_map(|encr| {
        pick_integ(p, encr, &q.integ).map(|integ| EspSuite {
            protocol: IpsecProto::Esp,
            encr: Some(encr),
            integ,
            esn: q.esn,
        })
    })
}

/// Responder: choose from the initiator's ESP and AH proposals (only those of the protocol
/// our proposals name can match). Returns the proposal number, the peer's SPI and the suite.
pub(crate) fn select_esp(
    offered: &[Proposal],
    ours: &[EspProposal],
) -> Option<(u8, u32, EspSuite)> {
    offered
        .iter()
        .filter(|p| child_protocol(p.protocol).is_some())
        .find_map(|p| {
            let spi = <[u8; 4]>::try_from(p.spi.as_slice()).ok()?;
            ours.iter()
                .find_map(|q| select_one_esp(p, q))
                .map(|s| (p.number, u32::from_be_bytes(spi), s))
        })
}

/// Our PFS group for a CREATE_CHILD_SA request: the first one our ESP proposals name.
pub(crate) fn esp_pfs_group(ours: &[EspProposal]) -> Option<DhGroup> {
    ours.iter().find_map(|p| p.dh.first().copied())
}

/// The DH transform IDs of the offered proposal `number` (PFS groups of a CREATE_CHILD_SA;
/// 0 is NONE).
pub(crate) fn esp_dh_ids(offered: &[Proposal], number: u8) -> Vec<u16> {
    offered
        .iter()
        .filter(|p| p.number == number && child_protocol(p.protocol).is_some())
        .flat_map(|p| of_type(p, TransformType::DH).map(|t| t.id.0))
        .collect()
}

/// Add the PFS group to a one-proposal ESP answer.
pub(crate) fn add_dh(answer: &mut Proposal, g: DhGroup) {
    answer.transforms.push(dh_transform(g));
}

/// Exactly one transform of `kind` in an answer, or none.
fn single<T>(mut it: impl Iterator<Item = T>) -> Result<Option<T>, ()> {
    let first = it.next();
    if it.next().is_some() {
        Err(())
    } else {
        Ok(first)
    }
}

/// Initiator: read the responder's one-proposal IKE answer and check we offered it.
pub(crate) fn accept_ike(answer: &[Proposal], ours: &[IkeProposal]) -> Option<IkeSuite> {
    let [p] = answer else { return None };
    if p.protocol != ProtocolId::IKE
        || p.transforms.iter().any(|t| {
            ![
                TransformType::ENCR,
                TransformType::INTEG,
                TransformType::PRF,
                TransformType::DH,
            ]
            .contains(&t.kind)
        })
    {
        return None;
    }
    let s = IkeSuite {
        encr: single(encrs(p)).ok()??,
        integ: single(integs(p)).ok()?,
        prf: single(prfs(p)).ok()??,
        dh: single(dhs(p)).ok()??,
    };
    let known = of_type(p, TransformType::INTEG).count() == usize::from(s.integ.is_some())
        && of_type(p, TransformType::ENCR).count() == 1;
    (known && s.allowed(ours)).then_some(s)
}

/// Initiator: read the responder's one-proposal ESP or AH answer (SPI, suite) and check we
/// offered it.
pub(crate) fn accept_esp(answer: &[Proposal], ours: &[EspProposal]) -> Option<(u32, EspSuite)> {
    let [p] = answer else { return None };
    let protocol = child_protocol(p.protocol)?;
    let spi = u32::from_be_bytes(<[u8; 4]>::try_from(p.spi.as_slice()).ok()?);
    let esn = match esns(p).as_slice() {
        [e] => *e,
        _ => return None,
    };
    let s = EspSuite {
        protocol,
        encr: single(encrs(p)).ok()?,
        integ: single(integs(p)).ok()?,
        esn,
    };
    let known = of_type(p, TransformType::INTEG).count() == usize::from(s.integ.is_some())
        && of_type(p, TransformType::ENCR).count() == usize::from(s.encr.is_some());
    (known && s.allowed(ours)).then_some((spi, s))
}

/// Whether `g` is one of the groups we offer (for INVALID_KE_PAYLOAD retries).
pub(crate) fn offers_group(ours: &[IkeProposal], g: DhGroup) -> bool {
    ours.iter().any(|p| p.dh.contains(&g))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gcm(bits: u16) -> Encr {
        Encr::AesGcm16 { key_bits: bits }
    }
    fn cbc(bits: u16) -> Encr {
        Encr::AesCbc { key_bits: bits }
    }

    fn ike(encr: Vec<Encr>, integ: Vec<Integ>, prf: Vec<Prf>, dh: Vec<DhGroup>) -> IkeProposal {
        IkeProposal {
            encr,
            integ,
            prf,
            dh,
        }
    }

    #[test]
    fn responder_takes_initiators_first_acceptable_proposal() {
        let init = vec![
            ike(
                vec![gcm(256)],
                vec![],
                vec![Prf::HmacSha384],
                vec![DhGroup::Ecp256],
            ),
            ike(
                vec![cbc(128)],
                vec![Integ::HmacSha256_128],
                vec![Prf::HmacSha256],
                vec![DhGroup::Curve25519, DhGroup::Modp2048],
            ),
        ];
        let resp = vec![
            ike(
                vec![cbc(128), cbc(256)],
                vec![Integ::HmacSha256_128],
                vec![Prf::HmacSha256],
                vec![DhGroup::Modp2048, DhGroup::Curve25519],
            ),
            ike(
                vec![gcm(256)],
                vec![],
                vec![Prf::HmacSha384],
                vec![DhGroup::Ecp256],
            ),
        ];
        let offer = ike_offer(&init);
        let (n, s) = select_ike(&offer, &resp, None).unwrap();
        assert_eq!(n, 1);
        assert_eq!(s.encr, gcm(256));
        assert_eq!(s.integ, None);
        assert_eq!(
            s.name(),
            format!(
                "{}/{}/{}",
                gcm(256).name(),
                Prf::HmacSha384.name(),
                DhGroup::Ecp256.name()
            )
        );
        // Restricting to the KE group skips proposal 1 and keeps the initiator's DH order.
        let (n, s) = select_ike(&offer, &resp, Some(DhGroup::Modp2048)).unwrap();
        assert_eq!(
            (n, s.dh, s.integ),
            (2, DhGroup::Modp2048, Some(Integ::HmacSha256_128))
        );
        let (_, s) = select_ike(&offer[1..], &resp, None).unwrap();
        assert_eq!(s.dh, DhGroup::Curve25519);
        // Nothing in common.
        let other = vec![ike(
            vec![cbc(256)],
            vec![Integ::HmacSha1_96],
            vec![Prf::HmacSha1],
            vec![DhGroup::Modp2048],
        )];
        assert_eq!(select_ike(&offer, &other, None), None);
        // The answer round-trips through accept_ike, and is refused if never offered.
        let ans = [s.to_proposal(2)];
        assert_eq!(accept_ike(&ans, &init), Some(s));
        assert_eq!(accept_ike(&ans, &other), None);
        assert_eq!(accept_ike(&[], &init), None);
    }

    #[test]
    fn non_aead_needs_integ() {
        let mut p = ike_offer(&[ike(
            vec![cbc(128)],
            vec![],
            vec![Prf::HmacSha256],
            vec![DhGroup::Curve25519],
        )]);
        let ours = [ike(
            vec![cbc(128)],
            vec![Integ::HmacSha256_128],
            vec![Prf::HmacSha256],
            vec![DhGroup::Curve25519],
        )];
        assert_eq!(select_ike(&p, &ours, None), None);
        p[0].protocol = ProtocolId::ESP;
        assert_eq!(select_ike(&p, &ours, None), None);
    }

    #[test]
    fn esp_selection_spi_and_esn() {
        let init = vec![
            EspProposal {
                protocol: IpsecProto::Esp,
                encr: vec![gcm(128)],
                integ: vec![],
                esn: true,
                dh: vec![],
            },
            EspProposal {
                protocol: IpsecProto::Esp,
                encr: vec![cbc(128)],
                integ: vec![Integ::HmacSha1_96, Integ::HmacSha256_128],
                esn: false,
                dh: vec![],
            },
        ];
        let resp = vec![EspProposal {
            protocol: IpsecProto::Esp,
            encr: vec![cbc(128), gcm(128)],
            integ: vec![Integ::HmacSha256_128],
            esn: false,
            dh: vec![],
        }];
        let offer = esp_offer(&init, 0xc000_0001);
        let (n, spi, s) = select_esp(&offer, &resp).unwrap();
        assert_eq!((n, spi), (2, 0xc000_0001));
        assert_eq!(
            s,
            EspSuite {
                protocol: IpsecProto::Esp,
                encr: Some(cbc(128)),
                integ: Some(Integ::HmacSha256_128),
                esn: false
            }
        );
        let ans = [s.to_proposal(n, 0xc000_0002)];
        assert_eq!(accept_esp(&ans, &init), Some((0xc000_0002, s)));
        // Bad SPI size is not selectable.
        let mut bad = offer.clone();
        for p in &mut bad {
            p.spi = vec![1, 2];
        }
        assert_eq!(select_esp(&bad, &resp), None);
        assert!(offers_group(
            &[ike(vec![], vec![], vec![], vec![DhGroup::Ecp256])],
            DhGroup::Ecp256
        ));
    }
}
