//! The `OTEL_*` variables: any values give settings (invalid ones warned
//! about, each warning naming its variable), never an error or a panic; a
//! header value never shows in either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use overrun_otlp::__private::{OTEL_VARIABLES, resolve_env};

fuzz_target!(|data: &[u8]| {
    // One value per variable, in order, separated by NUL bytes.
    let text = String::from_utf8_lossy(data);
    let vars: Vec<(&str, &str)> = OTEL_VARIABLES
        .iter()
        .copied()
        .zip(text.split('\0'))
        .collect();
    // Variables never stop start-up: settings, and warnings that each name
    // their variable.
    let (settings, warnings) = match resolve_env(&vars) {
        Ok(resolved) => resolved,
        Err(error) => panic!("a variable stopped start-up: {error}"),
    };
    for w in &warnings {
        assert!(
            w.starts_with("OTEL_"),
            "a warning that names no variable: {w}"
        );
    }
    let out = format!("{settings} {warnings:?}");
    // A long, distinctive header value is never echoed back.
    if let Some((_, headers)) = vars
        .iter()
        .find(|(k, _)| *k == "OTEL_EXPORTER_OTLP_HEADERS")
    {
        for pair in headers.split(',') {
            if let Some((_, value)) = pair.split_once('=') {
                let value = value.trim();
                // Unless a header name or another variable holds the same text
                // (names and other values may be echoed in an error).
                let elsewhere = headers.matches(value).count() > 1
                    || vars
                        .iter()
                        .any(|(k, v)| *k != "OTEL_EXPORTER_OTLP_HEADERS" && v.contains(value));
                if value.len() >= 12
                    && value.bytes().all(|b| b.is_ascii_alphanumeric())
                    && !elsewhere
                {
                    assert!(!out.contains(value), "a header value shown: {out}");
                }
            }
        }
    }
});
