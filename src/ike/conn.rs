//! What the engine is told: endpoint settings and connection definitions.

use std::fmt;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use rand::Rng;

use super::psk::Psks;
use super::timer::RetransmitPolicy;
pub use crate::config::conn::UniqueIds;
use crate::config::ident::{IdMatch, wildcard_suffix_matches};
use crate::crypto::{DhGroup, Encr, Integ, Prf};
use crate::kernel::{IpsecProto, Mode};
use crate::wire::{IdType, Identification, TrafficSelector};

/// Endpoint-wide settings.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointConfig {
    /// Initiator retransmission schedule (strongSwan default: 4 s × 1.8ⁿ, 5 tries).
    pub retransmit: RetransmitPolicy,
    /// A responder IKE SA that has not completed IKE_AUTH after this long is dropped.
    pub half_open_timeout: Duration,
    /// At most this many half-open responder IKE SAs; further IKE_SA_INIT requests are dropped.
    pub max_half_open: usize,
    /// From this many half-open responder IKE SAs on, IKE_SA_INIT requests must echo a
    /// stateless COOKIE first (RFC 7296 §2.6; strongSwan's default threshold is 30).
    pub cookie_threshold: usize,
    /// From this many half-open SAs of one peer address on, that address must echo a COOKIE
    /// whatever the total (strongSwan's `cookie_threshold_ip`, 3).
    pub cookie_threshold_ip: usize,
    /// At most this many half-open SAs per peer address, checked after the COOKIE, so one
    /// address that answers cookies cannot fill the table (strongSwan's `block_threshold`, 5).
    pub max_half_open_per_ip: usize,
    /// Replay window reported in [`ChildSaReady`](super::ChildSaReady).
    pub replay_window: u32,
    /// What a responder does when a peer authenticates with the identity of one of its
    /// established IKE SAs of the same conn (`config setup` `uniqueids=`): `yes`/`replace`
    /// delete the older SAs, `keep` deletes the new one, `no` does so only when the peer sent
    /// INITIAL_CONTACT, `never` keeps both even then. The engine's default is `no`; the daemon
    /// passes ipsec.conf's (whose default is `yes`).
    pub unique_ids: UniqueIds,
    /// Hand out each IKE SA's SK_e/SK_a keys in
    /// [`Event::IkeSaEstablished`](super::Event::IkeSaEstablished) (`exported_keys`), for a
    /// debugging key log (Wireshark decryption in the lab). Off by default.
    pub export_keys: bool,
    /// Our NAT-T port (RFC 3948): an initiator floats its IKE SA from its IKE port to this
    /// one once NAT_DETECTION finds a NAT (or with [`ConnSpec::force_encaps`]).
    pub natt_port: u16,
    /// A responder reuses its IKE_SA_INIT key pair of a group for this long (RFC 7296
    /// §2.12): less CPU per handshake, at the cost of forward secrecy between the IKE SAs
    /// set up meanwhile (one stolen private value opens all of them). Zero (the default):
    /// a fresh key pair every time.
    pub dh_reuse: Duration,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            retransmit: RetransmitPolicy::default(),
            half_open_timeout: Duration::from_secs(30),
            max_half_open: 1024,
            cookie_threshold: 30,
            cookie_threshold_ip: 3,
            max_half_open_per_ip: 5,
            replay_window: 32,
            unique_ids: UniqueIds::No,
            export_keys: false,
            natt_port: 4500,
            dh_reuse: Duration::ZERO,
        }
    }
}

/// One IKE proposal: every listed algorithm is acceptable, in preference order
/// (strongSwan `ike=aes128-aes256-sha256-x25519-ecp256`). An AEAD `encr` needs no `integ`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeProposal {
    /// Encryption algorithms.
    pub encr: Vec<Encr>,
    /// Integrity algorithms (empty for AEAD-only proposals).
    pub integ: Vec<Integ>,
    /// Pseudo-random functions.
    pub prf: Vec<Prf>,
    /// Key-exchange groups; the first one of the first proposal is used for the KE payload.
    pub dh: Vec<DhGroup>,
}

