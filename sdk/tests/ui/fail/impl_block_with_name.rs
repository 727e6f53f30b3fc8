struct Cart;

#[overrun::measure(name = "cart")]
impl Cart {
    fn total(&self) -> u32 {
        1
    }
}

fn main() {
    let _ = Cart.total();
}
