#[overrun::measure(budget = 10)]
fn f() {}

fn main() { f() }
