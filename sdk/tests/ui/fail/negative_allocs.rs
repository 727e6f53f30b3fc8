#[overrun::measure(allocs = -1)]
fn f() {}

fn main() { f() }
