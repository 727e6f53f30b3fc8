//! `#[tracing::instrument]` above or below `#[overrun::measure]`: either
//! way, the function's violation is raised while its span is entered (so a
//! hook, or the OpenTelemetry exporter through `tracing-opentelemetry`,
//! sees that span), and the figures are the same. (Its own binary: the
//! subscriber and the hook are process-wide.)

use std::future::Future;
use std::sync::{Mutex, Once};

#[path = "support/site.rs"]
mod site;
use site::site;

/// Each violation's function, with the span current when it was raised.
static SEEN: Mutex<Vec<(&'static str, Option<&'static str>)>> = Mutex::new(Vec::new());

fn setup() {
    static SETUP: Once = Once::new();
    SETUP.call_once(|| {
        tracing::subscriber::set_global_default(tracing_subscriber::registry())
            .expect("the only subscriber");
        overrun::on_violation(|v| {
            let span = tracing::Span::current().metadata().map(|m| m.name());
            SEEN.lock().unwrap().push((v.name, span));
        });
    });
}

/// The spans the violations of `name` were raised in.
fn spans_of(name: &str) -> Vec<Option<&'static str>> {
    SEEN.lock()
        .unwrap()
        .iter()
        .filter(|(n, _)| *n == name)
        .map(|(_, s)| *s)
        .collect()
}

fn spin() {
    std::thread::sleep(std::time::Duration::from_micros(5));
}

#[tracing::instrument]
#[overrun::measure(budget = "1ns")]
fn sync_above(x: u32) -> u32 {
    spin();
    if x == 0 {
        return 10;
    }
    x
}

#[overrun::measure(budget = "1ns")]
#[tracing::instrument]
fn sync_below(x: u32) -> u32 {
    spin();
    x
}

#[tracing::instrument(err)]
#[overrun::measure(budget = "1ns")]
fn err_above(fail: bool) -> Result<u32, String> {
    spin();
    if fail {
        return Err("failed".to_owned());
    }
    Ok(1)
}

#[tracing::instrument(ret)]
#[overrun::measure(budget = "1ns")]
fn ret_above(items: &[u32]) -> &u32 {
    spin();
    &items[0]
}

#[tracing::instrument]
#[overrun::measure(budget = "1ns")]
async fn async_above(x: u32) -> u32 {
    tokio::task::yield_now().await;
    spin();
    x
}

#[overrun::measure(budget = "1ns")]
#[tracing::instrument]
async fn async_below(x: u32) -> u32 {
    tokio::task::yield_now().await;
    spin();
    x
}

#[tracing::instrument(err)]
#[overrun::measure(budget = "1ns")]
async fn async_err_above(fail: bool) -> Result<u32, String> {
    spin();
    if fail {
        return Err("failed".to_owned());
    }
    Ok(2)
}

#[tracing::instrument]
#[overrun::measure(budget = "1ns")]
fn returned_above(x: u32) -> impl Future<Output = u32> {
    async move {
        tokio::task::yield_now().await;
        spin();
        x
    }
}

#[async_trait::async_trait]
trait Service {
    async fn call(&self, x: u32) -> u32;
}

struct Svc;

#[async_trait::async_trait]
impl Service for Svc {
    #[tracing::instrument(skip(self))]
    #[overrun::measure(budget = "1ns")]
    async fn call(&self, x: u32) -> u32 {
        tokio::task::yield_now().await;
        spin();
        x
    }
}

#[test]
fn sync_violations_are_raised_inside_the_span_in_either_order() {
    setup();
    assert_eq!(sync_above(0), 10, "a `return` stays the function's");
    assert_eq!(sync_above(3), 3);
    assert_eq!(sync_below(4), 4);
    assert_eq!(spans_of("sync_above"), [Some("sync_above"); 2]);
    assert_eq!(spans_of("sync_below"), [Some("sync_below")]);
    assert_eq!((site("sync_above").calls, site("sync_below").calls), (2, 1));

    assert_eq!(err_above(true), Err("failed".to_owned()));
    assert_eq!(err_above(false), Ok(1));
    assert_eq!(spans_of("err_above"), [Some("err_above"); 2]);
    let s = site("err_above");
    assert_eq!((s.calls, s.errors), (2, 1), "the error is still counted");

    assert_eq!(*ret_above(&[5, 6]), 5, "a borrow of an argument comes back");
    assert_eq!(spans_of("ret_above"), [Some("ret_above")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_violations_are_raised_inside_the_span_in_either_order() {
    setup();
    assert_eq!(async_above(1).await, 1);
    assert_eq!(async_below(2).await, 2);
    assert_eq!(spans_of("async_above"), [Some("async_above")]);
    assert_eq!(spans_of("async_below"), [Some("async_below")]);
    let (above, below) = (site("async_above"), site("async_below"));
    assert_eq!((above.kind, above.calls), (overrun::SiteKind::Async, 1));
    assert!(
        above.polls >= 2,
        "measured across its polls: {}",
        above.polls
    );
    assert_eq!((below.calls, below.polls), (1, above.polls));

    assert!(async_err_above(true).await.is_err());
    assert_eq!(async_err_above(false).await, Ok(2));
    assert_eq!(spans_of("async_err_above"), [Some("async_err_above"); 2]);
    let s = site("async_err_above");
    assert_eq!((s.calls, s.errors), (2, 1));

    let fut = returned_above(7);
    assert_eq!(fut.await, 7);
    assert_eq!(spans_of("returned_above"), [Some("returned_above")]);
    assert_eq!(site("returned_above").kind, overrun::SiteKind::Async);

    assert_eq!(Svc.call(8).await, 8);
    assert_eq!(spans_of("<Svc as Service>::call"), [Some("call")]);
    assert!(site("<Svc as Service>::call").polls >= 2);
}
