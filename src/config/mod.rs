//! strongSwan-compatible ipsec.conf and ipsec.secrets parsing, with file:line:column diagnostics.
//!
//! This module is a leaf: it knows nothing about the wire format, crypto or the IKE engine.
//! Proposals are plain IANA transform numbers ([`proposal`]), identities are [`ident::Identity`].
//!
//! Entry points: [`load::load`] (both files from disk) and [`load::load_str`] (from text), built
//! on [`parse::parse_conf_str`] + [`conn::build_config`] for ipsec.conf and
//! [`secrets::parse_secrets_str`] for ipsec.secrets; [`check::check`] for `ikectl check`.

pub mod check;
pub mod conn;
pub mod diag;
pub mod ident;
pub mod keywords;
pub mod load;
pub mod parse;
pub mod proposal;
pub mod secrets;
pub mod settings;
pub mod source;
pub mod values;
