//! Sans-IO IKEv2 engine: IKE_SA_INIT, IKE_AUTH with PSK, the first CHILD_SA. No sockets, clock, global RNG or kernel.
