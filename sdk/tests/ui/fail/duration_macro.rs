// A run-time budget given with `overrun::duration!` is checked when the
// program is compiled: a typo is a compile error on the literal.
fn main() {
    let _ = overrun::task("reaper").poll_budget(overrun::duration!("5 parsecs"));
}
