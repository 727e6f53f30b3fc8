// `?` and `return` in a measured main keep working; the report still prints.
#[overrun::main(budget = "10s")]
fn main() -> Result<(), std::num::ParseIntError> {
    let n: u32 = "5".parse()?;
    if n == 5 {
        return Ok(());
    }
    Ok(())
}
