//! Cross-keyword checks of a built conn.

use std::time::Duration;

use super::{AuthMethod, Auto, Conn, ConnType};
use crate::config::diag::Diagnostics;
use crate::config::values::Host;

/// A shunt (`type=pass|drop`) is a set of policies installed at load (`auto=route`); no
/// IKE keyword applies to it.
fn check_shunt(c: &Conn, diags: &mut Diagnostics) {
    let name = &c.name;
    let shown = match c.conn_type {
        ConnType::Drop => "drop",
        _ => "pass",
    };
    if c.auto != Auto::Route {
        diags.error(
            &c.pos,
            format!(
                "conn '{name}': a type={shown} shunt is installed as policies, never negotiated: it needs auto=route, not auto={}",
                c.auto
            ),
        );
    }
    for (side, end) in [("left", &c.left), ("right", &c.right)] {
        if end.updown.is_some() || end.firewall {
            diags.warning(
                &c.pos,
                format!(
                    "conn '{name}': {side}updown/{side}firewall do not apply to a type={shown} shunt (it has no CHILD_SA); ignored"
                ),
            );
        }
    }
}

/// Cross-keyword checks of a loaded conn, reported at its `conn NAME` line.
pub(super) fn check_conn(c: &Conn, diags: &mut Diagnostics) {
    if c.auto == Auto::Ignore {
        return;
    }
    let pos = &c.pos;
    let name = &c.name;
    if c.conn_type.is_shunt() {
        check_shunt(c, diags);
        return;
    }
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
