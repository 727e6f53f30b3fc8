// The expansions use absolute paths only, so they compile where nothing is
// in scope.
#![no_implicit_prelude]

mod hygiene {
    #![no_implicit_prelude]

    #[::overrun::measure(budget = "1s", allocs = 10)]
    pub fn add(a: u32, b: u32) -> ::core::result::Result<u32, ()> {
        ::core::result::Result::Ok(a + b)
    }

    #[::overrun::measure(poll = "1s")]
    pub async fn later(a: u32) -> u32 {
        a
    }

    // The literal macros expand to absolute paths too.
    pub fn budgets() -> (::core::time::Duration, u64) {
        (::overrun::duration!("1.5ms"), ::overrun::size!("4KiB"))
    }

    // A user item with the names the expansion uses does not clash.
    #[::overrun::measure]
    pub fn shadows(__overrun_guard: u32, __overrun_ret: u32) -> u32 {
        __overrun_guard + __overrun_ret
    }
}

fn main() {
    ::std::assert_eq!(hygiene::add(1, 2), ::core::result::Result::Ok(3));
    ::std::assert_eq!(hygiene::shadows(1, 2), 3);
    ::std::assert_eq!(hygiene::budgets().1, 4096);
    let _later = hygiene::later(1);
    ::std::assert_eq!(::overrun::snapshot().site("add").unwrap().calls, 1);
}
