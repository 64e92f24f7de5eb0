//! The protocol ikectl speaks to ikev2d over the control socket.
