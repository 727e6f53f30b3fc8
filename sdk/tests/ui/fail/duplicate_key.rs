#[overrun::measure(budget = "1ms", budget = "2ms")]
fn f() {}

fn main() { f() }
