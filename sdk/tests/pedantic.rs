//! The expansion under the strictest lints a user's crate may deny:
//! `cargo clippy --all-targets -- -D warnings` (the test command) checks
//! this file with clippy's pedantic group denied, on bodies of every
//! layout: one-line, trait default methods, `macro_rules!`-generated,
//! async, returned futures, `Result`s. (`tests/ui/pass/one_line_bodies.rs`
//! does the same for rustc's warnings alone.)
#![deny(warnings, clippy::pedantic)]

// Kept as written: one-line bodies are the point.
#[rustfmt::skip]
mod shapes {
    #[overrun::measure]
    fn add(x: u32) -> u32 { x + 1 }

    #[overrun::measure(budget = "1ms", allocs = 2)]
    fn unit() {}

    #[overrun::measure]
    fn early(x: u32) -> u32 { if x > 3 { return 3 } x }

    #[overrun::measure]
    fn fallible(x: u32) -> Result<u32, String> { if x > 5 { Err("big".into()) } else { Ok(x) } }

    #[overrun::measure(poll = "1ms")]
    async fn add_async(x: u32) -> u32 { std::future::ready(x).await + 1 }

    #[overrun::measure]
    fn returns_future(x: u32) -> impl std::future::Future<Output = u32> { let y = x * 2; async move { y / 2 } }

    trait Shape {
        #[overrun::measure]
        fn area(&self) -> u32 { 1 }
    }

    struct Square;

    impl Shape for Square {}

    struct Counter(u32);

    #[overrun::measure]
    impl Counter {
        fn get(&self) -> u32 { self.0 }
        fn bump(&mut self) { self.0 += 1; }
    }

    macro_rules! measured {
        ($name:ident, $value:expr) => {
            #[overrun::measure]
            fn $name() -> u32 { $value }
        };
    }

    measured!(seven, 7);

    #[test]
    fn every_shape_runs() {
        assert_eq!(add(1), 2);
        unit();
        assert_eq!(early(9), 3);
        assert_eq!(fallible(2), Ok(2));
        assert!(fallible(9).is_err());
        assert_eq!(overrun::tasks::block_on(add_async(1)), 2);
        assert_eq!(overrun::tasks::block_on(returns_future(4)), 4);
        assert_eq!(Square.area(), 1);
        let mut c = Counter(1);
        c.bump();
        assert_eq!(c.get(), 2);
        assert_eq!(seven(), 7);
    }
}
