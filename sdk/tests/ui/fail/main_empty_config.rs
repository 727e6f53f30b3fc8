#[overrun::main(config = "")]
fn main() {}
