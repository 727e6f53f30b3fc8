#[overrun::measure(p99 = "50ms", window = "100ms")]
fn f() {}

fn main() { f() }
