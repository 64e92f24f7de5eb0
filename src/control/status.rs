//! The `ikectl status` report: plain data (serialised as `status --json`) and its text form.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Everything `ikectl status` shows.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StatusReport {
    /// Whether CHILD_SAs are installed in the kernel (`--kernel xfrm`) or only reported
    /// (`--kernel none`).
    pub kernel: String,
    /// Loaded conns with their SAs.
    pub conns: Vec<ConnReport>,
    /// What the responder refused or challenged since start.
    #[serde(default)]
    pub responder: ResponderReport,
    /// Virtual IPs leased from this gateway's pools (`rightsourceip`), by pool and address.
    #[serde(default)]
    pub leases: Vec<LeaseReport>,
    /// Which IKE SAs this report holds, when it is one page of them (`ikectl status
    /// --offset K --limit N`); absent in a full report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<PageReport>,
}

/// One virtual IP lease of a pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseReport {
    /// The pool, e.g. `10.3.0.0/24`.
    pub pool: String,
    /// The leased address.
    pub address: String,
    /// The peer identity it is leased to.
    pub identity: String,
    /// IKE SAs of that peer using it now (0: offline, the address is kept for the peer).
    pub online: u32,
}

/// The page a paged status report holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageReport {
    /// IKE SAs (in id order) before this page.
    pub offset: usize,
    /// The page's size limit.
    pub limit: usize,
    /// IKE SAs in all.
    pub total: usize,
}

/// The responder's defences against floods and forged packets, since start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ResponderReport {
    /// Half-open responder IKE SAs now.
    pub half_open: usize,
    /// COOKIE challenges sent.
    pub cookies_sent: u64,
    /// IKE_SA_INIT requests dropped: too many half-open SAs of that address.
    pub dropped_per_ip: u64,
    /// IKE_SA_INIT requests dropped: too many half-open SAs in all.
    pub dropped_total: u64,
    /// Requests naming an SA and message ID that were not a retransmission of the request
    /// answered: not answered from the cache.
    pub replays_refused: u64,
}

/// One loaded conn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnReport {
    /// Conn name.
    pub name: String,
    /// Our address (`%any` when not fixed).
    pub local: String,
    /// Peer address (`%any` when not fixed).
    pub remote: String,
    /// Our identity.
    pub local_id: String,
    /// Required peer identity (`%any` when not fixed).
    pub remote_id: String,
    /// `TUNNEL` or `TRANSPORT`.
    pub mode: String,
    /// `ignore`, `add`, `start` or `route`.
    pub auto: String,
    /// Configured local traffic selectors.
    pub local_ts: Vec<String>,
    /// Configured remote traffic selectors.
    pub remote_ts: Vec<String>,
    /// IKE SAs of this conn.
    pub ike_sas: Vec<IkeSaReport>,
}

/// One IKE SA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IkeSaReport {
    /// Daemon-local handle.
    pub id: u64,
    /// `CONNECTING`, `AUTHENTICATING`, `ESTABLISHED` or `DELETING`.
    pub state: String,
    /// `initiator` or `responder`.
    pub role: String,
    /// Our address and port.
    pub local: String,
    /// Peer address and port.
    pub remote: String,
    /// Our identity.
    pub local_id: String,
    /// Peer's authenticated identity.
    pub remote_id: Option<String>,
    /// Initiator SPI, 16 hex digits.
    pub spi_i: String,
    /// Responder SPI, 16 hex digits.
    pub spi_r: String,
    /// Chosen IKE proposal, e.g. `AES_CBC_128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/CURVE_25519`.
    pub proposal: Option<String>,
    /// Seconds since establishment.
    pub established_secs: Option<u64>,
    /// Seconds until the IKE SA is deleted at its `ikelifetime` (unless renewed before).
    pub lifetime_left_secs: Option<u64>,
    /// Seconds until the IKE SA is rekeyed or reauthenticated (`None`: `rekey=no`, or the
    /// renewal is under way).
    #[serde(default)]
    pub renew_in_secs: Option<u64>,
    /// The renewal is a reauthentication (`reauth=yes`), not a rekey.
    #[serde(default)]
    pub reauth: bool,
    /// A NAT was detected.
    pub nat_detected: bool,
    /// Virtual IPs the peer assigned us (`leftsourceip=%config`).
    #[serde(default)]
    pub virtual_ips: Vec<String>,
    /// Virtual IPs leased to the peer from our pools (`rightsourceip`).
    #[serde(default)]
    pub peer_virtual_ips: Vec<String>,
    /// DNS servers the peer assigned us (`leftdns=%config4`); reported, not installed.
    #[serde(default)]
    pub dns_servers: Vec<String>,
    /// CHILD_SAs.
    pub children: Vec<ChildReport>,
}

