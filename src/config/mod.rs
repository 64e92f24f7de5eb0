//! strongSwan-compatible ipsec.conf and ipsec.secrets parsing, with file:line:column diagnostics.