/// One CHILD_SA proposal: ESP (strongSwan `esp=aes128gcm16`, `esp=aes128-sha256` or, with
/// PFS, `esp=aes128-sha256-modp2048`) or AH (`ah=sha256`: integrity only, RFC 4302). One
/// proposal has one protocol (RFC 7296 §3.3.1), so ESP and AH are never combined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EspProposal {
    /// ESP or AH (sent as protocol ID 3 or 2).
    pub protocol: IpsecProto,
    /// Encryption algorithms (empty for AH).
    pub encr: Vec<Encr>,
    /// Integrity algorithms (empty for AEAD-only proposals).
    pub integ: Vec<Integ>,
    /// Extended sequence numbers.
    pub esn: bool,
    /// PFS key-exchange groups for CREATE_CHILD_SA (empty: no PFS). Not used in IKE_AUTH,
    /// whose CHILD_SA takes its keys from the IKE SA's exchange.
    pub dh: Vec<DhGroup>,
}

/// A connection definition (an ipsec.conf `conn`, resolved by the daemon).
#[derive(Clone, PartialEq)]
pub struct ConnSpec {
    /// Conn name.
    pub name: String,
    /// Our address; `None` = any (responder only).
    pub local_addr: Option<IpAddr>,
    /// Peer address; `None` = `%any` (responder only).
    pub remote_addr: Option<IpAddr>,
    /// Our IKE port when initiating (500).
    pub local_port: u16,
    /// Peer IKE port when initiating (500).
    pub remote_port: u16,
    /// Our identity (IDi/IDr we send); `None` = the IKE SA's local address (`left=%any`
    /// without `leftid`: where the request arrived, as responder).
    pub local_id: Option<Identification>,
    /// Required peer identity; `None` = any. An FQDN or RFC 822 name starting with `*` is a
    /// wildcard (`*.example.org`, `*@example.org`) matching any name with that suffix. When
    /// initiating, a `Some` that is not a wildcard is also sent as IDr.
    pub remote_id: Option<Identification>,
    /// Pre-shared keys, looked up by identity at IKE_AUTH.
    pub psk: Psks,
    /// IKE proposals, in preference order.
    pub ike_proposals: Vec<IkeProposal>,
    /// CHILD_SA proposals (ESP or AH), in preference order.
    pub esp_proposals: Vec<EspProposal>,
    /// CHILD_SA mode.
    pub mode: Mode,
    /// Our side's selectors; empty = our address (all protocols and ports).
    pub local_ts: Vec<TrafficSelector>,
    /// Peer side's selectors; empty = the peer's address.
    pub remote_ts: Vec<TrafficSelector>,
    /// CHILD_SA lifetime, passed on in [`super::ChildSaReady`] (the kernel SA's hard expiry;
    /// the daemon rekeys on the soft expiry with [`super::Endpoint::rekey_child`]).
    pub lifetime: Duration,
    /// The kernel's reqid for this conn's CHILD_SAs; the engine only passes it on in
    /// [`super::ChildSaReady`].
    pub reqid: u32,
    /// CHILD_SAs are rekeyed this long before `lifetime` ends (`rekeymargin`), passed on.
    pub rekey_margin: Duration,
    /// Up to this percentage of `rekey_margin` more, at random (`rekeyfuzz`), passed on.
    pub rekey_fuzz_percent: u32,
    /// IKE SA lifetime. The engine does not act on it: the daemon calls
    /// [`Endpoint::rekey_ike`](super::Endpoint::rekey_ike) (or reauthenticates) in time.
    pub ike_lifetime: Duration,
    /// `forceencaps=yes`: send a NAT_DETECTION_SOURCE_IP that cannot match, so that both sides
    /// see a NAT and use UDP-encapsulated ESP on the NAT-T port whatever the path.
    pub force_encaps: bool,
    /// `leftsourceip=%config`: ask the responder for inner addresses in IKE_AUTH, one per
    /// entry: the unspecified address of a family (0.0.0.0, ::) asks for any of it.
    pub request_vips: Vec<IpAddr>,
    /// `rightsourceip=10.3.0.0/24`: as responder, lease a requesting peer an address of the
    /// first pool of each family it asks for; its selector becomes that address.
    pub pools: Vec<ipnet::IpNet>,
    /// `leftdns=%config4`: ask for DNS servers in the same CFG_REQUEST (the unspecified
    /// address of each family asked for); the answer is reported, not installed.
    pub request_dns: Vec<IpAddr>,
    /// `rightdns=`: DNS servers sent in every CFG_REPLY to the peer.
    pub peer_dns: Vec<IpAddr>,
}

