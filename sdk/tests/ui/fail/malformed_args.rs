#[overrun::measure(budget)]
fn f() {}

fn main() { f() }
