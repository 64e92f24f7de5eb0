//! Debugging key log in Wireshark's formats (`ikev2d --wireshark-keys DIR`).
//!
//! Writes, in DIR, the two tables Wireshark reads from a profile folder:
//! * `ikev2_decryption_table` (IKEv2 decryption table): one record per IKE SA,
//!   `SPIi,SPIr,SK_ei,SK_er,"encryption",SK_ai,SK_ar,"integrity"`;
//! * `esp_sa` (ESP SAs): one record per ESP SA (two per CHILD_SA),
//!   `"IPv4","src","dst","0xSPI","encryption","0xkey","authentication","0xkey"`.
//!
//! Whoever reads these files can decrypt the traffic: the daemon logs a warning when the
//! option is on, the files are created mode 0600 and emptied at start-up. Off by default.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::hex;
use crate::crypto::{Encr, Integ};
use crate::ike::{ChildDirKeys, ChildSaReady, IkeSaExportedKeys};

/// File name of the IKEv2 decryption table.
pub const IKE_TABLE: &str = "ikev2_decryption_table";
/// File name of the ESP SA table.
pub const ESP_TABLE: &str = "esp_sa";

/// Why the key log could not be written.
#[derive(Debug, thiserror::Error)]
#[error("wireshark key log {path}: {source}")]
pub struct KeyLogError {
    path: PathBuf,
    #[source]
    source: io::Error,
}

/// The two tables in one folder.
#[derive(Debug)]
pub struct KeyLog {
    ike: File,
    esp: File,
    dir: PathBuf,
}

impl KeyLog {
    /// Creates DIR when missing and (re)creates both tables, empty, mode 0600.
    pub fn create(dir: &Path) -> Result<Self, KeyLogError> {
        let err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| KeyLogError { path, source }
        };
        fs::create_dir_all(dir).map_err(err(dir))?;
        let open = |name: &str| {
            let path = dir.join(name);
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&path)
                .map_err(err(&path))
        };
        Ok(Self {
            ike: open(IKE_TABLE)?,
            esp: open(ESP_TABLE)?,
            dir: dir.to_path_buf(),
        })
    }

    /// The folder (for the start-up warning).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends a record to its table.
    pub fn write(&mut self, record: &KeyRecord) -> Result<(), KeyLogError> {
        let (file, name, text) = match record {
            KeyRecord::Ike(t) => (&mut self.ike, IKE_TABLE, t),
            KeyRecord::Esp(t) => (&mut self.esp, ESP_TABLE, t),
        };
        append(file, text, &self.dir.join(name))
    }
}

/// Records for one of the tables, built by the daemon's policy layer and written by the
/// driver. `Debug` shows the table only.
#[derive(Clone, PartialEq, Eq)]
pub enum KeyRecord {
    /// An `ikev2_decryption_table` record.
    Ike(Zeroizing<String>),
    /// `esp_sa` records.
    Esp(Zeroizing<String>),
}

impl std::fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Ike(_) => "KeyRecord::Ike(<redacted>)",
            Self::Esp(_) => "KeyRecord::Esp(<redacted>)",
        })
    }
}

impl KeyRecord {
    /// An IKE SA's record.
    pub fn ike_sa(spi_i: &[u8; 8], spi_r: &[u8; 8], keys: &IkeSaExportedKeys) -> Self {
        Self::Ike(ike_record(spi_i, spi_r, keys))
    }

    /// The records of a CHILD_SA's two ESP SAs: ours to the peer with `spi_out`, the peer's
    /// to us with `spi_in`. `None` for AH, which has nothing to decrypt.
    pub fn child_sa(c: &ChildSaReady) -> Option<Self> {
        let encr = c.encr?;
        let mut text = esp_record(c.local, c.remote, c.spi_out, encr, c.integ, &c.keys_out);
        text.push_str(&esp_record(
            c.remote, c.local, c.spi_in, encr, c.integ, &c.keys_in,
        ));
        Some(Self::Esp(text))
    }
}

fn append(file: &mut File, text: &str, path: &Path) -> Result<(), KeyLogError> {
    file.write_all(text.as_bytes())
        .and_then(|()| file.flush())
        .map_err(|source| KeyLogError {
            path: path.to_path_buf(),
            source,
        })
}

