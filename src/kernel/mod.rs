//! Kernel IPsec interface: a trait, its XFRM netlink implementation and an in-memory one.
