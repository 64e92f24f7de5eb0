//! ikev2d: an IKEv2 (RFC 7296) key-exchange daemon for Linux.
//!
//! Layers, lowest first: [`wire`] (codec) → [`crypto`] (transforms, key schedule) →
//! [`ike`] (sans-IO state machine) → [`daemon`] (tokio driver) and [`control`] (ikectl protocol).
//! [`config`] (ipsec.conf / ipsec.secrets) and [`kernel`] (XFRM) are leaves.
