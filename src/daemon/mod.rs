//! The tokio driver: sockets, clock, RNG, control socket; owns the sans-IO engine.
