#[overrun::measure]
struct Config {
    retries: u32,
}

fn main() {
    let _ = Config { retries: 1 }.retries;
}