/// One CHILD_SA (a pair of ESP or AH SAs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildReport {
    /// `ESP` or `AH`.
    pub protocol: String,
    /// `TUNNEL` or `TRANSPORT`.
    pub mode: String,
    /// reqid tying SAs and policies (0 when not installed).
    pub reqid: u32,
    /// Whether the SAs and policies are in the kernel.
    pub installed: bool,
    /// Inbound SPI, 8 hex digits.
    pub spi_in: String,
    /// Outbound SPI, 8 hex digits.
    pub spi_out: String,
    /// Encryption algorithm, e.g. `AES_GCM_16` or `AES_CBC` (empty for AH).
    pub encr: String,
    /// Encryption key length in bits (without the GCM salt; 0 for AH).
    pub encr_key_bits: u32,
    /// Integrity algorithm, e.g. `HMAC_SHA2_256_128` (none for AEAD).
    pub integ: Option<String>,
    /// Integrity key length in bits.
    pub integ_key_bits: Option<u32>,
    /// Extended sequence numbers.
    pub esn: bool,
    /// Our traffic selectors.
    pub local_ts: Vec<String>,
    /// Peer traffic selectors.
    pub remote_ts: Vec<String>,
    /// Inbound bytes (kernel counter).
    pub bytes_in: u64,
    /// Inbound packets.
    pub packets_in: u64,
    /// Outbound bytes.
    pub bytes_out: u64,
    /// Outbound packets.
    pub packets_out: u64,
    /// Seconds since installation.
    pub installed_secs: u64,
    /// Seconds until the kernel's soft expire (rekey time).
    pub rekey_in_secs: Option<u64>,
    /// Seconds until the kernel's hard expire.
    pub expires_in_secs: Option<u64>,
}

impl fmt::Display for StatusReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Connections (kernel: {}):", self.kernel)?;
        for c in &self.conns {
            writeln!(
                f,
                "{:>14}:  {}...{}  IKEv2, {}, auto={}",
                c.name,
                c.local,
                c.remote,
                c.mode.to_lowercase(),
                c.auto
            )?;
            writeln!(
                f,
                "{:>14}:   local:  [{}] uses pre-shared key authentication",
                c.name, c.local_id
            )?;
            writeln!(
                f,
                "{:>14}:   remote: [{}] uses pre-shared key authentication",
                c.name, c.remote_id
            )?;
            writeln!(
                f,
                "{:>14}:   child:  {} === {} {}",
                c.name,
                c.local_ts.join(" "),
                c.remote_ts.join(" "),
                c.mode
            )?;
        }
        let sas: Vec<(&ConnReport, &IkeSaReport)> = self
            .conns
            .iter()
            .flat_map(|c| c.ike_sas.iter().map(move |s| (c, s)))
            .collect();
        let up = sas.iter().filter(|(_, s)| s.state == "ESTABLISHED").count();
        let children: usize = sas.iter().map(|(_, s)| s.children.len()).sum();
        let r = &self.responder;
        writeln!(
            f,
            "Responder: {} half-open, {} cookies sent, {} dropped ({} per-IP limit, {} total limit), {} replays refused",
            r.half_open,
            r.cookies_sent,
            r.dropped_per_ip.saturating_add(r.dropped_total),
            r.dropped_per_ip,
            r.dropped_total,
            r.replays_refused
        )?;
        if !self.leases.is_empty() {
            writeln!(f, "Virtual IP pools:")?;
            for l in &self.leases {
                let state = match l.online {
                    0 => "offline".to_string(),
                    1 => "online".to_string(),
                    n => format!("online, {n} IKE SAs"),
                };
                writeln!(
                    f,
                    "{:>14}: {} leased to {} ({state})",
                    l.pool, l.address, l.identity
                )?;
            }
        }
        writeln!(
            f,
            "Security Associations ({up} up, {} total, {children} CHILD_SA):",
            sas.len()
        )?;
        if let Some(p) = self.page {
            writeln!(
                f,
                "  (a page in id order: offset {}, limit {}; {} IKE SAs in all)",
                p.offset, p.limit, p.total
            )?;
        }
        for (c, s) in sas {
            write_ike_sa(f, &c.name, s)?;
        }
        Ok(())
    }
}