impl ConnSpec {
    /// The protocol of this conn's CHILD_SAs: the one its proposals name (config gives a
    /// conn ESP or AH proposals, never both), ESP when it has none.
    pub fn child_protocol(&self) -> IpsecProto {
        self.esp_proposals
            .first()
            .map(|p| p.protocol)
            .unwrap_or_default()
    }
}

impl fmt::Debug for ConnSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnSpec")
            .field("name", &self.name)
            .field("local_addr", &self.local_addr)
            .field("remote_addr", &self.remote_addr)
            .field("local_port", &self.local_port)
            .field("remote_port", &self.remote_port)
            .field("local_id", &self.local_id)
            .field("remote_id", &self.remote_id)
            .field("psk", &self.psk)
            .field("ike_proposals", &self.ike_proposals)
            .field("esp_proposals", &self.esp_proposals)
            .field("mode", &self.mode)
            .field("local_ts", &self.local_ts)
            .field("remote_ts", &self.remote_ts)
            .field("lifetime", &self.lifetime)
            .field("reqid", &self.reqid)
            .field("rekey_margin", &self.rekey_margin)
            .field("rekey_fuzz_percent", &self.rekey_fuzz_percent)
            .field("ike_lifetime", &self.ike_lifetime)
            .field("force_encaps", &self.force_encaps)
            .field("request_vips", &self.request_vips)
            .field("pools", &self.pools)
            .field("request_dns", &self.request_dns)
            .field("peer_dns", &self.peer_dns)
            .finish()
    }
}

impl ConnSpec {
    /// How the peer's identity `id` matches this conn's remote ID.
    pub(crate) fn remote_id_match(&self, id: &Identification) -> IdMatch {
        match &self.remote_id {
            None => IdMatch::Any,
            Some(want) if want == id => IdMatch::Exact,
            Some(want)
                if want.id_type == id.id_type
                    && is_name(want)
                    && wildcard_suffix_matches(&want.data, &id.data) == Some(true) =>
            {
                IdMatch::Wildcard
            }
            Some(_) => IdMatch::None,
        }
    }

    /// The IDr an initiator sends: the remote ID unless it is a wildcard (strongSwan then
    /// sends none and accepts any matching responder ID).
    pub(crate) fn idr_to_send(&self) -> Option<&Identification> {
        self.remote_id
            .as_ref()
            .filter(|r| !(is_name(r) && r.data.first() == Some(&b'*')))
    }

    /// Our identity on an IKE SA from `local`: the configured one or that address.
    pub(crate) fn local_id_at(&self, local: IpAddr) -> Identification {
        self.local_id
            .clone()
            .unwrap_or_else(|| Identification::from_ip(local))
    }
}

fn is_name(id: &Identification) -> bool {
    matches!(id.id_type, IdType::FQDN | IdType::RFC822_ADDR)
}

