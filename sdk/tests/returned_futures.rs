//! `#[measure]` on a function that returns a future measures the future —
//! first poll to completion, polls, errors, the `poll` budget — exactly as
//! for an `async fn`: `-> impl Future`, `-> Pin<Box<dyn Future>>`, and what
//! `#[async_trait]` makes of an `async fn`, with the attributes in either
//! order. Before, only the creation of the future was timed (≈600 ns for a
//! call that awaited 40 ms, and no violation).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

#[path = "support/site.rs"]
mod site;
use site::site;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

#[overrun::measure(budget = "10ms", poll = "5ms")]
#[allow(clippy::manual_async_fn)] // the shape under test
fn later(ms: u64) -> impl Future<Output = u64> + Send {
    async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        std::thread::sleep(Duration::from_millis(8)); // one poll over `poll`
        ms
    }
}

#[overrun::measure(budget = "10ms")]
fn boxed(fail: bool) -> Pin<Box<dyn Future<Output = Result<u8, String>> + Send + 'static>> {
    Box::pin(async move {
        tokio::time::sleep(Duration::from_millis(30)).await;
        if fail { Err("no".to_owned()) } else { Ok(1) }
    })
}

#[async_trait::async_trait]
trait Store {
    async fn load(&self, id: u32) -> Option<u32>;
}

struct Slow;

#[async_trait::async_trait]
impl Store for Slow {
    #[overrun::measure(budget = "10ms")]
    async fn load(&self, id: u32) -> Option<u32> {
        tokio::time::sleep(Duration::from_millis(40)).await;
        Some(id)
    }
}

struct Other;

// The other order: `#[measure]` on the block, then `#[async_trait]`.
#[overrun::measure(budget = "10ms")]
#[async_trait::async_trait]
impl Store for Other {
    async fn load(&self, id: u32) -> Option<u32> {
        tokio::time::sleep(Duration::from_millis(40)).await;
        (id > 0).then_some(id)
    }
}

#[test]
fn an_impl_future_is_measured_from_first_poll_to_completion() {
    let fut = later(30);
    std::thread::sleep(Duration::from_millis(20)); // not polled yet: not counted
    assert_eq!(runtime().block_on(fut), 30);
    let s = site("later");
    assert_eq!(s.calls, 1);
    assert!(
        s.max_ns >= 38_000_000 && s.max_ns < 48_000_000,
        "{}",
        s.max_ns
    );
    assert!(s.polls >= 2);
    assert_eq!((s.violations.time, s.violations.poll), (1, 1));
    assert_eq!(s.kind, overrun::SiteKind::Async);
}

#[test]
fn a_boxed_future_is_measured_and_its_err_is_an_error() {
    let rt = runtime();
    assert_eq!(rt.block_on(boxed(false)), Ok(1));
    assert!(rt.block_on(boxed(true)).is_err());
    let s = site("boxed");
    assert_eq!((s.calls, s.errors, s.violations.time), (2, 1, 2));
    assert!(s.max_ns >= 30_000_000, "{}", s.max_ns);
}

#[test]
fn async_trait_methods_are_measured_in_either_order() {
    let rt = runtime();
    assert_eq!(rt.block_on(Slow.load(7)), Some(7));
    assert_eq!(rt.block_on(Other.load(0)), None);
    for name in ["<Slow as Store>::load", "<Other as Store>::load"] {
        let s = site(name);
        assert_eq!((s.calls, s.violations.time), (1, 1), "{name}");
        assert!(s.max_ns >= 40_000_000, "{name}: {} ns", s.max_ns);
    }
}
