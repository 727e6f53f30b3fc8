//! JSON reports given to `overrun diff`: parsing, then comparing two and
//! rendering the comparison, never panic. The input is two reports split
//! at the first NUL byte (the second defaults to the first).
#![no_main]

use libfuzzer_sys::fuzz_target;
use overrun::baseline::{Report, Tolerance, compare, notes};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (base, head) = text.split_once('\0').unwrap_or((&text, &text));
    let (Ok(base), Ok(head)) = (Report::from_json(base), Report::from_json(head)) else {
        return;
    };
    for tolerance in [
        Tolerance::uniform(0.1),
        Tolerance::uniform(0.0).with_p99(0.5),
    ] {
        let comparison = compare(&base, &head, &tolerance);
        let _ = comparison.regressed();
        let _ = comparison.render_table();
        let _ = comparison.render_markdown();
    }
    let _ = notes(&base, &head);
});