/// Source of inbound ESP SPIs, called inside [`Endpoint::handle_datagram`](super::Endpoint)
/// and the commands: like the rest of the engine it must not do I/O (no kernel call, no
/// global RNG). The daemon uses [`RandomSpis`]; tests use deterministic ones.
pub trait SpiAllocator {
    /// An inbound ESP SPI for SAs from `remote` to `local`.
    fn allocate_esp_spi(
        &mut self,
        local: IpAddr,
        remote: IpAddr,
    ) -> Result<u32, super::error::SpiError>;
}

/// Inbound SPIs that never repeat: a walk through `range` (its largest power-of-two-sized
/// prefix) from a random start with a random odd stride, both from the injected RNG, so the
/// n-th SPI is `start + n × stride` modulo the size and every SPI comes up once before any
/// comes up again (2²⁸ of them for the kernel's range). Nothing is reserved in the kernel, and
/// two of our own CHILD_SAs can never be given the same SPI; another program's SA with the
/// same SPI makes the kernel refuse the install, which the daemon handles like any failed
/// install (see the README, architecture).
#[derive(Debug)]
pub struct RandomSpis<R> {
    rng: R,
    range: RangeInclusive<u32>,
    /// (offset of the next SPI in the range, stride), drawn at the first allocation.
    walk: Option<(u32, u32)>,
}

impl<R> RandomSpis<R> {
    /// SPIs from `range` (which must not be empty) with `rng`.
    pub fn new(rng: R, range: RangeInclusive<u32>) -> Self {
        Self {
            rng,
            range,
            walk: None,
        }
    }
}

