//! Budget literals (`"50ms"`, `"1h 2m"`, `"64KiB"`): never a panic, and a
//! parsed value reads back the same when written in the smallest unit.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(nanos) = overrun_literal::parse_duration(text) {
        assert_eq!(
            overrun_literal::parse_duration(&format!("{nanos}ns")),
            Ok(nanos)
        );
    }
    if let Ok(bytes) = overrun_literal::parse_size(text) {
        assert_eq!(overrun_literal::parse_size(&format!("{bytes}B")), Ok(bytes));
    }
});
