// A policy file watched for the run: missing here, so reported, and the
// code budgets stay.
#[overrun::main(budget = "3s", config = "no-such-overrun.toml")]
fn main() {}
