//! The quickstart: a small workload with a few functions over their budgets.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! Prints each violation as it happens (an `on_violation` hook), then the
//! report table at exit (from `#[overrun::main]`). No backend needed.

use std::time::Duration;

// Count heap allocations and bytes in every measured function.
#[global_allocator]
static ALLOC: overrun::CountingAlloc = overrun::CountingAlloc::system();

#[derive(Debug)]
struct Order {
    id: u64,
    customer: String,
    items: Vec<(String, u32)>,
}

/// Parses `id;customer;item:qty,item:qty`. Budget: 50µs and 8 allocations.
#[overrun::measure(budget = "50us", allocs = 8)]
fn parse_order(line: &str) -> Result<Order, String> {
    let mut parts = line.split(';');
    let id = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad id in {line:?}"))?;
    let customer = parts.next().ok_or("missing customer")?.to_string();
    let items = parts
        .next()
        .ok_or("missing items")?
        .split(',')
        .map(|item| {
            let (name, qty) = item.split_once(':').ok_or("bad item")?;
            Ok((name.to_string(), qty.parse().map_err(|_| "bad quantity")?))
        })
        .collect::<Result<Vec<_>, &str>>()?;
    Ok(Order {
        id,
        customer,
        items,
    })
}

/// Prices an order; every 25th order hits a slow path. Budget: 1ms.
#[overrun::measure(budget = "1ms")]
fn price(order: &Order) -> u64 {
    if order.id.is_multiple_of(25) {
        std::thread::sleep(Duration::from_millis(3)); // the slow path
    }
    order
        .items
        .iter()
        .map(|(name, qty)| name.len() as u64 * 100 * u64::from(*qty))
        .sum()
}

/// Looks up stock: one poll may not block the executor for over 2ms.
#[overrun::measure(budget = "20ms", poll = "2ms")]
async fn check_stock(order_id: u64) -> bool {
    tokio::time::sleep(Duration::from_millis(1)).await;
    if order_id == 40 {
        std::thread::sleep(Duration::from_millis(5)); // blocking call in async code
    }
    !order_id.is_multiple_of(7)
}

/// Renders a receipt; more than 4 KiB of allocation is over budget.
#[overrun::measure(bytes = "4KiB")]
fn receipt(order: &Order, total: u64) -> String {
    let mut out = format!("order {} for {}\n", order.id, order.customer);
    for (name, qty) in &order.items {
        out.push_str(&format!("  {qty} x {name}\n"));
    }
    out.push_str(&format!("total {total}\n"));
    out
}

fn orders() -> Vec<String> {
    (1..=100)
        .map(|id| {
            let items: Vec<String> = (0..(1 + id % 4))
                .map(|i| format!("item{}:{}", i, 1 + id % 3))
                .collect();
            if id == 13 {
                format!("{id};broken") // one malformed line: an error, not a panic
            } else if id == 60 {
                // a big order: over the allocation budgets
                let many: Vec<String> = (0..200).map(|i| format!("sku{i}:1")).collect();
                format!("{id};customer{id};{}", many.join(","))
            } else {
                format!("{id};customer{};{}", id % 10, items.join(","))
            }
        })
        .collect()
}

#[overrun::main(budget = "5s", memory = "256MiB")]
#[tokio::main(flavor = "current_thread")]
async fn main() {
    overrun::on_violation(|v| eprintln!("budget violation: {v}"));

    let mut revenue = 0;
    let mut receipts = 0;
    for line in orders() {
        let Ok(order) = parse_order(&line) else {
            continue;
        };
        let total = price(&order);
        if check_stock(order.id).await {
            revenue += total;
            receipts += receipt(&order, total).len();
        }
    }
    println!("revenue {revenue}, {receipts} bytes of receipts");
}
