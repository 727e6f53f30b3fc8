// Internals that were public by accident are not, and result structs that
// will grow cannot be built outside the crate (adding a field is then not a
// breaking change).
fn main() {
    overrun::tasks::check_lifetimes();
    let _ = overrun::alloc::FLUSH_BYTES;
    let _ = overrun::tasks::WATCHDOG_PERIOD;
    let _ = overrun::violation::RING_CAPACITY;
    let _ = overrun::report::RunBudget {
        time_ns: None,
        memory_bytes: None,
    };
}
