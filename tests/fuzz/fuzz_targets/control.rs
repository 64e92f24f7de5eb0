//! The control protocol: a line from the control socket parsed as a request (what the daemon
//! does with each line a client sends) and as a reply (what ikectl does with each line the
//! daemon sends). Whatever parses must re-encode and parse back to the same value.
#![no_main]

use ikev2d::control::{Reply, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for line in data.split(|b| *b == b'\n') {
        if let Ok(req) = serde_json::from_slice::<Request>(line) {
            let again = serde_json::to_string(&req).unwrap();
            assert_eq!(serde_json::from_str::<Request>(&again).unwrap(), req);
        }
        if let Ok(reply) = serde_json::from_slice::<Reply>(line) {
            let again = serde_json::to_string(&reply).unwrap();
            assert_eq!(serde_json::from_str::<Reply>(&again).unwrap(), reply);
        }
    }
});
