trait Store {
    #[overrun::measure]
    fn load(&self) -> u32;
}

fn main() {}
