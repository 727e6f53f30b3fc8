#[overrun::main(memory = "lots")]
fn main() {}
