#[overrun::main(budget = "3s")]
fn run() {}

fn main() {
    run()
}
