#[overrun::measure(p99 = "50 parsecs")]
fn f() {}

fn main() { f() }
