//! A file-processing command under a whole-run budget.
//!
//! ```text
//! cargo run --example cli -- data.csv            # summarise a CSV of sales
//! cargo run --example cli -- --generate 50000 > data.csv
//! OVERRUN_REPORT_FILE=report.json cargo run --release --example cli -- data.csv
//! ```
//!
//! `--slow-parse` adds a second validation pass to every line: a deliberate
//! 2× regression of `parse_line`, to try `overrun diff` on.
//!
//! Input lines are `region,product,quantity,unit_price_cents`. The summary
//! goes to stdout, the overrun report to stderr. Exit status: 0 on success,
//! 1 when some lines were malformed, 2 when the input cannot be read —
//! `#[overrun::main]` leaves it unchanged.

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;

#[global_allocator]
static ALLOC: overrun::CountingAlloc = overrun::CountingAlloc::system();

struct Sale<'a> {
    region: &'a str,
    product: &'a str,
    cents: u64,
}

#[overrun::measure(budget = "200ms")]
fn read_input(path: &str) -> std::io::Result<String> {
    std::fs::read_to_string(path)
}

static SLOW_PARSE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Zero-copy parse: no allocation allowed.
#[overrun::measure(budget = "20us", allocs = 0)]
fn parse_line(line: &str) -> Result<Sale<'_>, String> {
    if SLOW_PARSE.load(std::sync::atomic::Ordering::Relaxed) {
        std::hint::black_box(fields(line)?);
    }
    fields(line)
}

fn fields(line: &str) -> Result<Sale<'_>, String> {
    let mut f = line.split(',');
    let (Some(region), Some(product), Some(qty), Some(price), None) =
        (f.next(), f.next(), f.next(), f.next(), f.next())
    else {
        return Err(format!("expected 4 fields: {line:?}"));
    };
    let qty: u64 = qty
        .trim()
        .parse()
        .map_err(|_| format!("bad quantity: {line:?}"))?;
    let price: u64 = price
        .trim()
        .parse()
        .map_err(|_| format!("bad price: {line:?}"))?;
    Ok(Sale {
        region,
        product,
        cents: qty * price,
    })
}

#[overrun::measure]
fn aggregate<'a>(
    sales: impl Iterator<Item = Sale<'a>>,
) -> (HashMap<&'a str, u64>, HashMap<&'a str, u64>) {
    let mut by_region = HashMap::new();
    let mut by_product = HashMap::new();
    for s in sales {
        add_sale(&mut by_region, &mut by_product, s);
    }
    (by_region, by_product)
}

/// One sale into both totals (a hot function beside `parse_line`).
#[overrun::measure]
fn add_sale<'a>(
    by_region: &mut HashMap<&'a str, u64>,
    by_product: &mut HashMap<&'a str, u64>,
    s: Sale<'a>,
) {
    *by_region.entry(s.region).or_default() += s.cents;
    *by_product.entry(s.product).or_default() += s.cents;
}

#[overrun::measure(budget = "5ms")]
fn summarise(by_region: &HashMap<&str, u64>, by_product: &HashMap<&str, u64>) -> String {
    let mut regions: Vec<_> = by_region.iter().collect();
    regions.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut products: Vec<_> = by_product.iter().collect();
    products.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut out = String::from("revenue by region:\n");
    for (region, cents) in regions {
        out += &format!("  {region:<10} {:>12.2}\n", *cents as f64 / 100.0);
    }
    out += "top products:\n";
    for (product, cents) in products.iter().take(5) {
        out += &format!("  {product:<10} {:>12.2}\n", **cents as f64 / 100.0);
    }
    out
}

fn generate(n: u64) {
    const REGIONS: [&str; 5] = ["north", "south", "east", "west", "central"];
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let _ = writeln!(
            out,
            "{},p{:03},{},{}",
            REGIONS[(x % 5) as usize],
            (x >> 8) % 200,
            1 + (x >> 16) % 9,
            99 + (x >> 24) % 10_000
        );
    }
}

#[overrun::main(budget = "3s", memory = "100MiB")]
fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--slow-parse") {
        args.remove(i);
        SLOW_PARSE.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["--generate", n] => {
            generate(n.parse().unwrap_or(10_000));
            return ExitCode::SUCCESS;
        }
        ["--hold-mib", n, ..] => {
            // Touch n MiB, to show the memory budget at work.
            let mib: usize = n.parse().unwrap_or(0);
            let block = vec![1u8; mib << 20];
            std::hint::black_box(&block);
        }
        _ => {}
    }
    let Some(path) = args
        .iter()
        .rev()
        .find(|a| !a.starts_with("--") && a.parse::<u64>().is_err())
    else {
        eprintln!("usage: cli <sales.csv> | cli --generate N");
        return ExitCode::from(2);
    };
    let text = match read_input(path) {
        Ok(text) => text,
        Err(err) => {
            eprintln!("cli: cannot read {path}: {err}");
            return ExitCode::from(2);
        }
    };
    let mut bad = 0;
    let sales = text.lines().filter_map(|line| match parse_line(line) {
        Ok(sale) => Some(sale),
        Err(err) => {
            bad += 1;
            eprintln!("cli: skipping line: {err}");
            None
        }
    });
    let (by_region, by_product) = aggregate(sales);
    print!("{}", summarise(&by_region, &by_product));
    if bad > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
