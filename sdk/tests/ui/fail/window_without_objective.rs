#[overrun::measure(window = "1m")]
fn f() {}

fn main() { f() }
