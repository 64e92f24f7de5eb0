//! ikev2d: an IKEv2 (RFC 7296) key-exchange daemon for Linux.
//!
//! Layers, lowest first: [`wire`] (codec) → [`crypto`] (transforms, key schedule) →
//! [`ike`] (sans-IO state machine) → [`daemon`] (tokio driver) and [`control`] (ikectl protocol).
//! [`config`] (ipsec.conf / ipsec.secrets) and [`kernel`] (XFRM) are leaves.

pub mod config;
pub mod control;
pub mod crypto;
pub mod daemon;
pub mod ike;
pub mod kernel;
pub mod wire;
