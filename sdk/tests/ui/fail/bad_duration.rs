#[overrun::measure(budget = "10 parsecs")]
fn f() {}

fn main() { f() }
