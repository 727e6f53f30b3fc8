#[overrun::measure(poll = "1ms")]
fn f() {}

fn main() { f() }
