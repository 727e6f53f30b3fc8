//! `#[measure]` on every shape of function the issue lists, checked both for
//! compiling and for what it records.

use std::fmt::Display;

fn calls(name: &str) -> u64 {
    overrun::snapshot().site(name).map_or(0, |s| s.calls)
}

fn errors(name: &str) -> u64 {
    overrun::snapshot().site(name).map_or(0, |s| s.errors)
}

#[overrun::measure]
fn free(a: u32, b: u32) -> u32 {
    a + b
}

struct Counter {
    n: u64,
    name: String,
}

impl Counter {
    #[overrun::measure]
    fn get(&self) -> u64 {
        self.n
    }

    #[overrun::measure]
    fn bump(&mut self) -> &mut u64 {
        self.n += 1;
        &mut self.n
    }

    #[overrun::measure]
    fn name(&self) -> &str {
        &self.name
    }

    #[overrun::measure]
    fn into_n(self) -> u64 {
        self.n
    }
}

#[overrun::measure]
fn generic<T: Display + Clone>(value: &T) -> String {
    value.to_string()
}

#[overrun::measure]
fn impl_arg(items: impl IntoIterator<Item = u32>) -> impl Iterator<Item = u32> {
    items.into_iter().map(|x| x * 2)
}

#[overrun::measure]
fn question(text: &str) -> Result<u32, std::num::ParseIntError> {
    let n: u32 = text.parse()?;
    Ok(n + 1)
}

#[overrun::measure]
fn io_alias(fail: bool) -> std::io::Result<()> {
    if fail {
        return Err(std::io::Error::other("nope"));
    }
    Ok(())
}

#[overrun::measure]
fn early(n: u32) -> u32 {
    if n > 10 {
        return 10;
    }
    n
}

#[overrun::measure]
fn fib(n: u64) -> u64 {
    if n < 2 { n } else { fib(n - 1) + fib(n - 2) }
}

#[overrun::measure]
fn returns_option(n: u32) -> Option<u32> {
    n.checked_sub(1)
}

#[overrun::measure(name = "custom.name")]
fn renamed() {}

#[overrun::measure]
fn borrowed<'a>(a: &'a str, _b: &str) -> &'a str {
    a
}

#[overrun::measure]
#[allow(clippy::ptr_arg)]
fn mut_slice(v: &mut Vec<u8>) -> &mut [u8] {
    v.push(1);
    &mut v[..]
}

trait Shape {
    fn area(&self) -> f64;
    fn describe(&self) -> String;
}

struct Square(f64);

impl Shape for Square {
    #[overrun::measure]
    fn area(&self) -> f64 {
        self.0 * self.0
    }

    #[overrun::measure]
    fn describe(&self) -> String {
        format!("square {}", self.area())
    }
}

#[test]
fn free_and_methods() {
    assert_eq!(free(2, 3), 5);
    let mut c = Counter {
        n: 1,
        name: "c".into(),
    };
    assert_eq!(c.get(), 1);
    *c.bump() += 10;
    assert_eq!(c.get(), 12);
    assert_eq!(c.name(), "c");
    assert_eq!(c.into_n(), 12);
    assert_eq!(calls("free"), 1);
    assert_eq!(calls("Counter::get"), 2);
    assert_eq!(calls("Counter::bump"), 1);
    assert_eq!(calls("Counter::into_n"), 1);
}

#[test]
fn generics_and_impl_trait() {
    assert_eq!(generic(&5), "5");
    assert_eq!(generic(&"x"), "x");
    assert_eq!(impl_arg(vec![1, 2]).collect::<Vec<_>>(), vec![2, 4]);
    assert_eq!(calls("generic"), 2, "one site for all instantiations");
    assert_eq!(calls("impl_arg"), 1);
    assert_eq!(borrowed("a", "b"), "a");
    let mut v = vec![];
    mut_slice(&mut v)[0] = 9;
    assert_eq!(v, vec![9]);
}

