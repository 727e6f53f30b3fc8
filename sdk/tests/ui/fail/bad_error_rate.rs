#[overrun::measure(error_rate = "1")]
fn f() -> Result<(), ()> { Ok(()) }

fn main() { let _ = f(); }
