//! Cross-keyword checks of a built conn.

use std::time::Duration;

use super::{AuthMethod, Auto, Conn, ConnType};
use crate::config::diag::Diagnostics;
use crate::config::values::Host;

/// `leftsourceip`/`rightsourceip`: virtual IPs live in tunnel mode; one end asks (`%config`),
/// the other end's pool answers.
fn check_sourceip(c: &Conn, diags: &mut Diagnostics) {
    let (pos, name) = (&c.pos, &c.name);
    let (l, r) = (&c.left, &c.right);
    if l.sourceip.is_empty() && r.sourceip.is_empty() {
        return;
    }
    if c.conn_type != ConnType::Tunnel {
        diags.error(
            pos,
            format!(
                "conn '{name}': virtual IPs (leftsourceip/rightsourceip) need type=tunnel, not type={}",
                c.conn_type
            ),
        );
    }
    if l.requested_vips().next().is_some() && r.requested_vips().next().is_some() {
        diags.error(
            pos,
            format!(
                "conn '{name}': leftsourceip and rightsourceip both ask for an address (%config); one end asks, the other gives it from a pool"
            ),
        );
    }
    if l.pools().next().is_some() && r.pools().next().is_some() {
        diags.warning(
            pos,
            format!(
                "conn '{name}': leftsourceip and rightsourceip both give addresses; the local end's own inner address is not acted on (only the peer's pool and %config are)"
            ),
        );
    }
}

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
    if matches!(c.left.host, Host::Addr(_))
        && matches!(c.right.host, Host::Any { .. })
        && c.auto == Auto::Route
        && c.conn_type == ConnType::Tunnel
    {
        diags.error(
            pos,
            format!(
                "conn '{name}': auto=route with right=%any needs type=transport: a tunnel's trap policy must name the peer's address"
            ),
        );
    }
    check_sourceip(c, diags);
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
