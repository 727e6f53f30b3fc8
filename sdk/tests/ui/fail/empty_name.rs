#[overrun::measure(name = "")]
fn f() {}

fn main() { f() }
