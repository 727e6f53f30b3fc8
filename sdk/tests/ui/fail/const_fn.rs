#[overrun::measure]
const fn f() -> u32 {
    1
}

fn main() {
    let _ = f();
}
