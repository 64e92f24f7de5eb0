//! The ikev2d daemon: tokio driver around the sans-IO IKE engine, UDP sockets, kernel
//! installation of CHILD_SAs and the control-socket server.

pub mod ctl;
pub mod log;
pub mod net;
