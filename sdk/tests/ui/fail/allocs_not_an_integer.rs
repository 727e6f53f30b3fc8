#[overrun::measure(allocs = "many")]
fn f() {}

fn main() { f() }
