//! Cross-keyword checks of a built conn.

use std::time::Duration;

use super::{AuthMethod, Auto, Conn, ConnType};
use crate::config::diag::Diagnostics;
use crate::config::values::Host;

/// Cross-keyword checks of a loaded conn, reported at its `conn NAME` line.
pub(super) fn check_conn(c: &Conn, diags: &mut Diagnostics) {
    if c.auto == Auto::Ignore {
        return;
    }
    let pos = &c.pos;
    let name = &c.name;
    for (side, end) in [("left", &c.left), ("right", &c.right)] {
        if end.auth != AuthMethod::Psk {
            diags.error(
                pos,
                format!(
                    "conn '{name}': {side}auth is {}; only psk authentication is supported (set authby=secret)",
                    end.auth
                ),
            );
        }
    }
    if c.ah.is_some() && c.esp.configured {
        diags.error(
            pos,
            format!(
                "conn '{name}': esp= and ah= together cannot be negotiated: an IKEv2 CHILD_SA has one protocol per proposal (RFC 7296 3.3.1), and strongSwan accepts only one of the two keywords (AH+ESP bundles are not supported); keep one of them (ESP+AH needs manual SAs with ip xfrm)"
            ),
        );
    }
    if matches!(c.left.host, Host::Any { .. })
        && matches!(c.right.host, Host::Any { .. })
        && c.auto != Auto::Add
    {
        diags.error(
            pos,
            format!(
                "conn '{name}': left and right are both %any: such a conn can only answer (auto=add), not auto={}",
                c.auto
            ),
        );
    }
    if matches!(c.conn_type, ConnType::Passthrough | ConnType::Drop) {
        diags.warning(
            pos,
            format!(
                "conn '{name}': type={} is accepted but not acted on yet",
                c.conn_type
            ),
        );
    }
    if c.rekeymargin >= c.lifetime || c.rekeymargin >= c.ikelifetime {
        diags.warning(
            pos,
            format!("conn '{name}': rekeymargin is not smaller than lifetime/ikelifetime"),
        );
    }
    if c.lifetime > Duration::from_secs(86400) {
        diags.warning(
            pos,
            format!("conn '{name}': lifetime above the 24h maximum"),
        );
    }
}