#[test]
fn results_errors_and_early_returns() {
    assert_eq!(question("41"), Ok(42));
    assert!(question("x").is_err());
    assert!(question("y").is_err());
    assert_eq!(calls("question"), 3);
    assert_eq!(errors("question"), 2);
    assert!(io_alias(true).is_err());
    assert!(io_alias(false).is_ok());
    assert_eq!((calls("io_alias"), errors("io_alias")), (2, 1));
    assert_eq!(early(50), 10);
    assert_eq!(early(5), 5);
    assert_eq!(calls("early"), 2);
    assert_eq!(returns_option(0), None);
    assert_eq!(errors("returns_option"), 0, "None is not an error");
}

#[test]
fn recursion_counts_every_call() {
    assert_eq!(fib(10), 55);
    assert_eq!(calls("fib"), 177);
    let snap = overrun::snapshot();
    let fib = snap.site("fib").unwrap();
    assert!(fib.self_ns <= fib.total_ns);
}

#[test]
fn trait_impls_and_names() {
    let s = Square(2.0);
    assert_eq!(s.describe(), "square 4");
    assert_eq!(calls("<Square as Shape>::area"), 1);
    assert_eq!(calls("<Square as Shape>::describe"), 1);
    renamed();
    let snap = overrun::snapshot();
    let site = snap.site("custom.name").expect("renamed site");
    assert_eq!(site.module, "shapes");
    assert!(site.file.ends_with("shapes.rs"));
    assert!(site.line > 0);
}

#[test]
fn panics_count_as_errors_and_propagate() {
    #[overrun::measure]
    fn boom(n: u32) -> u32 {
        if n == 3 {
            panic!("boom");
        }
        n
    }
    assert_eq!(boom(1), 1);
    let caught = std::panic::catch_unwind(|| boom(3));
    assert!(caught.is_err(), "the panic propagates");
    let snap = overrun::snapshot();
    let site = snap.site("boom").unwrap();
    assert_eq!((site.calls, site.errors), (2, 1));
}

// The body is typed by the declared return type, as in the function itself:
// these coerce (`Box<File>` to `Box<dyn Read>`, `Arc<u8>` to
// `Arc<dyn Debug>`) and did not compile with the `enabled` feature before.
#[overrun::measure]
fn open(p: &str) -> std::io::Result<Box<dyn std::io::Read>> {
    Ok(Box::new(std::fs::File::open(p)?))
}

#[overrun::measure]
fn shared(x: u8) -> Option<std::sync::Arc<dyn std::fmt::Debug + Send + Sync>> {
    if x == 0 {
        return None;
    }
    Some(std::sync::Arc::new(x))
}

#[overrun::measure]
fn boxed_error(n: u32) -> Result<Box<dyn std::fmt::Debug>, Box<dyn std::error::Error>> {
    if n == 0 {
        return Err("zero".into());
    }
    Ok(Box::new(n))
}

#[overrun::measure]
async fn open_later(p: &str) -> std::io::Result<Box<dyn std::io::Read>> {
    if p.is_empty() {
        return Ok(Box::new(std::io::empty()));
    }
    Ok(Box::new(std::fs::File::open(p)?))
}

#[overrun::measure]
fn nested_impl(n: u32) -> Vec<Box<dyn Fn() -> u32>> {
    vec![Box::new(move || n)]
}

#[overrun::measure]
fn die(message: &str) -> ! {
    panic!("{message}")
}

#[test]
fn returns_coerce_to_the_declared_type() {
    assert!(open(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).is_ok());
    assert!(open("/no/such/file").is_err());
    assert_eq!((calls("open"), errors("open")), (2, 1));
    assert!(shared(0).is_none());
    assert_eq!(format!("{:?}", shared(3).unwrap()), "3");
    assert!(boxed_error(0).is_err());
    assert_eq!(format!("{:?}", boxed_error(2).unwrap()), "2");
    assert_eq!((calls("boxed_error"), errors("boxed_error")), (2, 1));
    assert!(overrun::tasks::block_on(open_later("")).is_ok());
    assert!(overrun::tasks::block_on(open_later("/no/such/file")).is_err());
    assert_eq!((calls("open_later"), errors("open_later")), (2, 1));
    assert_eq!(nested_impl(4)[0](), 4);
}

#[test]
fn a_diverging_function_compiles_and_counts_its_panic() {
    let caught = std::panic::catch_unwind(|| die("gone"));
    assert!(caught.is_err());
    assert_eq!((calls("die"), errors("die")), (1, 1));
}
