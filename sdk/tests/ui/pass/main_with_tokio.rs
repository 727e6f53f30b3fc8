// `#[overrun::main]` above `#[tokio::main]`: the report covers the async main.
#[overrun::main(budget = "10s", memory = "1GiB")]
#[tokio::main(flavor = "current_thread")]
async fn main() {
    work().await;
}

#[overrun::measure]
async fn work() {
    tokio::task::yield_now().await;
}
