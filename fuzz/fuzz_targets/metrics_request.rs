//! The `/metrics` endpoint's request handling: any bytes on a connection get
//! an HTTP answer or a closed connection, never a panic; without the right
//! credentials, no figure is served.
#![no_main]

use libfuzzer_sys::fuzz_target;
use overrun_prometheus::__private::answer_raw;

fuzz_target!(|data: &[u8]| {
    let open = answer_raw(None, data);
    // HTTP/1.1, or 1.0 to a 1.0 request.
    let http = |answer: &[u8]| answer.is_empty() || answer.starts_with(b"HTTP/1.");
    assert!(http(&open), "{:?}", String::from_utf8_lossy(&open));
    let secured = answer_raw(Some(("prometheus", "fuzz-s3cret")), data);
    let text = String::from_utf8_lossy(&secured);
    assert!(http(&secured), "{text}");
    if text.get(9..12) != Some("200") {
        assert!(
            !text.contains("overrun_"),
            "figures without credentials: {text}"
        );
    } else {
        // Only the exact credentials get figures.
        let data = String::from_utf8_lossy(data).to_ascii_lowercase();
        assert!(
            data.contains(
                "cHJvbWV0aGV1czpmdXp6LXMzY3JldA=="
                    .to_ascii_lowercase()
                    .as_str()
            ),
            "{data}"
        );
    }
});
