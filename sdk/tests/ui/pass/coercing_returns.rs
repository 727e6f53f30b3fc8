#![deny(warnings)]
// Returns that coerce to the declared type compile with the attribute as they
// do without it, sync and async, and so does a diverging function.
use std::fmt::Debug;
use std::io::Read;
use std::sync::Arc;

#[overrun::measure]
fn open(p: &str) -> std::io::Result<Box<dyn Read>> {
    Ok(Box::new(std::fs::File::open(p)?))
}

#[overrun::measure]
fn shared(x: u8) -> Option<Arc<dyn Debug>> {
    Some(Arc::new(x))
}

#[overrun::measure]
fn boxed(n: u32) -> Result<Box<dyn Debug>, Box<dyn std::error::Error>> {
    Ok(Box::new(n))
}

#[overrun::measure]
async fn open_async(p: &str) -> std::io::Result<Box<dyn Read>> {
    Ok(Box::new(std::fs::File::open(p)?))
}

#[overrun::measure]
fn die() -> ! {
    std::process::exit(3)
}

#[overrun::measure]
async fn forever() -> ! {
    loop {
        std::future::pending::<()>().await;
    }
}

fn main() {
    let _ = open("x");
    let _ = shared(1);
    let _ = boxed(2);
    let _ = open_async("x");
    let _ = forever();
    if false {
        die();
    }
}
