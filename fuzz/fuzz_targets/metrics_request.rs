//! The `/metrics` endpoint's request handling: any bytes on a connection get
//! an HTTP answer or a closed connection, never a panic; without the exact
//! credentials (basic or bearer), no figure is served.
#![no_main]

use libfuzzer_sys::fuzz_target;
use overrun_prometheus::__private::{Credentials, answer_raw};

/// `prometheus:fuzz-s3cret` in base64.
const BASIC: &str = "cHJvbWV0aGV1czpmdXp6LXMzY3JldA==";
const TOKEN: &str = "fuzz-t0ken";

fuzz_target!(|data: &[u8]| {
    // HTTP/1.1, or 1.0 to a 1.0 request.
    let http = |answer: &[u8]| answer.is_empty() || answer.starts_with(b"HTTP/1.");
    let open = answer_raw(Credentials::Open, data);
    assert!(http(&open), "{:?}", String::from_utf8_lossy(&open));
    let request = String::from_utf8_lossy(data);
    for (credentials, secret) in [
        (Credentials::Basic("prometheus", "fuzz-s3cret"), BASIC),
        (Credentials::Bearer(TOKEN), TOKEN),
    ] {
        let answer = answer_raw(credentials, data);
        let text = String::from_utf8_lossy(&answer);
        assert!(http(&answer), "{text}");
        if text.get(9..12) == Some("200") {
            // Only the exact credentials get figures.
            assert!(
                request.contains(secret),
                "figures without credentials: {request:?}"
            );
        } else {
            assert!(!text.contains("overrun_"), "figures in a refusal: {text}");
        }
    }
});