/// One `ikev2_decryption_table` record (with its newline).
pub fn ike_record(spi_i: &[u8; 8], spi_r: &[u8; 8], k: &IkeSaExportedKeys) -> Zeroizing<String> {
    Zeroizing::new(format!(
        "{},{},{},{},\"{}\",{},{},\"{}\"\n",
        hex(spi_i),
        hex(spi_r),
        Zeroizing::new(hex(&k.sk_ei)).as_str(),
        Zeroizing::new(hex(&k.sk_er)).as_str(),
        ike_encr_name(k.encr),
        Zeroizing::new(hex(&k.sk_ai)).as_str(),
        Zeroizing::new(hex(&k.sk_ar)).as_str(),
        ike_integ_name(k.integ),
    ))
}

/// One `esp_sa` record (with its newline).
pub fn esp_record(
    src: IpAddr,
    dst: IpAddr,
    spi: u32,
    encr: Encr,
    integ: Option<Integ>,
    keys: &ChildDirKeys,
) -> Zeroizing<String> {
    let family = if src.is_ipv4() { "IPv4" } else { "IPv6" };
    Zeroizing::new(format!(
        "\"{family}\",\"{src}\",\"{dst}\",\"0x{spi:08x}\",\"{}\",\"0x{}\",\"{}\",\"0x{}\"\n",
        esp_encr_name(encr),
        Zeroizing::new(hex(&keys.encr)).as_str(),
        esp_integ_name(integ),
        Zeroizing::new(hex(&keys.integ)).as_str(),
    ))
}

/// Wireshark's IKEv2 encryption algorithm names.
fn ike_encr_name(e: Encr) -> String {
    match e {
        Encr::AesCbc { key_bits } => format!("AES-CBC-{key_bits} [RFC3602]"),
        Encr::AesGcm16 { key_bits } => format!("AES-GCM-{key_bits} with 16 octet ICV [RFC5282]"),
    }
}

/// Wireshark's IKEv2 integrity algorithm names.
fn ike_integ_name(i: Option<Integ>) -> &'static str {
    match i {
        None => "NONE [RFC4306]",
        Some(Integ::HmacSha1_96) => "HMAC_SHA1_96 [RFC2404]",
        Some(Integ::HmacSha256_128) => "HMAC_SHA2_256_128 [RFC4868]",
        Some(Integ::HmacSha384_192) => "HMAC_SHA2_384_192 [RFC4868]",
        Some(Integ::HmacSha512_256) => "HMAC_SHA2_512_256 [RFC4868]",
    }
}

/// Wireshark's ESP encryption algorithm names (the key length comes from the key).
fn esp_encr_name(e: Encr) -> &'static str {
    match e {
        Encr::AesCbc { .. } => "AES-CBC [RFC3602]",
        Encr::AesGcm16 { .. } => "AES-GCM with 16 octet ICV [RFC4106]",
    }
}

