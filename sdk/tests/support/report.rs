//! Shared by the tests that read JSON reports, in this crate and in
//! `examples/tests`: `#[path = ".../support/report.rs"] mod report;`

/// The entry of site `name` in a JSON report's `sites`.
pub(crate) fn site<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no site {name} in {report}"))
}
