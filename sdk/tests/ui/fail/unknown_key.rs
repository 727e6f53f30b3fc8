#[overrun::measure(budjet = "1ms")]
fn f() {}

fn main() { f() }