fn write_ike_sa(f: &mut fmt::Formatter<'_>, conn: &str, s: &IkeSaReport) -> fmt::Result {
    let tag = format!("{conn}[{}]", s.id);
    let age = s
        .established_secs
        .map(|t| format!(" {t} seconds ago"))
        .unwrap_or_default();
    writeln!(
        f,
        "{tag:>14}: {}{age}, {}[{}]...{}[{}]",
        s.state,
        s.local,
        s.local_id,
        s.remote,
        s.remote_id.as_deref().unwrap_or("%any")
    )?;
    writeln!(
        f,
        "{tag:>14}: IKEv2 SPIs: {}_i{} {}_r{}, role {}{}",
        s.spi_i,
        if s.role == "initiator" { "*" } else { "" },
        s.spi_r,
        if s.role == "responder" { "*" } else { "" },
        s.role,
        if s.nat_detected { ", NAT detected" } else { "" }
    )?;
    for a in &s.virtual_ips {
        writeln!(f, "{tag:>14}: virtual IP {a}")?;
    }
    for a in &s.peer_virtual_ips {
        writeln!(f, "{tag:>14}: peer virtual IP {a} (leased)")?;
    }
    if !s.dns_servers.is_empty() {
        writeln!(f, "{tag:>14}: DNS servers {}", s.dns_servers.join(", "))?;
    }
    if let Some(p) = &s.proposal {
        writeln!(f, "{tag:>14}: IKE proposal: {p}")?;
    }
    if let Some(n) = s.renew_in_secs {
        let what = if s.reauth { "reauth" } else { "rekeying" };
        writeln!(f, "{tag:>14}: {what} in {n} seconds")?;
    }
    if let Some(left) = s.lifetime_left_secs {
        writeln!(f, "{tag:>14}: IKE SA expires in {left} seconds")?;
    }
    for (n, ch) in s.children.iter().enumerate() {
        // Named after the IKE SA as in `ikectl up`'s output; a second CHILD_SA gets `.2`.
        let ctag = match n {
            0 => format!("{conn}{{{}}}", s.id),
            _ => format!("{conn}{{{}.{}}}", s.id, n + 1),
        };
        writeln!(
            f,
            "{ctag:>14}:  {}, {}, reqid {:#x}, {} SPIs: {}_i {}_o",
            if ch.installed {
                "INSTALLED"
            } else {
                "NEGOTIATED (not installed)"
            },
            ch.mode,
            ch.reqid,
            ch.protocol,
            ch.spi_in,
            ch.spi_out
        )?;
        let integ = match (&ch.integ, ch.integ_key_bits) {
            (Some(i), Some(bits)) => format!("/{i} ({bits}-bit key)"),
            (Some(i), None) => format!("/{i}"),
            _ => String::new(),
        };
        // AH has no encryption: its line starts with the integrity algorithm.
        let algs = if ch.encr.is_empty() {
            integ.trim_start_matches('/').to_string()
        } else {
            format!("{} ({}-bit key){integ}", ch.encr, ch.encr_key_bits)
        };
        writeln!(
            f,
            "{ctag:>14}:  {algs}{}, {} bytes_i ({} pkts), {} bytes_o ({} pkts)",
            if ch.esn { "/ESN" } else { "" },
            ch.bytes_in,
            ch.packets_in,
            ch.bytes_out,
            ch.packets_out
        )?;
        let mut times = format!("installed {} seconds ago", ch.installed_secs);
        if let Some(r) = ch.rekey_in_secs {
            times.push_str(&format!(", soft expire (rekey) in {r} seconds"));
        }
        if let Some(e) = ch.expires_in_secs {
            times.push_str(&format!(", hard expire in {e} seconds"));
        }
        writeln!(f, "{ctag:>14}:  {times}")?;
        writeln!(
            f,
            "{ctag:>14}:   {} === {}",
            ch.local_ts.join(" "),
            ch.remote_ts.join(" ")
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StatusReport {
        StatusReport {
            kernel: "xfrm".into(),
            conns: vec![ConnReport {
                name: "host-host".into(),
                local: "10.1.0.1".into(),
                remote: "10.1.0.2".into(),
                local_id: "10.1.0.1".into(),
                remote_id: "10.1.0.2".into(),
                mode: "TRANSPORT".into(),
                auto: "add".into(),
                local_ts: vec!["10.1.0.1/32".into()],
                remote_ts: vec!["10.1.0.2/32".into()],
                ike_sas: vec![IkeSaReport {
                    id: 1,
                    state: "ESTABLISHED".into(),
                    role: "initiator".into(),
                    local: "10.1.0.1:500".into(),
                    remote: "10.1.0.2:500".into(),
                    local_id: "10.1.0.1".into(),
                    remote_id: Some("10.1.0.2".into()),
                    spi_i: "0011223344556677".into(),
                    spi_r: "8899aabbccddeeff".into(),
                    proposal: Some("AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE_25519".into()),
                    established_secs: Some(3),
                    lifetime_left_secs: Some(10797),
                    renew_in_secs: Some(10257),
                    reauth: true,
                    nat_detected: false,
                    virtual_ips: vec![],
                    peer_virtual_ips: vec![],
                    dns_servers: vec![],
                    children: vec![ChildReport {
                        protocol: "ESP".into(),
                        mode: "TRANSPORT".into(),
                        reqid: 0x4b32_0001,
                        installed: true,
                        spi_in: "c0000001".into(),
                        spi_out: "c0000002".into(),
                        encr: "AES_CBC".into(),
                        encr_key_bits: 128,
                        integ: Some("HMAC_SHA2_256_128".into()),
                        integ_key_bits: Some(256),
                        esn: false,
                        local_ts: vec!["10.1.0.1/32".into()],
                        remote_ts: vec!["10.1.0.2/32".into()],
                        bytes_in: 840,
                        packets_in: 10,
                        bytes_out: 840,
                        packets_out: 10,
                        installed_secs: 3,
                        rekey_in_secs: Some(3057),
                        expires_in_secs: Some(3597),
                    }],
                }],
            }],
            responder: ResponderReport {
                half_open: 2,
                cookies_sent: 40,
                dropped_per_ip: 7,
                dropped_total: 1,
                replays_refused: 3,
            },
            leases: vec![],
            page: None,
        }
    }

    #[test]
    fn a_page_says_which_and_a_full_report_stays_as_it_was() {
        let full = sample();
        let json = serde_json::to_string(&full).unwrap();
        assert!(!json.contains("\"page\""), "{json}");
        assert!(!full.to_string().contains("page"));
        let mut paged = sample();
        paged.page = Some(PageReport {
            offset: 100,
            limit: 50,
            total: 101,
        });
        assert!(
            paged
                .to_string()
                .contains("(a page in id order: offset 100, limit 50; 101 IKE SAs in all)")
        );
        let back: StatusReport =
            serde_json::from_str(&serde_json::to_string(&paged).unwrap()).unwrap();
        assert_eq!(back, paged);
    }

    #[test]
    fn text_answers_the_lab_questions() {
        let text = sample().to_string();
        assert!(text.contains("1 up, 1 total, 1 CHILD_SA"), "{text}");
        assert!(text.contains("INSTALLED, TRANSPORT"), "{text}");
        assert!(text.contains("ESP SPIs: c0000001_i c0000002_o"), "{text}");
        assert!(
            text.contains("AES_CBC (128-bit key)/HMAC_SHA2_256_128 (256-bit key)"),
            "{text}"
        );
        assert!(text.contains("840 bytes_i (10 pkts)"), "{text}");
        assert!(text.contains("10.1.0.1/32 === 10.1.0.2/32"), "{text}");
        assert!(text.contains("IKE proposal: AES_GCM_16_128"), "{text}");
        assert!(text.contains("reauth in 10257 seconds"), "{text}");
        assert!(text.contains("IKE SA expires in 10797 seconds"), "{text}");
        assert!(
            text.contains("Responder: 2 half-open, 40 cookies sent, 8 dropped (7 per-IP limit, 1 total limit), 3 replays refused"),
            "{text}"
        );
    }

    #[test]
    fn virtual_ips_and_leases_text() {
        let mut r = sample();
        r.conns[0].ike_sas[0].virtual_ips = vec!["10.3.0.1".into()];
        r.conns[0].ike_sas[0].dns_servers = vec!["10.1.2.53".into(), "10.1.2.54".into()];
        r.leases = vec![LeaseReport {
            pool: "10.3.0.0/24".into(),
            address: "10.3.0.2".into(),
            identity: "carol@example.org".into(),
            online: 0,
        }];
        let text = r.to_string();
        assert!(
            text.contains("host-host[1]: virtual IP 10.3.0.1\n"),
            "{text}"
        );
        assert!(
            text.contains("host-host[1]: DNS servers 10.1.2.53, 10.1.2.54\n"),
            "{text}"
        );
        assert!(
            text.contains("10.3.0.0/24: 10.3.0.2 leased to carol@example.org (offline)"),
            "{text}"
        );
        r.conns[0].ike_sas[0].virtual_ips.clear();
        r.conns[0].ike_sas[0].peer_virtual_ips = vec!["10.3.0.2".into()];
        assert!(r.to_string().contains("peer virtual IP 10.3.0.2 (leased)"));
    }

    #[test]
    fn ah_child_text_names_ah_and_its_integrity_only() {
        let mut r = sample();
        let ch = &mut r.conns[0].ike_sas[0].children[0];
        ch.protocol = "AH".into();
        ch.encr = String::new();
        ch.encr_key_bits = 0;
        ch.integ = Some("HMAC_SHA1_96".into());
        ch.integ_key_bits = Some(160);
        let text = r.to_string();
        assert!(text.contains("AH SPIs: c0000001_i c0000002_o"), "{text}");
        assert!(
            text.contains(":  HMAC_SHA1_96 (160-bit key), 840 bytes_i"),
            "{text}"
        );
        assert!(!text.contains("AES_CBC"), "{text}");
    }

    #[test]
    fn json_round_trip() {
        let r = sample();
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<StatusReport>(&json).unwrap(), r);
        assert!(
            json.contains(r#""responder":{"half_open":2,"cookies_sent":40,"#),
            "{json}"
        );
    }
}
