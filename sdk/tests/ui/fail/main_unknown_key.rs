#[overrun::main(budget = "3s", allocs = 4)]
fn main() {}
