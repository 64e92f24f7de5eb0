//! Pre-shared keys as the engine asks for them: by identity, at IKE_AUTH.

use std::fmt;
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::config::ident::Identity;
use crate::config::secrets::Secrets;
use crate::wire::{IdType, Identification};

/// Where the engine gets pre-shared keys, asked at IKE_AUTH with our identity and the peer's:
/// the IDi received (responder), the IDr received (initiator checking the responder), or the
/// configured remote ID, `None` for `%any` (initiator computing its own AUTH). The daemon
/// builds it from ipsec.secrets; like the rest of the engine it must not do I/O.
pub trait PskLookup: Send + Sync {
    /// The best key for this pair of identities, `None` when there is none.
    fn psk(
        &self,
        local: &Identification,
        remote: Option<&Identification>,
    ) -> Option<Zeroizing<Vec<u8>>>;
}

/// The pre-shared keys of a conn (shared by all conns of one ipsec.secrets). `Debug` never
/// shows a key; two are equal when they are the same table.
#[derive(Clone)]
pub struct Psks(Arc<dyn PskLookup>);

impl Psks {
    /// Keys from `lookup`.
    pub fn new(lookup: Arc<dyn PskLookup>) -> Self {
        Self(lookup)
    }

    /// One key for every pair of identities.
    pub fn fixed(psk: &[u8]) -> Self {
        Self(Arc::new(FixedPsk(Zeroizing::new(psk.to_vec()))))
    }

    pub(crate) fn get(
        &self,
        local: &Identification,
        remote: Option<&Identification>,
    ) -> Option<Zeroizing<Vec<u8>>> {
        self.0.psk(local, remote)
    }
}

impl PartialEq for Psks {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for Psks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Psks(<redacted>)")
    }
}

struct FixedPsk(Zeroizing<Vec<u8>>);

impl PskLookup for FixedPsk {
    fn psk(&self, _: &Identification, _: Option<&Identification>) -> Option<Zeroizing<Vec<u8>>> {
        Some(self.0.clone())
    }
}

/// ipsec.secrets: the best entry for the identities of an IKE_AUTH exchange (see
/// [`Secrets::lookup`]).
impl PskLookup for Secrets {
    fn psk(
        &self,
        local: &Identification,
        remote: Option<&Identification>,
    ) -> Option<Zeroizing<Vec<u8>>> {
        let local = identity(local)?;
        let remote = match remote {
            Some(r) => identity(r)?,
            None => Identity::Any,
        };
        self.lookup(&local, &remote)
            .map(|e| Zeroizing::new(e.psk.as_bytes().to_vec()))
    }
}

/// The configuration form of a wire identity (`None` for a type ipsec.conf cannot write).
fn identity(id: &Identification) -> Option<Identity> {
    let text = || String::from_utf8(id.data.clone()).ok();
    Some(match id.id_type {
        IdType::IPV4_ADDR | IdType::IPV6_ADDR => Identity::from_addr(id.ip()?),
        IdType::FQDN => Identity::Fqdn(text()?),
        IdType::RFC822_ADDR => Identity::UserFqdn(text()?),
        IdType::KEY_ID => Identity::KeyId(id.data.clone()),
        _ => return None,
    })
}