/// Wireshark's ESP authentication algorithm names.
fn esp_integ_name(i: Option<Integ>) -> &'static str {
    match i {
        None => "NULL",
        Some(Integ::HmacSha1_96) => "HMAC-SHA-1-96 [RFC2404]",
        Some(Integ::HmacSha256_128) => "HMAC-SHA-256-128 [RFC4868]",
        Some(Integ::HmacSha384_192) => "HMAC-SHA-384-192 [RFC4868]",
        Some(Integ::HmacSha512_256) => "HMAC-SHA-512-256 [RFC4868]",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(encr: Encr, integ: Option<Integ>, e: usize, a: usize) -> IkeSaExportedKeys {
        IkeSaExportedKeys {
            encr,
            integ,
            sk_ei: Zeroizing::new(vec![0x11; e]),
            sk_er: Zeroizing::new(vec![0x22; e]),
            sk_ai: Zeroizing::new(vec![0x33; a]),
            sk_ar: Zeroizing::new(vec![0x44; a]),
        }
    }

    #[test]
    fn ike_record_cbc_matches_wireshark_uat() {
        let k = keys(
            Encr::AesCbc { key_bits: 128 },
            Some(Integ::HmacSha256_128),
            2,
            3,
        );
        let line = ike_record(&[0x32, 0xfa, 0, 0, 0, 0, 0, 1], &[0xde; 8], &k);
        assert_eq!(
            line.as_str(),
            "32fa000000000001,dededededededede,1111,2222,\"AES-CBC-128 [RFC3602]\",\
             333333,444444,\"HMAC_SHA2_256_128 [RFC4868]\"\n"
        );
    }

    #[test]
    fn ike_record_gcm_has_empty_integrity_keys() {
        let k = keys(Encr::AesGcm16 { key_bits: 256 }, None, 36, 0);
        let line = ike_record(&[1; 8], &[2; 8], &k);
        assert!(
            line.contains("\"AES-GCM-256 with 16 octet ICV [RFC5282]\",,,\"NONE [RFC4306]\"\n")
        );
        assert!(line.contains(&"11".repeat(36)));
    }

    #[test]
    fn esp_record_formats() {
        let keys = ChildDirKeys {
            encr: Zeroizing::new(vec![0xab; 20]),
            integ: Zeroizing::new(Vec::new()),
        };
        let line = esp_record(
            "10.1.0.1".parse().unwrap(),
            "10.1.0.2".parse().unwrap(),
            0xc0d7,
            Encr::AesGcm16 { key_bits: 128 },
            None,
            &keys,
        );
        assert_eq!(
            line.as_str(),
            format!(
                "\"IPv4\",\"10.1.0.1\",\"10.1.0.2\",\"0x0000c0d7\",\
                 \"AES-GCM with 16 octet ICV [RFC4106]\",\"0x{}\",\"NULL\",\"0x\"\n",
                "ab".repeat(20)
            )
        );
        let keys = ChildDirKeys {
            encr: Zeroizing::new(vec![1; 16]),
            integ: Zeroizing::new(vec![2; 20]),
        };
        let line = esp_record(
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
            0xdeadbeef,
            Encr::AesCbc { key_bits: 128 },
            Some(Integ::HmacSha1_96),
            &keys,
        );
        assert!(line.starts_with(
            "\"IPv6\",\"2001:db8::1\",\"2001:db8::2\",\"0xdeadbeef\",\"AES-CBC [RFC3602]\""
        ));
        assert!(line.ends_with(&format!(
            ",\"HMAC-SHA-1-96 [RFC2404]\",\"0x{}\"\n",
            "02".repeat(20)
        )));
    }

    #[test]
    fn create_truncates_and_appends_private_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("ikev2d-keylog-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(IKE_TABLE), "stale\n").unwrap();
        let mut log = KeyLog::create(&dir).unwrap();
        let k = keys(
            Encr::AesCbc { key_bits: 256 },
            Some(Integ::HmacSha1_96),
            32,
            20,
        );
        log.write(&KeyRecord::ike_sa(&[1; 8], &[2; 8], &k)).unwrap();
        log.write(&KeyRecord::ike_sa(&[3; 8], &[4; 8], &k)).unwrap();
        let ck = ChildDirKeys {
            encr: Zeroizing::new(vec![5; 16]),
            integ: Zeroizing::new(vec![6; 20]),
        };
        let (a, b) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let (e, i) = (Encr::AesCbc { key_bits: 128 }, Some(Integ::HmacSha1_96));
        let mut esp = esp_record(a, b, 7, e, i, &ck);
        esp.push_str(&esp_record(b, a, 8, e, i, &ck));
        let record = KeyRecord::Esp(esp);
        assert_eq!(format!("{record:?}"), "KeyRecord::Esp(<redacted>)");
        log.write(&record).unwrap();
        let ike = fs::read_to_string(dir.join(IKE_TABLE)).unwrap();
        assert_eq!(ike.lines().count(), 2);
        assert!(ike.starts_with("0101010101010101,0202020202020202,"));
        let esp = fs::read_to_string(dir.join(ESP_TABLE)).unwrap();
        let lines: Vec<&str> = esp.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("\"IPv4\",\"10.0.0.1\",\"10.0.0.2\",\"0x00000007\""));
        assert!(lines[1].starts_with("\"IPv4\",\"10.0.0.2\",\"10.0.0.1\",\"0x00000008\""));
        let mode = fs::metadata(dir.join(ESP_TABLE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn exported_keys_debug_is_redacted() {
        let k = keys(
            Encr::AesCbc { key_bits: 128 },
            Some(Integ::HmacSha256_128),
            16,
            32,
        );
        let text = format!("{k:?}");
        assert!(!text.contains("1111") && !text.contains("3333"), "{text}");
        assert!(text.contains("redacted"));
    }
}
