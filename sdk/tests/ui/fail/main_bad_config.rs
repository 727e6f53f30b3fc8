#[overrun::main(config = 3)]
fn main() {}
