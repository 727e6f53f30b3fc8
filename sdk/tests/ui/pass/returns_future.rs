#![deny(warnings)]
// Functions that return futures compile under the attribute without a
// warning, with `poll` allowed, and keep their `Send`-ness.
use std::future::Future;
use std::pin::Pin;

#[overrun::measure(poll = "1ms")]
fn opaque(n: u32) -> impl Future<Output = u32> + Send {
    async move { n + 1 }
}

#[overrun::measure]
fn boxed<'a>(s: &'a str) -> Pin<Box<dyn Future<Output = Result<usize, String>> + Send + 'a>> {
    Box::pin(async move { Ok(s.len()) })
}

fn needs_send<T: Send>(_: T) {}

fn main() {
    needs_send(opaque(1));
    needs_send(boxed("x"));
}
