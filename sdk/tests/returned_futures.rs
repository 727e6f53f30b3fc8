//! `#[measure]` on a function that returns a future measures the future —
//! first poll to completion, polls, errors, the `poll` budget — exactly as
//! for an `async fn`: `-> impl Future`, `-> Pin<Box<dyn Future>>`, and what
//! `#[async_trait]` makes of an `async fn`, with the attributes in either
//! order. Before, only the creation of the future was timed (≈600 ns for a
//! call that awaited 40 ms, and no violation).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

#[global_allocator]
static ALLOC: overrun::CountingAlloc = overrun::CountingAlloc::system();

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

struct Polled;

// `#[async_trait]` first: `#[measure]` then sees methods that return boxed
// futures, and still gives them the block's `poll` budget.
#[async_trait::async_trait]
#[overrun::measure(poll = "1ms")]
impl Store for Polled {
    async fn load(&self, id: u32) -> Option<u32> {
        std::thread::sleep(Duration::from_millis(5)); // blocks one poll
        Some(id)
    }
}

#[overrun::measure]
#[allow(clippy::manual_async_fn)] // the shape under test
fn unpin_future(n: u8) -> impl Future<Output = u8> + Unpin {
    std::future::ready(n)
}

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
    std::thread::sleep(Duration::from_millis(200)); // not polled yet: not counted
    assert_eq!(runtime().block_on(fut), 30);
    let s = site("later");
    assert_eq!(s.calls, 1);
    // 38 ms of sleeps; timed from its creation it would be 238 ms or more
    // (the bound leaves a busy machine its delays).
    assert!(
        s.max_ns >= 38_000_000 && s.max_ns < 150_000_000,
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

#[test]
fn a_blocks_poll_budget_reaches_async_trait_methods() {
    assert_eq!(runtime().block_on(Polled.load(3)), Some(3));
    let s = site("<Polled as Store>::load");
    assert_eq!((s.budget.poll_ns, s.violations.poll), (Some(1_000_000), 1));
}

#[test]
fn an_unpin_future_stays_unpin() {
    fn needs_unpin<T: Unpin>(t: T) -> T {
        t
    }
    // Made without a box: no allocation to make the measured future.
    let before = overrun::alloc::thread_allocs().count;
    let fut = needs_unpin(unpin_future(4));
    let after = overrun::alloc::thread_allocs().count;
    assert_eq!(after - before, 0, "the measured Unpin future is not boxed");
    assert_eq!(runtime().block_on(fut), 4);
    assert_eq!(site("unpin_future").calls, 1);
}

/// `#[async_trait]` already boxes the future; the measured one lives in that
/// same box: one allocation to make the future, as without `#[measure]`.
#[test]
fn an_async_trait_call_allocates_one_box() {
    let before = overrun::alloc::thread_allocs().count;
    let fut = Slow.load(1);
    let after = overrun::alloc::thread_allocs().count;
    drop(fut);
    assert_eq!(after - before, 1);
}
