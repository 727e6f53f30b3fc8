//! Shared by the integration tests: `#[path = "support/site.rs"] mod site;`

/// The figures of the site called `name` now; panics if it has no calls.
pub(crate) fn site(name: &str) -> overrun::report::SiteSnapshot {
    overrun::snapshot()
        .site(name)
        .cloned()
        .unwrap_or_else(|| panic!("no site {name}"))
}