impl<R: Rng> SpiAllocator for RandomSpis<R> {
    fn allocate_esp_spi(
        &mut self,
        _local: IpAddr,
        _remote: IpAddr,
    ) -> Result<u32, super::error::SpiError> {
        let (start, end) = (*self.range.start(), *self.range.end());
        if start > end {
            return Err(super::error::SpiError("empty SPI range".into()));
        }
        // Size of the walk: the largest power of two not above the range's size (2^32 fits
        // in u64); the mask keeps offsets inside it.
        let len = u64::from(end - start) + 1; // ok: end >= start
        let size = 1u64 << (63 - len.leading_zeros());
        let mask = size - 1; // ok: size >= 1
        let (offset, stride) = match self.walk {
            Some(w) => w,
            None => {
                let offset = self.rng.next_u64() & mask;
                let stride = (self.rng.next_u64() & mask) | 1;
                (
                    u32::try_from(offset).unwrap_or(0),
                    u32::try_from(stride).unwrap_or(1),
                )
            }
        };
        let next = (u64::from(offset) + u64::from(stride)) & mask;
        self.walk = Some((u32::try_from(next).unwrap_or(0), stride));
        Ok(start + offset) // ok: offset <= mask < len, so start + offset <= end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spis_do_not_repeat_within_the_range() {
        use rand::SeedableRng;
        let any = IpAddr::from([192, 0, 2, 1]);
        // A 256-SPI range: every SPI once in the first 256, then the same cycle again.
        let mut spis = RandomSpis::new(rand::rngs::ChaCha20Rng::seed_from_u64(7), 1000..=1255);
        let first: Vec<u32> = (0..256)
            .map(|_| spis.allocate_esp_spi(any, any).unwrap())
            .collect();
        let mut sorted = first.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (1000..=1255).collect::<Vec<_>>());
        assert_eq!(spis.allocate_esp_spi(any, any).unwrap(), first[0]);
        // Not a power of two: the walk covers its largest power-of-two prefix only.
        let mut spis = RandomSpis::new(rand::rngs::ChaCha20Rng::seed_from_u64(8), 10..=14);
        let mut got: Vec<u32> = (0..4)
            .map(|_| spis.allocate_esp_spi(any, any).unwrap())
            .collect();
        got.sort_unstable();
        assert_eq!(got, vec![10, 11, 12, 13]);
        // The whole u32 range and the kernel's range work.
        let mut spis = RandomSpis::new(rand::rngs::ChaCha20Rng::seed_from_u64(9), 0..=u32::MAX);
        assert_ne!(
            spis.allocate_esp_spi(any, any).unwrap(),
            spis.allocate_esp_spi(any, any).unwrap()
        );
        #[allow(clippy::reversed_empty_ranges)]
        let mut empty = RandomSpis::new(rand::rngs::ChaCha20Rng::seed_from_u64(9), 5..=4);
        assert!(empty.allocate_esp_spi(any, any).is_err());
    }

    #[test]
    fn conn_debug_redacts_psk() {
        let conn = ConnSpec {
            name: "c".into(),
            local_addr: None,
            remote_addr: None,
            local_port: 500,
            remote_port: 500,
            local_id: Some(Identification::fqdn("a")),
            remote_id: None,
            psk: Psks::fixed(b"topsecret"),
            ike_proposals: vec![],
            esp_proposals: vec![],
            mode: Mode::Tunnel,
            local_ts: vec![],
            remote_ts: vec![],
            lifetime: Duration::from_secs(3600),
            reqid: 1,
            rekey_margin: Duration::from_secs(540),
            rekey_fuzz_percent: 100,
            ike_lifetime: Duration::from_secs(10800),
            force_encaps: false,
            request_vips: vec![],
            pools: vec![],
            request_dns: vec![],
            peer_dns: vec![],
        };
        let s = format!("{conn:?}");
        assert!(!s.contains("topsecret"));
        assert!(s.contains("<redacted>"));
    }

    #[test]
    fn remote_id_wildcards_and_idr() {
        use crate::ike::tests::{A_IP, B_IP, conn as test_conn};
        let mut conn = test_conn(A_IP, Some(B_IP), "aes128-sha256-x25519", "aes128gcm16");
        let ip = IpAddr::from([192, 0, 2, 7]);
        assert_eq!(conn.local_id_at(ip), conn.local_id.clone().unwrap());
        conn.local_id = None;
        assert_eq!(conn.local_id_at(ip), Identification::from_ip(ip));
        conn.remote_id = Some(Identification::fqdn("*.example.org"));
        assert_eq!(conn.idr_to_send(), None);
        let m = |c: &ConnSpec, id| c.remote_id_match(&id);
        assert_eq!(
            m(&conn, Identification::fqdn("gw.example.org")),
            IdMatch::Wildcard
        );
        assert_eq!(
            m(&conn, Identification::fqdn("gw.example.com")),
            IdMatch::None
        );
        assert_eq!(
            m(&conn, Identification::rfc822("a@x.example.org")),
            IdMatch::None
        );
        conn.remote_id = Some(Identification::rfc822("*@example.org"));
        assert_eq!(
            m(&conn, Identification::rfc822("carol@example.org")),
            IdMatch::Wildcard
        );
        conn.remote_id = Some(Identification::fqdn("gw"));
        assert_eq!(conn.idr_to_send(), conn.remote_id.as_ref());
        assert_eq!(m(&conn, Identification::fqdn("gw")), IdMatch::Exact);
        conn.remote_id = None;
        assert_eq!(m(&conn, Identification::fqdn("gw")), IdMatch::Any);
    }

    #[test]
    fn random_spis_stay_in_their_range() {
        use rand::SeedableRng;
        let rng = rand::rngs::ChaCha20Rng::seed_from_u64(7);
        let mut spis = RandomSpis::new(rng, 0xc000_0000..=0xc000_000f);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let drawn: Vec<u32> = (0..64)
            .map(|_| spis.allocate_esp_spi(ip, ip).unwrap())
            .collect();
        assert!(
            drawn
                .iter()
                .all(|s| (0xc000_0000..=0xc000_000f).contains(s))
        );
        assert!(drawn.iter().any(|s| *s != drawn[0]), "random");
        #[allow(clippy::reversed_empty_ranges)]
        let mut empty = RandomSpis::new(rand::rngs::ChaCha20Rng::seed_from_u64(7), 2..=1);
        assert!(empty.allocate_esp_spi(ip, ip).is_err());
    }
}
