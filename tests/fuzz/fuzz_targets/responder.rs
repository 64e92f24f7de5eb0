//! A responder fed arbitrary datagrams: raw (first byte even), or after a genuine
//! IKE_SA_INIT exchange with the fuzz input's header SPIs replaced by the live SA's (first
//! byte odd), so that SA lookup, message-ID handling and SK opening are reached.
#![no_main]

mod common;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{I, R, addr, conn, endpoint};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    static T0: OnceLock<Instant> = OnceLock::new();
    let now = *T0.get_or_init(Instant::now);
    let Some((sel, rest)) = data.split_first() else {
        return;
    };
    let mut r = endpoint(conn(R, None), 2);
    if sel & 1 == 0 {
        // Several raw datagrams separated by 0xfe bytes.
        for d in rest.split(|b| *b == 0xfe) {
            r.handle_datagram(now, addr(R), addr(I), d);
        }
    } else {
        let mut i = endpoint(conn(I, Some(R)), 1);
        i.initiate(now, "fuzz").unwrap();
        let init = i.poll_transmit().unwrap();
        r.handle_datagram(now, addr(R), addr(I), &init.data);
        let resp = r.poll_transmit().unwrap();
        let mut d = rest.to_vec();
        if let (Some(dst), Some(src)) = (d.get_mut(..16), resp.data.get(..16)) {
            dst.copy_from_slice(src);
        }
        if sel & 2 != 0 {
            // Also let the genuine IKE_AUTH through first.
            i.handle_datagram(now, addr(I), addr(R), &resp.data);
            if let Some(auth) = i.poll_transmit() {
                r.handle_datagram(now, addr(R), addr(I), &auth.data);
            }
        }
        r.handle_datagram(now, addr(R), addr(I), &d);
    }
    while r.poll_transmit().is_some() {}
    while r.poll_event().is_some() {}
    let _ = r.ike_sas();
    r.handle_timeout(now + Duration::from_secs(3600));
});
