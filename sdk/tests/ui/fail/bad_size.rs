#[overrun::measure(bytes = "64 kib")]
fn f() {}

fn main() { f() }
